import type { Catalog } from "../ports/catalog.ts";
import type { Clock, IdGenerator } from "../ports/clock.ts";
import type { JobQueue } from "../ports/job-queue.ts";
import type { ObjectPresigner, RegionAllocator } from "../ports/region-allocator.ts";
import type { LeaseLimits } from "../rules/leases.ts";
import type { RecentAllocations } from "./recent-allocations.ts";

export interface DomainConfig extends LeaseLimits {
  /** Never-committed allocations are reaped after this long (product.md: 10 min). */
  readonly allocationTimeoutMs: number;
  /** An agent that has not heartbeated for this long is not placed on. */
  readonly agentTtlMs: number;
  /** Longest validity of a presigned object URL. */
  readonly objectUrlTtlMs: number;
  /**
   * A payload SPILLING for longer than this is taken for a move whose worker died mid-copy: the
   * sweep frees the move's pending target region and rolls the payload back to its source.
   */
  readonly moveTimeoutMs: number;
}

export const DEFAULT_DOMAIN_CONFIG: DomainConfig = {
  defaultLeaseMs: 20_000,
  maxLeaseMs: 120_000,
  allocationTimeoutMs: 10 * 60_000,
  agentTtlMs: 15_000,
  objectUrlTtlMs: 15 * 60_000,
  moveTimeoutMs: 30 * 60_000,
};

/** What every use case gets: ports and configuration, injected by a composition root. */
export interface UseCaseDeps {
  readonly catalog: Catalog;
  readonly allocator: RegionAllocator;
  readonly jobs: JobQueue;
  readonly clock: Clock;
  readonly ids: IdGenerator;
  readonly presigner: ObjectPresigner | undefined;
  readonly config: DomainConfig;
  /** Lets CommitPayload skip reading back a row this process just allocated (optional). */
  readonly recentAllocations?: RecentAllocations | undefined;
}

/** Who is calling: the tenant namespace their credentials map to. */
export interface RequestContext {
  readonly namespace: string;
}
