import { checksum, type RegionMapping } from "@pm/native";
import { type PayloadDescriptor, type Tier as PbTier, PromotionPolicy, Tier } from "@pm/rpc";
import { idBytes, idText, type PayloadClient } from "../index.ts";
import { mapDescriptor } from "./regions.ts";

/** Window size for streaming reads and writes: large enough for throughput, small in memory. */
export const DEFAULT_CHUNK_BYTES = 64 * 1024 * 1024;

export interface PutOptions {
  readonly tier: PbTier;
  readonly ttlMs?: number;
  readonly noEvict?: boolean;
  readonly preferredHost?: string;
  /** Compute an xxh64 checksum of the written bytes (off the JS thread) and record it at commit. */
  readonly checksum?: boolean;
  /** Called as bytes are written, for progress bars. */
  readonly onProgress?: (written: number, total: number) => void;
}

export interface PutResult {
  readonly id: string;
  readonly descriptor: PayloadDescriptor;
  readonly checksum: string | undefined;
}

async function allocate(
  client: PayloadClient,
  sizeBytes: number,
  opts: PutOptions,
): Promise<PayloadDescriptor> {
  const res = await client.catalog.allocatePayload({
    sizeBytes: BigInt(sizeBytes),
    preferredTier: opts.tier,
    ttlMs: BigInt(opts.ttlMs ?? 0),
    noEvict: opts.noEvict ?? false,
    preferredHost: opts.preferredHost ?? "",
  });
  if (!res.payloadDescriptor) throw new Error("AllocatePayload answered without a descriptor");
  return res.payloadDescriptor;
}

async function commit(
  client: PayloadClient,
  d: PayloadDescriptor,
  sum: string | undefined,
): Promise<PutResult> {
  const res = await client.catalog.commitPayload({
    id: d.payloadId,
    sizeBytes: d.sizeBytes,
    checksum: sum ?? "",
  });
  return { id: idText(d.payloadId), descriptor: res.payloadDescriptor ?? d, checksum: sum };
}

async function withMapping<T>(m: RegionMapping, fn: (bytes: Buffer) => Promise<T> | T): Promise<T> {
  try {
    return await fn(m.bytes);
  } finally {
    m.release();
  }
}

/**
 * Writes `bytes` as a new payload: allocate → map the region → copy once into it → commit.
 * The bytes go straight into shared memory or the file; the API only sees the control calls.
 * A failure after allocation deletes the payload so nothing half-written stays visible.
 */
export async function put(client: PayloadClient, bytes: Uint8Array, opts: PutOptions): Promise<PutResult> {
  const d = await allocate(client, bytes.byteLength, opts);
  try {
    const sum = await withMapping(mapDescriptor(d, { writable: true }), async (region) => {
      region.set(bytes);
      opts.onProgress?.(bytes.byteLength, bytes.byteLength);
      return opts.checksum ? await checksum(region, "xxh64") : undefined;
    });
    return await commit(client, d, sum);
  } catch (e) {
    await client.catalog.delete({ id: d.payloadId, force: true }).catch(() => undefined);
    throw e;
  }
}

/**
 * Streams `sizeBytes` from `source` into a new payload window by window, so payloads larger than
 * memory never sit in the heap. The source must yield exactly `sizeBytes`.
 */
export async function putStream(
  client: PayloadClient,
  source: AsyncIterable<Uint8Array>,
  sizeBytes: number,
  opts: PutOptions & { readonly chunkBytes?: number },
): Promise<PutResult> {
  const window = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const d = await allocate(client, sizeBytes, opts);
  try {
    let written = 0;
    let m: RegionMapping | undefined;
    let winStart = 0;
    try {
      for await (const chunk of source) {
        let off = 0;
        while (off < chunk.byteLength) {
          if (written >= sizeBytes)
            throw new Error(`source yielded more than the declared ${sizeBytes} bytes`);
          if (!m || written - winStart >= m.length) {
            m?.release();
            winStart = written;
            m = mapDescriptor(d, {
              writable: true,
              offset: winStart,
              length: Math.min(window, sizeBytes - winStart),
            });
          }
          const n = Math.min(chunk.byteLength - off, m.length - (written - winStart));
          m.bytes.set(chunk.subarray(off, off + n), written - winStart);
          off += n;
          written += n;
          opts.onProgress?.(written, sizeBytes);
        }
      }
    } finally {
      m?.release();
    }
    if (written !== sizeBytes) throw new Error(`source yielded ${written} bytes, ${sizeBytes} were declared`);
    const sum = opts.checksum ? await checksumWindows(d, window) : undefined;
    return await commit(client, d, sum);
  } catch (e) {
    await client.catalog.delete({ id: d.payloadId, force: true }).catch(() => undefined);
    throw e;
  }
}

async function checksumWindows(d: PayloadDescriptor, window: number): Promise<string> {
  const size = Number(d.sizeBytes);
  if (size <= window) return withMapping(mapDescriptor(d, { writable: false }), (b) => checksum(b, "xxh64"));
  // Whole-payload digests of multi-window payloads are computed over the file/segment path.
  const path =
    d.location.case === "disk"
      ? d.location.value.path
      : d.location.case === "ram"
        ? `/dev/shm${d.location.value.shmName}`
        : "";
  return checksum(path, "xxh64");
}

export interface GetOptions {
  /** Require the bytes on this tier or faster (e.g. TIER_RAM to get a mappable region). */
  readonly minTier?: PbTier;
  /** Wait for a promotion instead of failing when the payload sits lower. Default true. */
  readonly blocking?: boolean;
  /** Lease length; renewed automatically at half-life until release(). */
  readonly leaseMs?: number;
}

/** A payload mapped read-only under a live lease. Call release() when done (or use `read`). */
export interface ReadHandle {
  readonly id: string;
  readonly descriptor: PayloadDescriptor;
  /** The payload's bytes, mapped (not copied). Invalid after release(). */
  readonly bytes: Buffer;
  release(): Promise<void>;
}

interface Lease {
  readonly descriptor: PayloadDescriptor;
  stop(): Promise<void>;
}

async function lease(client: PayloadClient, id: string, opts: GetOptions): Promise<Lease> {
  const leaseMs = opts.leaseMs ?? 20_000;
  const res = await client.data.acquireReadLease({
    id: idBytes(id),
    minTier: opts.minTier ?? Tier.UNSPECIFIED,
    promotionPolicy: opts.blocking === false ? PromotionPolicy.BEST_EFFORT : PromotionPolicy.BLOCKING,
    minLeaseDurationMs: BigInt(leaseMs),
  });
  if (!res.payloadDescriptor || !res.leaseId)
    throw new Error("AcquireReadLease answered without a descriptor or lease id");
  const leaseId = res.leaseId;
  // Long reads keep the lease alive; a failed renewal is reported when the reader releases.
  let renewError: unknown;
  const timer = setInterval(
    () => {
      client.data.renewLease({ leaseId, extendMs: BigInt(leaseMs) }).catch((e: unknown) => {
        renewError = e;
      });
    },
    Math.max(250, leaseMs / 2),
  );
  timer.unref();
  return {
    descriptor: res.payloadDescriptor,
    async stop() {
      clearInterval(timer);
      await client.data.releaseLease({ leaseId });
      if (renewError) throw renewError;
    },
  };
}

/**
 * Leases a payload and maps it read-only: zero copies, the first read at memory speed (the mapping
 * is prefaulted). The lease is renewed until release().
 */
export async function get(client: PayloadClient, id: string, opts: GetOptions = {}): Promise<ReadHandle> {
  const l = await lease(client, id, opts);
  let m: RegionMapping;
  try {
    m = mapDescriptor(l.descriptor, { writable: false, prefault: true });
  } catch (e) {
    await l.stop().catch(() => undefined);
    throw e;
  }
  return {
    id,
    descriptor: l.descriptor,
    bytes: m.bytes,
    async release() {
      m.release();
      await l.stop();
    },
  };
}

/** Runs `fn` on the mapped bytes under a lease and always releases both. */
export async function read<T>(
  client: PayloadClient,
  id: string,
  fn: (bytes: Buffer) => Promise<T> | T,
  opts: GetOptions = {},
): Promise<T> {
  const h = await get(client, id, opts);
  try {
    return await fn(h.bytes);
  } finally {
    await h.release();
  }
}

/**
 * Reads a payload window by window under one lease (renewed as it goes), for payloads larger
 * than memory. Each yielded Buffer is a mapping, valid until the next iteration.
 */
export async function* getStream(
  client: PayloadClient,
  id: string,
  opts: GetOptions & { readonly chunkBytes?: number } = {},
): AsyncGenerator<Buffer> {
  const window = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const l = await lease(client, id, opts);
  try {
    const size = Number(l.descriptor.sizeBytes);
    for (let off = 0; off < size; off += window) {
      const m = mapDescriptor(l.descriptor, {
        writable: false,
        offset: off,
        length: Math.min(window, size - off),
        prefault: true,
      });
      try {
        yield m.bytes;
      } finally {
        m.release();
      }
    }
  } finally {
    await l.stop();
  }
}
