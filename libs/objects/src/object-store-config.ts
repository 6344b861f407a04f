import { z } from "zod";
import { isValidKeyPrefix } from "./object-keys.ts";

/**
 * The `objectStore` section every role shares (API, worker, agent): an S3-compatible store. When set,
 * OBJECT allocations get presigned PUT URLs, reads of object payloads presigned GET URLs, and spills
 * to OBJECT run on tier agents with the same bucket. No object bytes pass through the API or worker.
 */
export const ObjectStoreConfigSchema = z
  .object({
    /** S3 endpoint URL; absent = AWS S3 for the region. */
    endpoint: z.string().url().optional(),
    region: z.string().min(1).default("us-east-1"),
    bucket: z.string().min(3).max(63),
    accessKeyId: z.string().min(1),
    secretAccessKey: z.string().min(1),
    forcePathStyle: z.boolean().default(false),
    /** Key prefix of payload objects (`<prefix><uuid>`); path segments ending in "/". */
    keyPrefix: z
      .string()
      .refine(isValidKeyPrefix, 'must be empty or path segments of [A-Za-z0-9._-] ending in "/"')
      .default("payloads/"),
    /** Longest validity of a presigned URL; a lease's URL also ends with the lease. */
    urlTtlMs: z
      .number()
      .int()
      .min(1_000)
      .max(7 * 24 * 3_600_000)
      .default(15 * 60_000),
  })
  .strict();

export type ObjectStoreSettings = z.infer<typeof ObjectStoreConfigSchema>;

/** Environment overrides of the objectStore section (the names services.sh prints). */
export const OBJECT_STORE_ENV: Readonly<
  Record<string, { key: keyof ObjectStoreSettings; kind: "string" | "bool" }>
> = {
  PM_S3_ENDPOINT: { key: "endpoint", kind: "string" },
  PM_S3_REGION: { key: "region", kind: "string" },
  PM_S3_BUCKET: { key: "bucket", kind: "string" },
  PM_S3_ACCESS_KEY_ID: { key: "accessKeyId", kind: "string" },
  PM_S3_SECRET_ACCESS_KEY: { key: "secretAccessKey", kind: "string" },
  PM_S3_FORCE_PATH_STYLE: { key: "forcePathStyle", kind: "bool" },
};
