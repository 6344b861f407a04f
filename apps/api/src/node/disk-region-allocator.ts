import { mkdirSync, readdirSync, statSync } from "node:fs";
import { open, unlink } from "node:fs/promises";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import {
  type AllocateRegionRequest,
  type CopyRegionRequest,
  DomainError,
  isUuidText,
  type PayloadId,
  type Placement,
  type RegionAllocator,
  type StorageTier,
} from "@pm/domain";

/**
 * The DISK tier inside the API process: one preallocated file per payload under `root`, named only
 * from the validated payload id, mode 0600. Used when no tier agent serves DISK (the embedded
 * default before agents exist, and tests). Capacity is enforced against the bytes it has handed out.
 */
export class DiskRegionAllocator implements RegionAllocator {
  private readonly root: string;
  private used = 0;
  private readonly sizes = new Map<string, number>();

  constructor(
    root: string,
    private readonly capacityBytes: number,
    private readonly agentId = "local",
    private readonly host = hostname(),
  ) {
    this.root = resolve(root);
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    for (const name of readdirSync(this.root)) {
      const m = /^([0-9a-f-]{36})\.bin$/.exec(name);
      if (!m) continue;
      const size = statSync(join(this.root, name)).size;
      this.sizes.set(m[1]!, size);
      this.used += size;
    }
  }

  async tiers(): Promise<readonly StorageTier[]> {
    return ["DISK"];
  }

  private pathOf(id: PayloadId): string {
    if (!isUuidText(id)) throw new Error(`refusing a file name from an unvalidated id ${JSON.stringify(id)}`);
    return join(this.root, `${id}.bin`);
  }

  async allocate(req: AllocateRegionRequest): Promise<Placement> {
    if (req.tier !== "DISK") {
      throw new DomainError(
        "TIER_UNAVAILABLE",
        `no backend serves the ${req.tier} tier on this server; start a tier agent with that tier, or allocate on TIER_DISK`,
      );
    }
    if (this.used + req.sizeBytes > this.capacityBytes) {
      throw new DomainError(
        "TIER_FULL",
        `the DISK tier has ${this.capacityBytes - this.used} of ${this.capacityBytes} bytes free, ${req.sizeBytes} requested; delete or spill payloads`,
      );
    }
    this.used += req.sizeBytes;
    const path = this.pathOf(req.payloadId);
    try {
      const fh = await open(path, "wx", 0o600);
      try {
        await fh.truncate(req.sizeBytes);
      } finally {
        await fh.close();
      }
    } catch (e) {
      this.used -= req.sizeBytes;
      await unlink(path).catch(() => undefined);
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOSPC")
        throw new DomainError(
          "TIER_FULL",
          `disk ${this.root} is full; free space or lower disk.capacityBytes`,
        );
      throw new DomainError(
        "UNAVAILABLE",
        `cannot create ${path}: ${(e as Error).message}; check the disk root's permissions`,
      );
    }
    this.sizes.set(req.payloadId, req.sizeBytes);
    return {
      tier: "DISK",
      agentId: this.agentId,
      host: this.host,
      location: { kind: "disk", path, offsetBytes: 0 },
      lengthBytes: req.sizeBytes,
    };
  }

  async free(payloadId: PayloadId, placement: Placement): Promise<void> {
    if (placement.tier !== "DISK") return;
    await unlink(this.pathOf(payloadId)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "ENOENT")
        throw new DomainError("UNAVAILABLE", `cannot remove ${payloadId}.bin: ${e.message}`);
    });
    this.used -= this.sizes.get(payloadId) ?? 0;
    this.sizes.delete(payloadId);
  }

  async copy(req: CopyRegionRequest): Promise<Placement> {
    throw new DomainError(
      "TIER_UNAVAILABLE",
      `moving payload ${req.payloadId} from ${req.from.tier} to ${req.toTier} needs a tier agent (or the object store) serving both tiers; none is configured`,
    );
  }
}
