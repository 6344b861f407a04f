import { readFileSync } from "node:fs";
import { OBJECT_STORE_ENV, ObjectStoreConfigSchema } from "@pm/objects";
import { parse as parseYaml } from "yaml";
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
        agentToken: z.string().default(""),
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

/** Thrown when configuration is invalid; lists every problem so an operator fixes them in one go. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

const ENV: Record<string, { path: string[]; kind: "string" | "number" | "bool" | "tokens" }> = {
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

function setIn(obj: Record<string, unknown>, path: string[], value: unknown) {
  let cur = obj;
  for (const k of path.slice(0, -1)) {
    if (typeof cur[k] !== "object" || cur[k] === null) cur[k] = {};
    cur = cur[k] as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = value;
}

/**
 * Reads the `api:` section of the YAML file (if any), applies `PM_*` overrides and validates.
 * Throws ConfigError listing every problem.
 */
export function loadConfig(
  file: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): ApiConfig {
  const problems: string[] = [];
  let raw: Record<string, unknown> = {};
  if (file) {
    try {
      const doc = parseYaml(readFileSync(file, "utf8")) as Record<string, unknown> | null;
      raw = (doc?.api as Record<string, unknown> | undefined) ?? {};
    } catch (e) {
      throw new ConfigError([`cannot read config file ${file}: ${(e as Error).message}`]);
    }
  }
  for (const [name, spec] of Object.entries(ENV)) {
    const v = env[name];
    if (v === undefined || v === "") continue;
    if (spec.kind === "number") {
      const n = Number(v);
      if (!Number.isFinite(n)) problems.push(`${name}=${v} is not a number`);
      else setIn(raw, spec.path, n);
    } else if (spec.kind === "bool") {
      if (!["true", "false", "1", "0"].includes(v)) problems.push(`${name}=${v} must be true or false`);
      else setIn(raw, spec.path, v === "true" || v === "1");
    } else if (spec.kind === "tokens") {
      const tokens: Record<string, string> = {};
      for (const pair of v.split(",")) {
        const [token, ns] = pair.split("=");
        if (!token || !ns) problems.push(`${name} must look like token=namespace,token2=namespace2`);
        else tokens[token.trim()] = ns.trim();
      }
      setIn(raw, spec.path, tokens);
    } else {
      setIn(raw, spec.path, v);
    }
  }
  const parsed = ApiConfigSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues)
      problems.push(`api.${issue.path.join(".") || "(root)"}: ${issue.message}`);
  }
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  return parsed.data;
}
