import { S3Client } from "@aws-sdk/client-s3";

/** Where the object tier lives and how to reach it (the `objectStore` config section of API and agent). */
export interface ObjectStoreConfig {
  /** S3 endpoint URL, e.g. http://127.0.0.1:9000; empty string = AWS for the region. */
  readonly endpoint: string;
  readonly region: string;
  /** Bucket that holds payload objects and their `.meta.json` sidecars. */
  readonly bucket: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** Path-style URLs (http://host/bucket/key): needed by Swift, MinIO and most local servers. */
  readonly forcePathStyle: boolean;
}

export interface S3ClientOptions {
  /**
   * Attempts per request, SDK retries included. Callers that send streamed bodies set 1 and retry
   * themselves with a fresh stream: the SDK cannot rewind a consumed stream.
   */
  readonly maxAttempts?: number;
}

/**
 * An S3 client for the object tier. Checksums are computed and validated only when an operation
 * requires them: by default the SDK sends streamed uploads `aws-chunked` with a checksum trailer,
 * which S3-compatible servers such as OpenStack Swift's s3api reject with 501.
 */
export function createS3Client(cfg: ObjectStoreConfig, opts: S3ClientOptions = {}): S3Client {
  return new S3Client({
    ...(cfg.endpoint ? { endpoint: cfg.endpoint } : {}),
    region: cfg.region,
    forcePathStyle: cfg.forcePathStyle,
    credentials: { accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    ...(opts.maxAttempts !== undefined ? { maxAttempts: opts.maxAttempts } : {}),
  });
}

/** HTTP status of an SDK error (undefined for network failures before a response). */
export function s3Status(e: unknown): number | undefined {
  return (e as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

/** True when S3 answered that the object (or upload) does not exist. */
export function isS3NotFound(e: unknown): boolean {
  const name = (e as { name?: string } | undefined)?.name;
  return s3Status(e) === 404 || name === "NotFound" || name === "NoSuchKey" || name === "NoSuchUpload";
}

/** A short description of an SDK error for messages and logs (never the credentials). */
export function describeS3Error(e: unknown): string {
  const err = e as { name?: string; message?: string; code?: string };
  const status = s3Status(e);
  const parts = [err.name ?? "Error", status ? `HTTP ${status}` : err.code, err.message].filter(Boolean);
  return parts.join(": ");
}
