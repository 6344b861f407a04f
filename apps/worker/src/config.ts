import { agentTokenSchema, type EnvBinding, loadSection } from "@pm/config";
import { parseCatalogUrl } from "@pm/db";
import { isDomainError } from "@pm/domain";
import { OBJECT_STORE_ENV, ObjectStoreConfigSchema } from "@pm/objects";
import { z } from "zod";

const port = z.number().int().min(0).max(65535);
const positiveMs = z.number().int().positive();
/** An interval in ms, or 0 to turn the periodic job off. */
const intervalMs = z.number().int().min(0);

/** The worker's configuration: YAML `worker:` section, then `PM_*` environment overrides, then defaults. */
export const WorkerConfigSchema = z
  .object({
    /** BullMQ's Redis. */
    redisUrl: z
      .string()
      .regex(/^rediss?:\/\//, "must be a redis:// or rediss:// URL")
      .default("redis://127.0.0.1:6379"),
    /** The catalog shared with the API: `postgres://…` in production, `sqlite:<path>` or `memory:`. */
    catalogUrl: z.string().min(1).default("sqlite:./.payload-manager/catalog.db"),
    logLevel: z.enum(["debug", "info", "warn", "error", "silent"]).default("info"),
    /** Jobs one worker process runs at once. */
    concurrency: z.number().int().min(1).max(256).default(8),
    /** TTL expiry, reaping, deferred deletions (product.md: TTL enforced within 1 s). 0 = off. */
    sweepIntervalMs: intervalMs.default(1_000),
    /** Pressure tiering. 0 = off. */
    pressureIntervalMs: intervalMs.default(2_000),
    /** Stream retention for streams nobody appends to (appends apply it themselves). 0 = off. */
    streamRetentionIntervalMs: intervalMs.default(30_000),
    queue: z
      .object({
        /** BullMQ queue name; API and workers must agree. */
        name: z
          .string()
          .regex(/^[A-Za-z0-9._-]{1,64}$/, "letters, digits, '.', '_' and '-' only (no ':')")
          .default("payload-manager"),
        /** Prefix of every Redis key of the queue. */
        prefix: z
          .string()
          .regex(/^[A-Za-z0-9._-]{1,64}$/, "letters, digits, '.', '_' and '-' only")
          .default("pm"),
        attempts: z.number().int().min(1).max(50).default(5),
        backoffMs: positiveMs.default(1_000),
        /** Longest an enqueue or readiness probe waits on Redis. */
        commandTimeoutMs: positiveMs.default(5_000),
      })
      .prefault({}),
    metrics: z
      .object({
        /** Address of /healthz, /readyz and /metrics; 0.0.0.0 in a container so probes reach it. */
        host: z.string().min(1).default("127.0.0.1"),
        port: port.default(9464),
      })
      .prefault({}),
    /** Must match the API's: never-committed allocations are reaped after this long. */
    allocationTimeoutMs: positiveMs.default(600_000),
    /** Must match the API's: agents silent for longer are not considered by pressure tiering. */
    agentTtlMs: positiveMs.default(15_000),
    /** A move still SPILLING after this long is taken for crashed and repaired by the sweep. */
    moveTimeoutMs: positiveMs.default(1_800_000),
    /**
     * The agents' token (the same PM_AGENT_TOKEN as the API's `auth.agentToken` and the agents'),
     * sent on every call to an agent; agents that have one refuse calls without it. "" = none.
     */
    agentToken: agentTokenSchema,
    /** The object tier, as the API has it: the worker frees objects and has agents move bytes. */
    objectStore: ObjectStoreConfigSchema.optional(),
  })
  .strict();

export type WorkerConfig = z.infer<typeof WorkerConfigSchema>;

/** Invalid worker configuration (the shared ConfigError; every problem listed). */
export { ConfigError as WorkerConfigError } from "@pm/config";

/** Environment overrides: variable → path in the `worker:` section. */
export const WORKER_ENV: Readonly<Record<string, EnvBinding>> = {
  PM_REDIS_URL: { path: ["redisUrl"], kind: "string" },
  PM_CATALOG_URL: { path: ["catalogUrl"], kind: "string" },
  PM_LOG_LEVEL: { path: ["logLevel"], kind: "string" },
  PM_WORKER_CONCURRENCY: { path: ["concurrency"], kind: "number" },
  PM_SWEEP_INTERVAL_MS: { path: ["sweepIntervalMs"], kind: "number" },
  PM_PRESSURE_INTERVAL_MS: { path: ["pressureIntervalMs"], kind: "number" },
  PM_STREAM_RETENTION_INTERVAL_MS: { path: ["streamRetentionIntervalMs"], kind: "number" },
  PM_QUEUE_NAME: { path: ["queue", "name"], kind: "string" },
  PM_QUEUE_PREFIX: { path: ["queue", "prefix"], kind: "string" },
  PM_QUEUE_ATTEMPTS: { path: ["queue", "attempts"], kind: "number" },
  PM_WORKER_METRICS_HOST: { path: ["metrics", "host"], kind: "string" },
  PM_WORKER_METRICS_PORT: { path: ["metrics", "port"], kind: "number" },
  PM_ALLOCATION_TIMEOUT_MS: { path: ["allocationTimeoutMs"], kind: "number" },
  PM_AGENT_TTL_MS: { path: ["agentTtlMs"], kind: "number" },
  PM_MOVE_TIMEOUT_MS: { path: ["moveTimeoutMs"], kind: "number" },
  PM_AGENT_TOKEN: { path: ["agentToken"], kind: "string" },
  ...Object.fromEntries(
    Object.entries(OBJECT_STORE_ENV).map(([name, v]) => [
      name,
      { path: ["objectStore", v.key], kind: v.kind },
    ]),
  ),
};

/**
 * Reads the `worker:` section of the YAML file (if any), applies `PM_*` overrides and validates.
 * Throws WorkerConfigError listing every problem.
 */
export function loadWorkerConfig(
  file: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): WorkerConfig {
  return loadSection({
    file,
    env,
    section: "worker",
    schema: WorkerConfigSchema,
    envTable: WORKER_ENV,
    check: (config) => {
      try {
        parseCatalogUrl(config.catalogUrl);
        return [];
      } catch (e) {
        if (!isDomainError(e)) throw e;
        return [`worker.catalogUrl: ${e.message}`];
      }
    },
  });
}
