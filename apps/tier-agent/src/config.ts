import { hostname } from "node:os";
import { agentTokenSchema, type EnvBinding, loadSection } from "@pm/config";
import { OBJECT_STORE_ENV, ObjectStoreConfigSchema } from "@pm/objects";
import { z } from "zod";

const bytes = z.number().int().positive();
const watermarks = {
  highWatermark: z.number().gt(0).lte(1).default(0.9),
  lowWatermark: z.number().gt(0).lte(1).default(0.75),
};

/** The tier agent's configuration: YAML `agent:` section, then `PM_AGENT_*` overrides, then defaults. */
export const AgentConfigSchema = z
  .object({
    agentId: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,64}$/)
      .default(`agent-${hostname()}`.slice(0, 64).replace(/[^A-Za-z0-9._-]/g, "-")),
    host: z.string().min(1).default(hostname()),
    listenHost: z.string().default("127.0.0.1"),
    port: z.number().int().min(0).max(65535).default(7070),
    /** URL the control plane uses to reach this agent; default http://<listenHost>:<port>. */
    advertiseUrl: z.string().url().optional(),
    /** The API's HTTP URL, where the agent registers and heartbeats. */
    controlPlaneUrl: z.string().url().default("http://127.0.0.1:8080"),
    /**
     * The agent token (PM_AGENT_TOKEN), the same for the API, the workers and the agents: sent to
     * the registry, and required of every call to this agent (`authorization: Bearer <token>`).
     * "" = none: the agent serves anyone who can reach it (development).
     */
    controlPlaneToken: agentTokenSchema,
    logLevel: z.enum(["debug", "info", "warn", "error", "silent"]).default("info"),
    /** Regions the catalog does not know are freed only after this long (allocations in flight). */
    orphanGraceMs: z.number().int().nonnegative().default(60_000),
    tiers: z
      .object({
        ram: z
          .object({
            enabled: z.boolean().default(true),
            capacityBytes: bytes.default(4 * 1024 ** 3),
            /** /dev/shm, or a tmpfs mounted with huge=always for huge-page-backed regions. */
            dir: z.string().default("/dev/shm"),
            prefix: z
              .string()
              .regex(/^[A-Za-z0-9._-]{0,32}$/)
              .default("pm-"),
            mode: z.number().int().min(0).max(0o777).default(0o600),
            ...watermarks,
          })
          .prefault({}),
        disk: z
          .object({
            enabled: z.boolean().default(true),
            capacityBytes: bytes.default(64 * 1024 ** 3),
            root: z.string().default("./.payload-manager/disk"),
            mode: z.number().int().min(0).max(0o777).default(0o600),
            ...watermarks,
          })
          .prefault({}),
        gpu: z
          .object({
            /** auto: enabled when libcuda loads and a device exists. */
            enabled: z.union([z.boolean(), z.literal("auto")]).default("auto"),
            devices: z.array(z.number().int().nonnegative()).default([0]),
            capacityBytes: bytes.optional(),
            ...watermarks,
          })
          .prefault({}),
      })
      .prefault({}),
    /**
     * The object store this agent uploads spilled payloads to and downloads promoted ones from
     * (the same bucket as the API's objectStore). Absent: no copies to or from OBJECT here.
     */
    objectStore: ObjectStoreConfigSchema.extend({
      /** Multipart part size; memory does not grow with it (parts are streamed from the region). */
      partSizeBytes: z
        .number()
        .int()
        .min(5 * 1024 ** 2)
        .max(5 * 1024 ** 3)
        .default(64 * 1024 ** 2),
      /** Parts or ranges in flight per copy. */
      concurrency: z.number().int().min(1).max(64).default(4),
      /** Most parts per object (Swift SLO default 1000; AWS 10000); larger payloads get larger parts. */
      maxParts: z.number().int().min(1).max(10_000).default(1000),
    }).optional(),
  })
  .strict();

export type AgentConfig = z.infer<typeof AgentConfigSchema>;

/** Invalid agent configuration (the shared ConfigError; every problem listed). */
export { ConfigError as AgentConfigError } from "@pm/config";

/** Environment overrides of the `agent:` section. */
export const AGENT_ENV: Readonly<Record<string, EnvBinding>> = {
  PM_AGENT_ID: { path: ["agentId"], kind: "string" },
  PM_AGENT_HOST: { path: ["host"], kind: "string" },
  PM_AGENT_LISTEN_HOST: { path: ["listenHost"], kind: "string" },
  PM_AGENT_PORT: { path: ["port"], kind: "number" },
  PM_AGENT_ADVERTISE_URL: { path: ["advertiseUrl"], kind: "string" },
  PM_CONTROL_PLANE_URL: { path: ["controlPlaneUrl"], kind: "string" },
  PM_AGENT_TOKEN: { path: ["controlPlaneToken"], kind: "string" },
  PM_LOG_LEVEL: { path: ["logLevel"], kind: "string" },
  PM_AGENT_ORPHAN_GRACE_MS: { path: ["orphanGraceMs"], kind: "number" },
  PM_RAM_CAPACITY_BYTES: { path: ["tiers", "ram", "capacityBytes"], kind: "number" },
  PM_RAM_DIR: { path: ["tiers", "ram", "dir"], kind: "string" },
  PM_RAM_PREFIX: { path: ["tiers", "ram", "prefix"], kind: "string" },
  PM_DISK_ROOT: { path: ["tiers", "disk", "root"], kind: "string" },
  PM_DISK_CAPACITY_BYTES: { path: ["tiers", "disk", "capacityBytes"], kind: "number" },
  PM_GPU_ENABLED: { path: ["tiers", "gpu", "enabled"], kind: "bool-or-auto" },
  ...Object.fromEntries(
    Object.entries(OBJECT_STORE_ENV).map(([name, v]) => [
      name,
      { path: ["objectStore", v.key], kind: v.kind },
    ]),
  ),
  PM_S3_PART_SIZE_BYTES: { path: ["objectStore", "partSizeBytes"], kind: "number" },
  PM_S3_CONCURRENCY: { path: ["objectStore", "concurrency"], kind: "number" },
};

/** Reads the `agent:` section of the YAML file, applies PM_* overrides, validates (every problem listed). */
export function loadAgentConfig(
  file: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): AgentConfig {
  return loadSection({ file, env, section: "agent", schema: AgentConfigSchema, envTable: AGENT_ENV });
}
