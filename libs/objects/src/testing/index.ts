import {
  DeleteObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type S3Client,
} from "@aws-sdk/client-s3";
import type { ObjectStoreConfig } from "../s3-client.ts";
import { isS3NotFound } from "../s3-client.ts";

/**
 * The S3 server the object-tier tests talk to: `infra/dev/services.sh` prints these PM_S3_*
 * variables (OpenStack Swift s3api on 127.0.0.1:9000); tests use the separate test bucket.
 */
export function testObjectStore(
  env: Readonly<Record<string, string | undefined>> = process.env,
): ObjectStoreConfig {
  return {
    endpoint: env.PM_S3_ENDPOINT ?? "http://127.0.0.1:9000",
    region: env.PM_S3_REGION ?? "us-east-1",
    bucket: env.PM_S3_TEST_BUCKET ?? "payload-manager-test",
    accessKeyId: env.PM_S3_ACCESS_KEY_ID ?? "test:tester",
    secretAccessKey: env.PM_S3_SECRET_ACCESS_KEY ?? "testing",
    forcePathStyle: (env.PM_S3_FORCE_PATH_STYLE ?? "true") === "true",
  };
}

/** The PM_S3_* variables that point a payload-manager process at the test bucket. */
export function testObjectStoreEnv(cfg: ObjectStoreConfig = testObjectStore()): Record<string, string> {
  return {
    PM_S3_ENDPOINT: cfg.endpoint,
    PM_S3_REGION: cfg.region,
    PM_S3_BUCKET: cfg.bucket,
    PM_S3_ACCESS_KEY_ID: cfg.accessKeyId,
    PM_S3_SECRET_ACCESS_KEY: cfg.secretAccessKey,
    PM_S3_FORCE_PATH_STYLE: String(cfg.forcePathStyle),
  };
}

/** Size of an object, or undefined when it does not exist. */
export async function objectSize(s3: S3Client, bucket: string, key: string): Promise<number | undefined> {
  try {
    return (await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ContentLength ?? 0;
  } catch (e) {
    if (isS3NotFound(e)) return undefined;
    throw e;
  }
}

/** Deletes every object under `prefix` (test clean-up). */
export async function deletePrefix(s3: S3Client, bucket: string, prefix: string): Promise<void> {
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  for (const o of listed.Contents ?? [])
    if (o.Key) await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key }));
}
