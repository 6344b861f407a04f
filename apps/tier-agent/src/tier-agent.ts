import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, open } from "node:fs/promises";
import type { PayloadId, StorageTier } from "@pm/domain";
import { type RegionInfo, type TierBackend, TierError } from "./tiers/tier-backend.ts";

export interface CopyResult {
  readonly region: RegionInfo;
  readonly bytesCopied: number;
  readonly durationUs: number;
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
  ) {
    for (const b of backends) this.backends.set(b.tier, b);
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
  async copy(id: PayloadId, fromTier: StorageTier, toTier: StorageTier, fsync: boolean): Promise<CopyResult> {
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
        if (fsync) {
          const fh = await open(dstPath, "r+");
          try {
            await fh.sync();
          } finally {
            await fh.close();
          }
        }
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
  }
}
