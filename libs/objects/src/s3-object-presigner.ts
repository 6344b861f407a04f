import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { DomainError, type ObjectPresigner, type Placement } from "@pm/domain";
import { describeS3Error, isS3NotFound } from "./s3-client.ts";

/** SigV4 presigned URLs live at most 7 days. */
const MAX_EXPIRES_S = 7 * 24 * 3600;

export interface S3ObjectPresignerOptions {
  /** The clock the lease expiries come from (the domain's Clock); default Date.now. */
  readonly now?: () => number;
}

/**
 * Presigns GET/PUT URLs scoped to one object, and checks objects with HEAD. It never reads or
 * writes object bytes: clients and tier agents move those straight to and from the store.
 *
 * A SigV4 URL expires at X-Amz-Date + X-Amz-Expires, both whole seconds. The URL is signed with a
 * date such that this instant is the last whole second at or before `expiresAtMs`, so a URL
 * handed out with a lease never outlives the lease (it may end up to a second earlier).
 */
export class S3ObjectPresigner implements ObjectPresigner {
  private readonly now: () => number;

  constructor(
    private readonly s3: S3Client,
    opts: S3ObjectPresignerOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
  }

  async presign(placement: Placement, method: "GET" | "PUT", expiresAtMs: number): Promise<string> {
    const { bucket, key } = objectOf(placement);
    const endSec = Math.floor(expiresAtMs / 1000);
    const expiresIn = Math.min(MAX_EXPIRES_S, Math.max(1, endSec - Math.floor(this.now() / 1000)));
    const signingDate = new Date((endSec - expiresIn) * 1000);
    const command =
      method === "PUT"
        ? new PutObjectCommand({ Bucket: bucket, Key: key })
        : new GetObjectCommand({ Bucket: bucket, Key: key });
    try {
      return await getSignedUrl(this.s3, command, { expiresIn, signingDate });
    } catch (e) {
      throw new DomainError(
        "UNAVAILABLE",
        `cannot presign ${method} for s3://${bucket}/${key}: ${describeS3Error(e)}; check the objectStore settings`,
      );
    }
  }

  async head(placement: Placement): Promise<number | undefined> {
    const { bucket, key } = objectOf(placement);
    try {
      const res = await this.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return res.ContentLength ?? 0;
    } catch (e) {
      if (isS3NotFound(e)) return undefined;
      throw new DomainError(
        "UNAVAILABLE",
        `the object store did not answer HEAD s3://${bucket}/${key} (${describeS3Error(e)}); retry shortly`,
      );
    }
  }
}

function objectOf(placement: Placement): { bucket: string; key: string } {
  const l = placement.location;
  if (l.kind !== "object") throw new Error(`placement on ${placement.tier} is not an object placement`);
  return { bucket: l.bucket, key: l.key };
}
