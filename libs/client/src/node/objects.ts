import { type PayloadDescriptor, PromotionPolicy, Tier } from "@pm/rpc";
import { idBytes, idText, type PayloadClient } from "../index.ts";

export interface PutObjectOptions {
  readonly ttlMs?: number;
  readonly noEvict?: boolean;
  /** Writer-reported checksum recorded at commit, `<algorithm>:<hex>`. */
  readonly checksum?: string;
  readonly signal?: AbortSignal;
}

export interface PutObjectResult {
  readonly id: string;
  /** The committed (DURABLE) descriptor. */
  readonly descriptor: PayloadDescriptor;
  /** `s3://bucket/key` the bytes were uploaded to. */
  readonly uploadPath: string;
}

export interface GetObjectOptions {
  /** Lease length; the presigned GET URL expires with it. Default 20 s. */
  readonly leaseMs?: number;
  readonly signal?: AbortSignal;
}

/** An object-tier payload being read: the response body streams from the object store. */
export interface ObjectStream {
  readonly id: string;
  readonly descriptor: PayloadDescriptor;
  readonly sizeBytes: number;
  readonly body: ReadableStream<Uint8Array>;
  /** Releases the read lease (call once the body has been read or cancelled). */
  release(): Promise<void>;
}

function objectUrl(d: PayloadDescriptor | undefined, what: string): string {
  if (d?.location.case !== "object" || !d.location.value.url) {
    throw new Error(
      `${what} answered without a presigned object URL; the payload is not on TIER_OBJECT, or the server has no object store configured`,
    );
  }
  return d.location.value.url;
}

async function failure(res: Response, what: string): Promise<Error> {
  const text = await res.text().catch(() => "");
  return new Error(`${what} failed with HTTP ${res.status}: ${text.slice(0, 300)}`);
}

/**
 * Stores `body` as a new object-tier payload: AllocatePayload(TIER_OBJECT) → PUT the bytes to the
 * presigned URL straight to the object store → CommitPayload, which the server accepts only once
 * the object is there with the allocated size. A file-backed Blob (`fs.openAsBlob`) is streamed
 * from disk. On failure after allocation the payload is deleted.
 */
export async function putObject(
  client: PayloadClient,
  body: Uint8Array | Blob,
  opts: PutObjectOptions = {},
): Promise<PutObjectResult> {
  const sizeBytes = body instanceof Blob ? body.size : body.byteLength;
  const res = await client.catalog.allocatePayload({
    sizeBytes: BigInt(sizeBytes),
    preferredTier: Tier.OBJECT,
    ttlMs: BigInt(opts.ttlMs ?? 0),
    noEvict: opts.noEvict ?? false,
  });
  const d = res.payloadDescriptor;
  if (!d) throw new Error("AllocatePayload answered without a descriptor");
  try {
    const url = objectUrl(d, "AllocatePayload");
    const put = await fetch(url, {
      method: "PUT",
      // The DOM typings accept only ArrayBuffer-backed views; any Uint8Array works at run time.
      body: body as BodyInit,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    if (!put.ok) throw await failure(put, `upload of payload ${idText(d.payloadId)}`);
    await put.body?.cancel();
    const committed = await client.catalog.commitPayload({
      id: d.payloadId,
      sizeBytes: d.sizeBytes,
      checksum: opts.checksum ?? "",
    });
    return {
      id: idText(d.payloadId),
      descriptor: committed.payloadDescriptor ?? d,
      uploadPath: res.objectUploadPath,
    };
  } catch (e) {
    await client.catalog.delete({ id: d.payloadId, force: true }).catch(() => undefined);
    throw e;
  }
}

/**
 * Leases an object-tier payload and opens its bytes with the presigned GET URL (valid no longer
 * than the lease). Call release() when done with the body.
 */
export async function getObjectStream(
  client: PayloadClient,
  id: string,
  opts: GetObjectOptions = {},
): Promise<ObjectStream> {
  const lease = await client.data.acquireReadLease({
    id: idBytes(id),
    minTier: Tier.UNSPECIFIED,
    promotionPolicy: PromotionPolicy.BEST_EFFORT,
    minLeaseDurationMs: BigInt(opts.leaseMs ?? 20_000),
  });
  const release = async () => {
    await client.data.releaseLease({ leaseId: lease.leaseId });
  };
  try {
    const url = objectUrl(lease.payloadDescriptor, "AcquireReadLease");
    const res = await fetch(url, opts.signal ? { signal: opts.signal } : {});
    if (!res.ok || !res.body) throw await failure(res, `download of payload ${id}`);
    const d = lease.payloadDescriptor!;
    return { id, descriptor: d, sizeBytes: Number(d.sizeBytes), body: res.body, release };
  } catch (e) {
    await release().catch(() => undefined);
    throw e;
  }
}

/** Reads a whole object-tier payload into memory under a read lease (released before returning). */
export async function getObject(
  client: PayloadClient,
  id: string,
  opts: GetObjectOptions = {},
): Promise<Uint8Array> {
  const s = await getObjectStream(client, id, opts);
  try {
    const bytes = new Uint8Array(await new Response(s.body).arrayBuffer());
    if (bytes.byteLength !== s.sizeBytes)
      throw new Error(`payload ${id} holds ${s.sizeBytes} bytes but ${bytes.byteLength} were read`);
    return bytes;
  } finally {
    await s.release();
  }
}
