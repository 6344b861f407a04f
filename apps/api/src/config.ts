import { agentTokenSchema, type EnvBinding, loadSection } from "@pm/config";
import { OBJECT_STORE_ENV, ObjectStoreConfigSchema } from "@pm/objects";
import { z } from "zod";

const port = z.number().int().min(0).max(65535);

/** The API's configuration: YAML (`--config`), then `PM_*` environment overrides, then defaults. */
export const ApiConfigSchema = z
  .object({
    host: z.string().default("127.0.0.1"),
    httpPort: port.default(8080),
    grpcPort: port.default(50051),
    /** URL agents and clients use to reach this API (agents register here). */
    publicUrl: z.string().url().optional(),
    maxBodyBytes: z
      .number()
      .int()
      .positive()
      .default(4 * 1024 * 1024),
    catalogUrl: z.string().min(1).default("sqlite:./.payload-manager/catalog.db"),
    dataDir: z.string().min(1).default("./.payload-manager"),
    logLevel: z.enum(["debug", "info", "warn", "error", "silent"]).default("info"),
    leases: z
      .object({
        defaultMs: z.number().int().positive().default(20_000),
        maxMs: z.number().int().positive().default(120_000),
      })
      .prefault({}),
    allocationTimeoutMs: z.number().int().positive().default(600_000),
    agentTtlMs: z.number().int().positive().default(15_000),
    heartbeatIntervalMs: z.number().int().positive().default(3_000),
    /**
     * The BullMQ queue the API hands follow-up work to (moves, deferred deletion) when it runs as
     * its own process (`payload-manager api`); the same names as the worker's `queue` settings.
     * In `payload-manager all` the jobs run in-process and Redis is not used.
     */
    queue: z
      .object({
        redisUrl: z
          .string()
          .regex(/^rediss?:\/\//, "must be a redis:// or rediss:// URL")
          .default("redis://127.0.0.1:6379"),
        name: z
          .string()
          .regex(/^[A-Za-z0-9._-]+$/)
          .default("payload-manager"),
        prefix: z
          .string()
          .regex(/^[A-Za-z0-9._-]+$/)
          .default("pm"),
      })
      .prefault({}),
    auth: z
      .object({
        /** bearer token → namespace; empty = no authentication (single tenant "default"). */
        tokens: z.record(z.string().min(8), z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/)).default({}),
        agentToken: agentTokenSchema,
      })
      .prefault({}),
    disk: z
      .object({
        /** Files of the in-process DISK tier; defaults to `<dataDir>/disk`. */
        root: z.string().optional(),
        capacityBytes: z
          .number()
          .int()
          .positive()
          .default(64 * 1024 ** 3),
      })
      .prefault({}),
    /** The object tier (see @pm/objects ObjectStoreConfigSchema); absent = no OBJECT tier. */
    objectStore: ObjectStoreConfigSchema.optional(),
  })
  .strict()
  .refine((c) => c.leases.defaultMs <= c.leases.maxMs, {
    message: "leases.defaultMs must not exceed leases.maxMs",
    path: ["leases", "defaultMs"],
  });

export type ApiConfig = z.infer<typeof ApiConfigSchema>;

export { ConfigError } from "@pm/config";

/** Environment overrides of the `api:` section. */
export const API_ENV: Readonly<Record<string, EnvBinding>> = {
  PM_HOST: { path: ["host"], kind: "string" },
  PM_HTTP_PORT: { path: ["httpPort"], kind: "number" },
  PM_GRPC_PORT: { path: ["grpcPort"], kind: "number" },
  PM_PUBLIC_URL: { path: ["publicUrl"], kind: "string" },
  PM_CATALOG_URL: { path: ["catalogUrl"], kind: "string" },
  PM_DATA_DIR: { path: ["dataDir"], kind: "string" },
  PM_LOG_LEVEL: { path: ["logLevel"], kind: "string" },
  PM_MAX_LEASE_MS: { path: ["leases", "maxMs"], kind: "number" },
  PM_ALLOCATION_TIMEOUT_MS: { path: ["allocationTimeoutMs"], kind: "number" },
  PM_AUTH_TOKENS: { path: ["auth", "tokens"], kind: "tokens" },
  PM_AGENT_TOKEN: { path: ["auth", "agentToken"], kind: "string" },
  PM_REDIS_URL: { path: ["queue", "redisUrl"], kind: "string" },
  PM_QUEUE_NAME: { path: ["queue", "name"], kind: "string" },
  PM_QUEUE_PREFIX: { path: ["queue", "prefix"], kind: "string" },
  ...Object.fromEntries(
    Object.entries(OBJECT_STORE_ENV).map(([name, v]) => [
      name,
      { path: ["objectStore", v.key], kind: v.kind },
    ]),
  ),
};

/**
 * Reads the `api:` section of the YAML file (if any), applies `PM_*` overrides and validates.
 * Throws ConfigError listing every problem.
 */
export function loadConfig(
  file: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): ApiConfig {
  return loadSection({ file, env, section: "api", schema: ApiConfigSchema, envTable: API_ENV });
}
