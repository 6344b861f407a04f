import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, open } from "node:fs/promises";
import type { PayloadId, StorageTier } from "@pm/domain";
import type { ObjectRef, ObjectTier } from "./tiers/object.ts";
import { type RegionInfo, type TierBackend, TierError } from "./tiers/tier-backend.ts";

export interface CopyResult {
  readonly region: RegionInfo;
  readonly bytesCopied: number;
  readonly durationUs: number;
  /** `<algorithm>:<hex>` of the bytes copied, when the copy computed one. */
  readonly checksum?: string;
}

/** Moves bytes between two backends of this host when neither is file-backed (GPU). */
export type RegionCopier = (
  from: TierBackend,
  to: TierBackend,
  id: PayloadId,
  sizeBytes: number,
) => Promise<boolean>;

/**
 * The bytes on one host: the enabled tiers, and copies between them. Everything here is local;
 * the control plane decides, the agent executes.
 */
export class TierAgent {
  private readonly backends = new Map<StorageTier, TierBackend>();

  constructor(
    backends: readonly TierBackend[],
    private readonly copiers: readonly RegionCopier[] = [],
    /** The object store this agent uploads to and downloads from; undefined = none configured. */
    private readonly objects: ObjectTier | undefined = undefined,
  ) {
    for (const b of backends) this.backends.set(b.tier, b);
  }

  /** Whether copies to and from the object store are possible on this agent. */
  hasObjectStore(): boolean {
    return this.objects !== undefined;
  }

  tiers(): TierBackend[] {
    return [...this.backends.values()];
  }

  backend(tier: StorageTier): TierBackend {
    const b = this.backends.get(tier);
    if (!b)
      throw new TierError("UNSUPPORTED", `this agent has no ${tier} tier; enable it in the agent config`);
    return b;
  }

  async create(id: PayloadId, tier: StorageTier, sizeBytes: number): Promise<RegionInfo> {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 1)
      throw new TierError("INVALID", `size ${sizeBytes} must be at least 1 byte`);
    return this.backend(tier).create(id, sizeBytes);
  }

  async stat(id: PayloadId, tier: StorageTier): Promise<RegionInfo> {
    const info = await this.backend(tier).stat(id);
    if (!info) throw new TierError("NOT_FOUND", `no ${tier} region for payload ${id} on this agent`);
    return info;
  }

  async free(id: PayloadId, tier: StorageTier): Promise<void> {
    return this.backend(tier).free(id);
  }

  /**
   * Copies a region to another tier of this host into a new region (the source stays; the control
   * plane frees it once no lease needs it). File-backed tiers copy in the kernel (copy_file_range on
   * the libuv pool), so no payload bytes enter the JS heap. A failed copy leaves no target behind.
   */
  async copy(
    id: PayloadId,
    fromTier: StorageTier,
    toTier: StorageTier,
    fsync: boolean,
    object?: ObjectRef,
  ): Promise<CopyResult> {
    if (fromTier === "OBJECT" && toTier === "OBJECT")
      throw new TierError("INVALID", `payload ${id} cannot be copied from the object store to itself`);
    if (toTier === "OBJECT") return this.upload(id, fromTier, object);
    if (fromTier === "OBJECT") return this.download(id, toTier, fsync, object);
    const from = this.backend(fromTier);
    const to = this.backend(toTier);
    const src = await this.stat(id, fromTier);
    const started = performance.now();
    // A region already on the target tier is an older placement that a lease still holds (the
    // control plane frees it once the lease ends): never overwrite it; the move is retried later.
    if (await to.stat(id)) {
      throw new TierError(
        "EXISTS",
        `payload ${id} still has a ${toTier} region held for a lease; retry the move after it is released`,
      );
    }
    const region = await to.create(id, src.sizeBytes);
    try {
      const srcPath = from.filePath(id);
      const dstPath = to.filePath(id);
      if (srcPath && dstPath) {
        await copyFile(srcPath, dstPath);
        if (fsync) await syncFile(dstPath);
      } else {
        let done = false;
        for (const c of this.copiers) {
          if (await c(from, to, id, src.sizeBytes)) {
            done = true;
            break;
          }
        }
        if (!done) throw new TierError("UNSUPPORTED", `no way to copy ${fromTier} → ${toTier} on this agent`);
      }
    } catch (e) {
      await to.free(id).catch(() => undefined);
      if (e instanceof TierError) throw e;
      throw new TierError("IO", `copy of ${id} ${fromTier} → ${toTier} failed: ${(e as Error).message}`);
    }
    return {
      region,
      bytesCopied: src.sizeBytes,
      durationUs: Math.round((performance.now() - started) * 1000),
    };
  }

  private objectStore(id: PayloadId, object: ObjectRef | undefined): { store: ObjectTier; ref: ObjectRef } {
    if (!this.objects)
      throw new TierError(
        "UNSUPPORTED",
        "this agent has no object store configured; set its objectStore section (PM_S3_*) to move payloads to and from OBJECT",
      );
    if (!object?.bucket || !object.key)
      throw new TierError(
        "INVALID",
        `a copy of ${id} to or from OBJECT needs the bucket and key of the object`,
      );
    this.objects.check(id, object);
    return { store: this.objects, ref: object };
  }

  /**
   * Uploads a file-backed region (RAM on tmpfs, DISK) to the object store: multipart, streamed
   * from the file with a bounded number of parts in flight, then the metadata sidecar.
   */
  private async upload(
    id: PayloadId,
    fromTier: StorageTier,
    object: ObjectRef | undefined,
  ): Promise<CopyResult> {
    const { store, ref } = this.objectStore(id, object);
    const src = await this.stat(id, fromTier);
    const path = this.backend(fromTier).filePath(id);
    if (!path)
      throw new TierError(
        "UNSUPPORTED",
        `${fromTier} regions cannot be uploaded directly; spill payload ${id} to RAM or DISK first`,
      );
    const started = performance.now();
    const out = await store.upload(id, path, src.sizeBytes, ref);
    return {
      region: {
        payloadId: id,
        sizeBytes: src.sizeBytes,
        location: { kind: "object", bucket: ref.bucket, key: ref.key },
      },
      bytesCopied: out.sizeBytes,
      durationUs: Math.round((performance.now() - started) * 1000),
      ...(out.checksum ? { checksum: out.checksum } : {}),
    };
  }

  /**
   * Downloads an object into a new region on a file-backed tier with ranged GETs streamed to their
   * offsets. The target region is created at the object's size; a failed download frees it.
   */
  private async download(
    id: PayloadId,
    toTier: StorageTier,
    fsync: boolean,
    object: ObjectRef | undefined,
  ): Promise<CopyResult> {
    const { store, ref } = this.objectStore(id, object);
    const to = this.backend(toTier);
    if (!to.filePath(id))
      throw new TierError(
        "UNSUPPORTED",
        `objects cannot be downloaded straight to ${toTier}; promote payload ${id} to RAM first`,
      );
    const size = await store.size(ref);
    if (size === undefined)
      throw new TierError(
        "NOT_FOUND",
        `the object s3://${ref.bucket}/${ref.key} of payload ${id} does not exist`,
      );
    if (size < 1) throw new TierError("INVALID", `the object s3://${ref.bucket}/${ref.key} is empty`);
    if (await to.stat(id)) {
      throw new TierError(
        "EXISTS",
        `payload ${id} still has a ${toTier} region held for a lease; retry the move after it is released`,
      );
    }
    const started = performance.now();
    const region = await to.create(id, size);
    try {
      await store.download(ref, to.filePath(id)!, size);
      if (fsync) await syncFile(to.filePath(id)!);
    } catch (e) {
      await to.free(id).catch(() => undefined);
      if (e instanceof TierError) throw e;
      throw new TierError(
        "IO",
        `download of ${id} from s3://${ref.bucket}/${ref.key} failed: ${(e as Error).message}`,
      );
    }
    return { region, bytesCopied: size, durationUs: Math.round((performance.now() - started) * 1000) };
  }

  /** sha256 of a file-backed region, streamed in 1 MiB chunks. */
  async checksum(id: PayloadId, tier: StorageTier): Promise<string> {
    const info = await this.stat(id, tier);
    const path = this.backend(tier).filePath(id);
    if (!path)
      throw new TierError("UNSUPPORTED", `checksums of ${tier} regions are not supported by this agent`);
    const h = createHash("sha256");
    for await (const chunk of createReadStream(path, {
      start: 0,
      end: info.sizeBytes - 1,
      highWaterMark: 1 << 20,
    })) {
      h.update(chunk as Buffer);
    }
    return `sha256:${h.digest("hex")}`;
  }

  async close(): Promise<void> {
    for (const b of this.backends.values()) await b.close();
    this.objects?.close();
  }
}

async function syncFile(path: string): Promise<void> {
  const fh = await open(path, "r+");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
