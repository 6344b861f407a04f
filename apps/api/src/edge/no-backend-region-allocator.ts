import {
  type AllocateRegionRequest,
  type CopyRegionRequest,
  DomainError,
  type Placement,
  type RegionAllocator,
} from "@pm/domain";

const REASON =
  "this edge deployment has no storage backend configured yet (a workerd isolate has no filesystem, and no tier agent or object store is wired in)";

/**
 * The edge allocator until a region service or the object store is wired into the Worker: every
 * tier answers TIER_UNAVAILABLE, so the catalog, leases and metadata RPCs still work while
 * allocation fails with an actionable error instead of pretending to place bytes.
 */
export class NoBackendRegionAllocator implements RegionAllocator {
  async allocate(req: AllocateRegionRequest): Promise<Placement> {
    throw new DomainError("TIER_UNAVAILABLE", `cannot place on the ${req.tier} tier: ${REASON}`);
  }

  /** Nothing was ever placed here, so there is nothing to free. */
  async free(): Promise<void> {}

  async copy(req: CopyRegionRequest): Promise<Placement> {
    throw new DomainError("TIER_UNAVAILABLE", `cannot move payload ${req.payloadId}: ${REASON}`);
  }
}
