import { createHash, type Hash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { pipeline as pipeStreams, type Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
  type UploadPartCommandOutput,
} from "@aws-sdk/client-s3";
import { create, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type PayloadId, uuidToBytes } from "@pm/domain";
import {
  createS3Client,
  describeS3Error,
  isKeyOfPayload,
  isS3NotFound,
  type ObjectStoreConfig,
  s3Status,
  sidecarKeyOf,
} from "@pm/objects";
import {
  HashAlgorithm,
  PayloadArchiveMetadataSchema,
  PayloadDescriptorSchema,
  PayloadState,
  Tier,
} from "@pm/rpc";
import { TierError } from "./tier-backend.ts";

const MIB = 1024 * 1024;
/** S3's smallest part (all but the last). */
const MIN_PART_BYTES = 5 * MIB;
/** Read-stream buffer of each part: what a part holds in memory at a time. */
const STREAM_CHUNK_BYTES = MIB;
/** A sidecar larger than this is not ours; it is ignored rather than read into memory. */
const MAX_SIDECAR_BYTES = 4 * MIB;

export interface ObjectTierOptions {
  /** The only bucket this agent reads and writes. */
  readonly bucket: string;
  /** Part size of multipart uploads and of ranged downloads. */
  readonly partSizeBytes: number;
  /** Parts (or ranges) in flight at once per copy. */
  readonly concurrency: number;
  /**
   * Most parts per upload; the part size grows for larger payloads. 1000 is the default limit of
   * Swift's SLO manifests; AWS allows 10000.
   */
  readonly maxParts: number;
  /** Attempts per part, range or small request before a copy fails. */
  readonly attempts: number;
  /** Recorded as `producer` in the metadata sidecar (the agent id). */
  readonly producer: string;
  /** Compute a whole-object sha256 while uploading (one extra sequential read of the source). */
  readonly wholeChecksum: boolean;
}

/** Bucket and key of a payload's object, as the control plane sent them. */
export interface ObjectRef {
  readonly bucket: string;
  readonly key: string;
}

export interface ObjectCopyResult {
  readonly sizeBytes: number;
  /** `sha256:<hex>` of the whole object, when computed. */
  readonly checksum: string | undefined;
  readonly parts: number;
}

interface ChunkDigest {
  readonly offset: number;
  readonly length: number;
  readonly sha256: Uint8Array;
}

/**
 * Uploads regions to and downloads them from the object store, streaming: each part is read from
 * the region file by its own small read stream and sent with a known length, with at most
 * `concurrency` parts in flight, so memory stays a few MiB per part whatever the payload size. No
 * whole part is ever buffered (a Buffer body would also make the SDK hash it for the signature).
 *
 * After an upload it writes the `<key>.meta.json` sidecar (PayloadArchiveMetadata as protobuf JSON,
 * with sha256 digests of each part); a download checks each range against those digests when the
 * sidecar has them.
 */
export class ObjectTier {
  constructor(
    private readonly s3: S3Client,
    readonly opts: ObjectTierOptions,
  ) {
    if (opts.partSizeBytes < MIN_PART_BYTES)
      throw new Error(`object part size must be at least ${MIN_PART_BYTES} bytes`);
  }

  /** Refuses buckets and keys the control plane could not have chosen for this payload. */
  check(id: PayloadId, ref: ObjectRef): void {
    if (ref.bucket !== this.opts.bucket) {
      throw new TierError(
        "INVALID",
        `this agent uses bucket ${JSON.stringify(this.opts.bucket)}, not ${JSON.stringify(ref.bucket)}; give API and agents the same objectStore.bucket`,
      );
    }
    if (!isKeyOfPayload(ref.key, id))
      throw new TierError("INVALID", `object key ${JSON.stringify(ref.key)} is not the key of payload ${id}`);
  }

  /** Size of the object, or undefined when it does not exist. */
  async size(ref: ObjectRef): Promise<number | undefined> {
    try {
      const res = await this.retrying(`HEAD ${url(ref)}`, (signal) =>
        this.s3.send(new HeadObjectCommand({ Bucket: ref.bucket, Key: ref.key }), { abortSignal: signal }),
      );
      return res.ContentLength ?? 0;
    } catch (e) {
      if (e instanceof TierError && e.code === "NOT_FOUND") return undefined;
      throw e;
    }
  }

  /** Part size for a payload: the configured size, larger when the part count would exceed maxParts. */
  partSizeFor(sizeBytes: number): number {
    const min = Math.ceil(sizeBytes / this.opts.maxParts / MIB) * MIB;
    return Math.max(this.opts.partSizeBytes, min);
  }

  /** Uploads `sizeBytes` of the file at `path` to `ref`, then writes the sidecar. */
  async upload(id: PayloadId, path: string, sizeBytes: number, ref: ObjectRef): Promise<ObjectCopyResult> {
    const partSize = this.partSizeFor(sizeBytes);
    const whole = this.opts.wholeChecksum ? sha256OfFile(path, sizeBytes) : undefined;
    // The hashing pass must not be left unobserved if the upload fails first.
    whole?.catch(() => undefined);
    let chunks: ChunkDigest[];
    if (sizeBytes <= partSize) {
      chunks = [await this.putSingle(path, sizeBytes, ref)];
    } else {
      chunks = await this.putMultipart(path, sizeBytes, partSize, ref);
    }
    const digest = whole ? await whole : chunks.length === 1 ? chunks[0]!.sha256 : undefined;
    await this.writeSidecar(id, sizeBytes, ref, digest, chunks);
    return {
      sizeBytes,
      checksum: digest ? `sha256:${Buffer.from(digest).toString("hex")}` : undefined,
      parts: chunks.length,
    };
  }

  private async putSingle(path: string, sizeBytes: number, ref: ObjectRef): Promise<ChunkDigest> {
    return this.retrying(`PUT ${url(ref)}`, async (signal) => {
      const tap = fileRange(path, 0, sizeBytes);
      try {
        await this.s3.send(
          new PutObjectCommand({
            Bucket: ref.bucket,
            Key: ref.key,
            Body: tap,
            ContentLength: sizeBytes,
            ContentType: "application/octet-stream",
          }),
          { abortSignal: signal },
        );
      } finally {
        tap.destroy();
      }
      tap.expect(sizeBytes);
      return { offset: 0, length: sizeBytes, sha256: tap.digest() };
    });
  }

  private async putMultipart(
    path: string,
    sizeBytes: number,
    partSize: number,
    ref: ObjectRef,
  ): Promise<ChunkDigest[]> {
    const created = await this.retrying(`start multipart upload of ${url(ref)}`, (signal) =>
      this.s3.send(
        new CreateMultipartUploadCommand({
          Bucket: ref.bucket,
          Key: ref.key,
          ContentType: "application/octet-stream",
        }),
        { abortSignal: signal },
      ),
    );
    const uploadId = created.UploadId;
    if (!uploadId)
      throw new TierError("IO", `the object store started an upload of ${url(ref)} without an id`);
    const ranges = rangesOf(sizeBytes, partSize);
    const etags: string[] = new Array(ranges.length);
    const digests: ChunkDigest[] = new Array(ranges.length);
    try {
      await inPool(ranges.length, this.opts.concurrency, async (i, stop) => {
        const r = ranges[i]!;
        await this.retrying(
          `upload part ${i + 1}/${ranges.length} of ${url(ref)}`,
          async (signal) => {
            const tap = fileRange(path, r.offset, r.length);
            let res: UploadPartCommandOutput;
            try {
              res = await this.s3.send(
                new UploadPartCommand({
                  Bucket: ref.bucket,
                  Key: ref.key,
                  UploadId: uploadId,
                  PartNumber: i + 1,
                  Body: tap,
                  ContentLength: r.length,
                }),
                { abortSignal: signal },
              );
            } finally {
              tap.destroy();
            }
            tap.expect(r.length);
            if (!res.ETag)
              throw new TierError("IO", `part ${i + 1} of ${url(ref)} was stored without an ETag`);
            etags[i] = res.ETag;
            digests[i] = { ...r, sha256: tap.digest() };
          },
          stop,
        );
      });
      await this.retrying(`complete the upload of ${url(ref)}`, (signal) =>
        this.s3.send(
          new CompleteMultipartUploadCommand({
            Bucket: ref.bucket,
            Key: ref.key,
            UploadId: uploadId,
            MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
          }),
          { abortSignal: signal },
        ),
      );
    } catch (e) {
      await this.s3
        .send(new AbortMultipartUploadCommand({ Bucket: ref.bucket, Key: ref.key, UploadId: uploadId }))
        .catch(() => undefined);
      throw e;
    }
    return digests;
  }

  private async writeSidecar(
    id: PayloadId,
    sizeBytes: number,
    ref: ObjectRef,
    whole: Uint8Array | undefined,
    chunks: readonly ChunkDigest[],
  ): Promise<void> {
    const payloadId = { value: uuidToBytes(id) };
    const meta = create(PayloadArchiveMetadataSchema, {
      uuid: payloadId,
      metadataVersion: 1,
      archivedAt: timestampFromMs(Date.now()),
      producer: this.opts.producer,
      payloadDescriptor: create(PayloadDescriptorSchema, {
        payloadId,
        tier: Tier.OBJECT,
        state: PayloadState.DURABLE,
        location: {
          case: "object",
          value: { bucket: ref.bucket, key: ref.key, lengthBytes: BigInt(sizeBytes) },
        },
        sizeBytes: BigInt(sizeBytes),
      }),
      integrity: {
        algorithm: HashAlgorithm.HASH_SHA256,
        checksum: whole ?? new Uint8Array(),
        chunkHashes: chunks.map((c) => ({
          offset: BigInt(c.offset),
          length: BigInt(c.length),
          checksum: c.sha256,
        })),
      },
    });
    const body = toJsonString(PayloadArchiveMetadataSchema, meta, { prettySpaces: 2 });
    await this.retrying(`PUT ${url({ ...ref, key: sidecarKeyOf(ref.key) })}`, (signal) =>
      this.s3.send(
        new PutObjectCommand({
          Bucket: ref.bucket,
          Key: sidecarKeyOf(ref.key),
          Body: body,
          ContentType: "application/json",
        }),
        { abortSignal: signal },
      ),
    );
  }

  /** The per-range digests recorded in the sidecar, when they tile the whole object. */
  private async recordedChunks(ref: ObjectRef, sizeBytes: number): Promise<ChunkDigest[] | undefined> {
    let text: string;
    try {
      text = await this.retrying(`GET ${url({ ...ref, key: sidecarKeyOf(ref.key) })}`, async (signal) => {
        const res = await this.s3.send(
          new GetObjectCommand({ Bucket: ref.bucket, Key: sidecarKeyOf(ref.key) }),
          { abortSignal: signal },
        );
        if ((res.ContentLength ?? 0) > MAX_SIDECAR_BYTES) {
          (res.Body as Readable | undefined)?.destroy();
          return "";
        }
        return (await res.Body?.transformToString("utf8")) ?? "";
      });
    } catch (e) {
      if (e instanceof TierError && e.code === "NOT_FOUND") return undefined;
      throw e;
    }
    let meta: ReturnType<typeof fromJsonString<typeof PayloadArchiveMetadataSchema>>;
    try {
      meta = fromJsonString(PayloadArchiveMetadataSchema, text, { ignoreUnknownFields: true });
    } catch {
      return undefined;
    }
    const integrity = meta.integrity;
    if (!integrity || integrity.algorithm !== HashAlgorithm.HASH_SHA256) return undefined;
    const out: ChunkDigest[] = [];
    let next = 0;
    for (const c of integrity.chunkHashes) {
      const offset = Number(c.offset);
      const length = Number(c.length);
      if (offset !== next || length <= 0 || c.checksum.length !== 32) return undefined;
      out.push({ offset, length, sha256: c.checksum });
      next += length;
    }
    return next === sizeBytes ? out : undefined;
  }

  /**
   * Downloads `ref` into the first `sizeBytes` of the file at `path` (already created at that
   * size) with ranged GETs streamed to their offsets; each range is verified against the sidecar's
   * digests when there are any.
   */
  async download(ref: ObjectRef, path: string, sizeBytes: number): Promise<ObjectCopyResult> {
    const recorded = await this.recordedChunks(ref, sizeBytes);
    const ranges = recorded ?? rangesOf(sizeBytes, this.partSizeFor(sizeBytes));
    await inPool(ranges.length, this.opts.concurrency, async (i, stop) => {
      const r = ranges[i]!;
      const want = recorded?.[i]?.sha256;
      await this.retrying(
        `GET ${url(ref)} bytes ${r.offset}-${r.offset + r.length - 1}`,
        async (signal) => {
          const res = await this.s3.send(
            new GetObjectCommand({
              Bucket: ref.bucket,
              Key: ref.key,
              Range: `bytes=${r.offset}-${r.offset + r.length - 1}`,
            }),
            { abortSignal: signal },
          );
          const body = res.Body as Readable | undefined;
          if (!body || res.ContentLength !== r.length) {
            body?.destroy();
            throw new TierError(
              "IO",
              `the object store answered a range of ${url(ref)} with ${res.ContentLength} bytes instead of ${r.length}; it must support ranged GETs`,
            );
          }
          const tap = new HashTap(want !== undefined);
          await pipeline(
            body,
            tap,
            createWriteStream(path, { flags: "r+", start: r.offset, highWaterMark: STREAM_CHUNK_BYTES }),
            { signal },
          );
          tap.expect(r.length);
          if (want && !Buffer.from(want).equals(tap.digest())) {
            throw new TierError(
              "IO",
              `bytes ${r.offset}-${r.offset + r.length - 1} of ${url(ref)} do not match the sha256 in its sidecar; the object is corrupt`,
            );
          }
        },
        stop,
      );
    });
    return { sizeBytes, checksum: undefined, parts: ranges.length };
  }

  /**
   * Runs one request with retries for transient failures (network errors, 5xx, throttling, short
   * bodies). `outer` aborts it when a sibling part has failed. S3 errors become TierErrors.
   */
  private async retrying<T>(
    what: string,
    fn: (signal: AbortSignal) => Promise<T>,
    outer?: AbortSignal,
  ): Promise<T> {
    let last: unknown;
    for (let attempt = 1; attempt <= this.opts.attempts; attempt++) {
      if (outer?.aborted) throw new TierError("IO", `${what}: cancelled after another part failed`);
      const ctl = new AbortController();
      const onAbort = () => ctl.abort();
      outer?.addEventListener("abort", onAbort, { once: true });
      try {
        return await fn(ctl.signal);
      } catch (e) {
        last = e;
        if (!isTransient(e) || outer?.aborted) break;
        await new Promise((r) => setTimeout(r, 100 * 2 ** (attempt - 1)));
      } finally {
        outer?.removeEventListener("abort", onAbort);
      }
    }
    if (last instanceof TierError) throw last;
    if (isS3NotFound(last)) throw new TierError("NOT_FOUND", `${what}: the object store has no such object`);
    throw new TierError("IO", `${what} failed: ${describeS3Error(last)}`);
  }

  close(): void {
    this.s3.destroy();
  }
}

/** Builds the object tier of the agent's config, with its own S3 client. */
export function objectTier(
  cfg: ObjectStoreConfig & {
    readonly partSizeBytes: number;
    readonly concurrency: number;
    readonly maxParts: number;
  },
  producer: string,
): ObjectTier {
  // Bodies are streams the SDK cannot rewind: ObjectTier retries with fresh streams itself.
  const s3 = createS3Client(cfg, { maxAttempts: 1 });
  return new ObjectTier(s3, {
    bucket: cfg.bucket,
    partSizeBytes: cfg.partSizeBytes,
    concurrency: cfg.concurrency,
    maxParts: cfg.maxParts,
    attempts: 3,
    producer,
    wholeChecksum: true,
  });
}

function url(ref: ObjectRef): string {
  return `s3://${ref.bucket}/${ref.key}`;
}

function rangesOf(sizeBytes: number, partSize: number): { offset: number; length: number }[] {
  const out = [];
  for (let offset = 0; offset < sizeBytes; offset += partSize)
    out.push({ offset, length: Math.min(partSize, sizeBytes - offset) });
  return out;
}

function isTransient(e: unknown): boolean {
  if (e instanceof TierError) return e.code === "IO" && /short|ended/.test(e.message);
  if (isS3NotFound(e)) return false;
  const status = s3Status(e);
  if (status === undefined) return (e as { name?: string }).name !== "AbortError";
  return status >= 500 || status === 429 || status === 408;
}

/**
 * Runs `n` tasks with at most `limit` at once, in index order. The first failure stops new tasks,
 * aborts the running ones through the signal, and is rethrown once they have settled.
 */
async function inPool(
  n: number,
  limit: number,
  task: (i: number, stop: AbortSignal) => Promise<void>,
): Promise<void> {
  const ctl = new AbortController();
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (next < n && failure === undefined) {
      const i = next++;
      try {
        await task(i, ctl.signal);
      } catch (e) {
        if (failure === undefined) failure = e;
        ctl.abort();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
  if (failure !== undefined) throw failure;
}

/** Passes bytes through, counting them and (optionally) hashing them with sha256. */
class HashTap extends Transform {
  private readonly hash: Hash | undefined;
  private bytes = 0;

  constructor(hashing = true) {
    super({ highWaterMark: STREAM_CHUNK_BYTES });
    this.hash = hashing ? createHash("sha256") : undefined;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash?.update(chunk);
    done(null, chunk);
  }

  /** Fails when the stream carried a different number of bytes than the range holds. */
  expect(length: number): void {
    if (this.bytes !== length)
      throw new TierError("IO", `stream ended short: ${this.bytes} of ${length} bytes were transferred`);
  }

  digest(): Uint8Array {
    return this.hash ? new Uint8Array(this.hash.digest()) : new Uint8Array();
  }
}

/**
 * A stream of `length` bytes of a file from `offset`, counted and hashed as they pass. Destroying
 * it closes the file (a request that failed or was aborted never leaks a descriptor).
 */
function fileRange(path: string, offset: number, length: number): HashTap {
  const tap = new HashTap();
  const file = createReadStream(path, {
    start: offset,
    end: offset + length - 1,
    highWaterMark: STREAM_CHUNK_BYTES,
  });
  pipeStreams(file, tap, () => undefined);
  return tap;
}

async function sha256OfFile(path: string, sizeBytes: number): Promise<Uint8Array> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path, {
    start: 0,
    end: sizeBytes - 1,
    highWaterMark: STREAM_CHUNK_BYTES,
  }))
    h.update(chunk as Buffer);
  return new Uint8Array(h.digest());
}
