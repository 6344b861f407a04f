import type { PayloadId } from "../model/ids.ts";
import type { Placement } from "../model/placement.ts";
import type { StorageTier } from "../model/tier.ts";

export interface AllocateRegionRequest {
  readonly payloadId: PayloadId;
  readonly tier: StorageTier;
  readonly sizeBytes: number;
  /** Locality hint: prefer an agent on this host. */
  readonly preferredHost: string | undefined;
}

export interface CopyRegionRequest {
  readonly payloadId: PayloadId;
  readonly sizeBytes: number;
  readonly from: Placement;
  readonly toTier: StorageTier;
  readonly fsync: boolean;
}

/**
 * Creates, frees and copies the regions that hold payload bytes (shm segments, files, GPU
 * allocations, objects). Implementations: tier agents over Connect, the object store, and an
 * in-process disk allocator. Errors are DomainErrors: TIER_UNAVAILABLE (no backend for the tier),
 * NO_AGENT (no live agent), TIER_FULL (no capacity), UNAVAILABLE (backend unreachable).
 */
export interface RegionAllocator {
  allocate(req: AllocateRegionRequest): Promise<Placement>;
  /** Frees a region; freeing one that is already gone succeeds. */
  free(payloadId: PayloadId, placement: Placement): Promise<void>;
  /** Copies the bytes of `from` into a new region on `toTier` and returns its placement. */
  copy(req: CopyRegionRequest): Promise<Placement>;
}

/** Signs short-lived URLs for object-tier placements (the API never carries object bytes). */
export interface ObjectPresigner {
  presign(placement: Placement, method: "GET" | "PUT", expiresAtMs: number): Promise<string>;
  /** Size of the stored object, or undefined when it does not exist. */
  head(placement: Placement): Promise<number | undefined>;
}
