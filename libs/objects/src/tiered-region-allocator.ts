import {
  type AllocateRegionRequest,
  type CopyRegionRequest,
  DomainError,
  type PayloadId,
  type Placement,
  type RegionAllocator,
} from "@pm/domain";
import type { ObjectRegionAllocator, ObjectTarget } from "./object-region-allocator.ts";

/**
 * What the tiered allocator needs from the tier agents (AgentRegionAllocator in @pm/agents):
 * the usual allocator, plus copies to and from the object store, which agents execute.
 */
export interface ObjectCopyAgents extends RegionAllocator {
  /** Has the agent holding `req.from` upload those bytes to `target`; returns the object placement. */
  copyToObject(req: CopyRegionRequest, target: ObjectTarget): Promise<Placement>;
  /**
   * Has a live agent with the `req.toTier` tier (on `preferredHost` when one there has room)
   * download the object `req.from` into a new region; returns that region's placement.
   */
  copyFromObject(req: CopyRegionRequest, preferredHost: string | undefined): Promise<Placement>;
}

export interface TieredRegionAllocatorOptions {
  readonly agents: ObjectCopyAgents;
  readonly objects: ObjectRegionAllocator;
}

/**
 * One RegionAllocator over both places bytes live: OBJECT placements and allocations go to the
 * object store (a key, no bytes), everything else to the tier agents. Copies with the object store
 * at either end run on an agent — the API never carries object bytes:
 * - to OBJECT: the agent holding the source uploads it (multipart, streamed from its region);
 * - from OBJECT: a live agent with the target tier downloads it, preferring the host that uploaded
 *   it (an object placement's `host`), where the payload was last used.
 */
export class TieredRegionAllocator implements RegionAllocator {
  private readonly agents: ObjectCopyAgents;
  private readonly objects: ObjectRegionAllocator;

  constructor(opts: TieredRegionAllocatorOptions) {
    this.agents = opts.agents;
    this.objects = opts.objects;
  }

  allocate(req: AllocateRegionRequest): Promise<Placement> {
    return req.tier === "OBJECT" ? this.objects.allocate(req) : this.agents.allocate(req);
  }

  free(payloadId: PayloadId, placement: Placement): Promise<void> {
    return placement.location.kind === "object"
      ? this.objects.free(payloadId, placement)
      : this.agents.free(payloadId, placement);
  }

  async copy(req: CopyRegionRequest): Promise<Placement> {
    const fromObject = req.from.location.kind === "object";
    if (fromObject && req.toTier === "OBJECT") {
      throw new DomainError(
        "INVALID_ARGUMENT",
        `payload ${req.payloadId} is already in the object store; choose another target tier`,
      );
    }
    if (fromObject) return this.agents.copyFromObject(req, req.from.host || undefined);
    if (req.toTier !== "OBJECT") return this.agents.copy(req);

    const target = await this.objects.reserveCopyTarget(req.payloadId);
    try {
      return await this.agents.copyToObject(req, target);
    } catch (e) {
      // A failed upload may leave parts or a sidecar behind; nothing references them.
      await this.objects
        .free(req.payloadId, this.objects.placementOf(target, req.sizeBytes))
        .catch(() => undefined);
      throw e;
    }
  }
}
