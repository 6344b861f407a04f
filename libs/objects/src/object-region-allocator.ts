import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  type ListMultipartUploadsCommandOutput,
  type S3Client,
} from "@aws-sdk/client-s3";
import {
  type AllocateRegionRequest,
  type CopyRegionRequest,
  DomainError,
  type PayloadId,
  type Placement,
  type RegionAllocator,
} from "@pm/domain";
import { DEFAULT_KEY_PREFIX, isValidKeyPrefix, objectKeyOf, sidecarKeyOf } from "./object-keys.ts";
import { describeS3Error, isS3NotFound } from "./s3-client.ts";

export interface ObjectRegionAllocatorOptions {
  readonly bucket: string;
  /** Key prefix of payload objects; default "payloads/". */
  readonly keyPrefix?: string;
}

/** Bucket and key of an object-tier region. */
export interface ObjectTarget {
  readonly bucket: string;
  readonly key: string;
}

/**
 * The OBJECT tier as a RegionAllocator. Allocating only chooses the key (`payloads/<uuid>` in the
 * configured bucket) — no bytes, no request to the store: the client uploads to a presigned URL.
 * Freeing deletes the object, its `.meta.json` sidecar and any unfinished multipart upload, and
 * succeeds when they are already gone. Copies are not done here: bytes move through tier agents
 * (see TieredRegionAllocator).
 */
export class ObjectRegionAllocator implements RegionAllocator {
  readonly bucket: string;
  readonly keyPrefix: string;

  constructor(
    private readonly s3: S3Client,
    opts: ObjectRegionAllocatorOptions,
  ) {
    this.bucket = opts.bucket;
    this.keyPrefix = opts.keyPrefix ?? DEFAULT_KEY_PREFIX;
    if (!opts.bucket) throw new Error("the object tier needs a bucket");
    if (!isValidKeyPrefix(this.keyPrefix))
      throw new Error(`invalid object key prefix ${JSON.stringify(this.keyPrefix)}`);
  }

  /** The object location a payload's bytes go to. */
  targetOf(payloadId: PayloadId): ObjectTarget {
    return { bucket: this.bucket, key: objectKeyOf(this.keyPrefix, payloadId) };
  }

  placementOf(target: ObjectTarget, sizeBytes: number, host = ""): Placement {
    return {
      tier: "OBJECT",
      agentId: "",
      host,
      location: { kind: "object", bucket: target.bucket, key: target.key },
      lengthBytes: sizeBytes,
    };
  }

  async allocate(req: AllocateRegionRequest): Promise<Placement> {
    if (req.tier !== "OBJECT")
      throw new DomainError(
        "TIER_UNAVAILABLE",
        `the object store serves only the OBJECT tier, not ${req.tier}`,
      );
    return this.placementOf(this.targetOf(req.payloadId), req.sizeBytes);
  }

  /**
   * Checks that a copy may write the payload's object. An object that is already there belongs to
   * an older placement a read lease still holds (it is freed when the lease ends): overwriting it
   * would change bytes under a reader, and freeing that placement later would delete the new copy.
   */
  async reserveCopyTarget(payloadId: PayloadId): Promise<ObjectTarget> {
    const target = this.targetOf(payloadId);
    if (await this.exists(target)) {
      throw new DomainError(
        "LEASE_CONFLICT",
        `payload ${payloadId} still has an older object copy at s3://${target.bucket}/${target.key} held for a read lease; retry the move after the lease is released`,
        { payloadId },
      );
    }
    return target;
  }

  private async exists(t: ObjectTarget): Promise<boolean> {
    try {
      await this.s3.send(new HeadObjectCommand({ Bucket: t.bucket, Key: t.key }));
      return true;
    } catch (e) {
      if (isS3NotFound(e)) return false;
      throw unavailable(`HEAD s3://${t.bucket}/${t.key}`, e);
    }
  }

  /**
   * An empty key is a move's provisional target (recorded before the copy, see the domain's
   * `provisionalPlacement`): it means the key this payload's copy writes, `targetOf(payloadId)`.
   */
  async free(payloadId: PayloadId, placement: Placement): Promise<void> {
    const given = placement.location;
    if (given.kind !== "object")
      throw new Error(`cannot free a ${placement.tier} placement in the object store`);
    const l = given.key === "" ? this.targetOf(payloadId) : given;
    await this.abortUploads(l.bucket, l.key);
    for (const key of [l.key, sidecarKeyOf(l.key)]) {
      try {
        await this.s3.send(new DeleteObjectCommand({ Bucket: l.bucket, Key: key }));
      } catch (e) {
        if (!isS3NotFound(e)) throw unavailable(`DELETE s3://${l.bucket}/${key}`, e);
      }
    }
  }

  /** Aborts multipart uploads of exactly this key left behind by an interrupted agent copy. */
  private async abortUploads(bucket: string, key: string): Promise<void> {
    let res: ListMultipartUploadsCommandOutput;
    try {
      res = await this.s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }));
    } catch (e) {
      if (isS3NotFound(e)) return;
      throw unavailable(`list multipart uploads of s3://${bucket}/${key}`, e);
    }
    for (const u of res.Uploads ?? []) {
      if (u.Key !== key || !u.UploadId) continue;
      try {
        await this.s3.send(
          new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: u.UploadId }),
        );
      } catch (e) {
        if (!isS3NotFound(e)) throw unavailable(`abort multipart upload of s3://${bucket}/${key}`, e);
      }
    }
  }

  async copy(req: CopyRegionRequest): Promise<Placement> {
    throw new DomainError(
      "TIER_UNAVAILABLE",
      `copies of payload ${req.payloadId} to or from the object store run on a tier agent; use the tiered allocator`,
    );
  }
}

function unavailable(what: string, e: unknown): DomainError {
  return new DomainError(
    "UNAVAILABLE",
    `the object store failed ${what} (${describeS3Error(e)}); retry shortly, and check the objectStore settings if it persists`,
  );
}
