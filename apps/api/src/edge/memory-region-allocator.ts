import {
  type AllocateRegionRequest,
  type CopyRegionRequest,
  DomainError,
  type PayloadId,
  type Placement,
  type RegionAllocator,
} from "@pm/domain";

/**
 * A DISK "tier" that only books reservations in isolate memory: it enforces a capacity and hands
 * out placements whose path is `memory://edge/<id>.bin`, but no byte is ever stored anywhere.
 *
 * It exists for the runtime-neutrality test (the API under workerd) and for demos, enabled on the
 * edge by `PM_EDGE_TEST_DISK=1`. It is never a backend for real payload bytes: the reservations
 * vanish with the isolate, and a writer has nowhere to put the bytes a descriptor points at.
 */
export class MemoryRegionAllocator implements RegionAllocator {
  private used = 0;
  private readonly sizes = new Map<PayloadId, number>();

  constructor(
    private readonly capacityBytes: number,
    private readonly agentId = "edge-memory",
    private readonly host = "edge",
  ) {}

  async allocate(req: AllocateRegionRequest): Promise<Placement> {
    if (req.tier !== "DISK") {
      throw new DomainError(
        "TIER_UNAVAILABLE",
        `no backend serves the ${req.tier} tier on this edge deployment; only the test DISK tier is enabled`,
      );
    }
    if (this.sizes.has(req.payloadId)) {
      // Ids come from the IdGenerator; a repeat means two writers would share one region.
      throw new DomainError("ALREADY_EXISTS", `a region for payload ${req.payloadId} is already reserved`);
    }
    if (this.used + req.sizeBytes > this.capacityBytes) {
      throw new DomainError(
        "TIER_FULL",
        `the DISK tier has ${this.capacityBytes - this.used} of ${this.capacityBytes} bytes free, ${req.sizeBytes} requested; delete payloads`,
      );
    }
    this.used += req.sizeBytes;
    this.sizes.set(req.payloadId, req.sizeBytes);
    return {
      tier: "DISK",
      agentId: this.agentId,
      host: this.host,
      location: { kind: "disk", path: `memory://edge/${req.payloadId}.bin`, offsetBytes: 0 },
      lengthBytes: req.sizeBytes,
    };
  }

  async free(payloadId: PayloadId, placement: Placement): Promise<void> {
    if (placement.tier !== "DISK") return;
    this.used -= this.sizes.get(payloadId) ?? 0;
    this.sizes.delete(payloadId);
  }

  async copy(req: CopyRegionRequest): Promise<Placement> {
    throw new DomainError(
      "TIER_UNAVAILABLE",
      `moving payload ${req.payloadId} from ${req.from.tier} to ${req.toTier} is not possible on this edge deployment; it serves one tier`,
    );
  }

  /** Bytes currently reserved. */
  usedBytes(): number {
    return this.used;
  }
}
