// Shared set-up for the use-case unit tests (*.test.ts beside this file). Not exported from the
// package: it only wires the fakes of ../testing together so each test reads as a scenario.
import { DomainError, type ErrorCode } from "../errors.ts";
import { asPayloadId, type LeaseId, type PayloadId } from "../model/ids.ts";
import type { Lease } from "../model/lease.ts";
import { DEFAULT_EVICTION_POLICY, type EvictionPolicy, type Payload } from "../model/payload.ts";
import type { Placement } from "../model/placement.ts";
import type { StorageTier, Tier } from "../model/tier.ts";
import type { RetiredRegion } from "../ports/catalog.ts";
import type { CopyRegionRequest } from "../ports/region-allocator.ts";
import {
  FakeAllocator,
  FakeClock,
  FakePresigner,
  MemoryCatalog,
  RecordingJobQueue,
  SequentialIds,
} from "../testing/index.ts";
import { DEFAULT_DOMAIN_CONFIG, type DomainConfig, type RequestContext, type UseCaseDeps } from "./deps.ts";
import { acquireReadLease } from "./leases.ts";
import { type AllocateRequest, allocatePayload, commitPayload } from "./lifecycle.ts";
import type { RecentAllocations } from "./recent-allocations.ts";

export const MiB = 1024 * 1024;

/**
 * A FakeAllocator that runs `beforeCopy` / `afterCopy` (once each) while a move's copy is in flight
 * (payload SPILLING), so tests can act in the window between the two phases of a move.
 */
export class HookedAllocator extends FakeAllocator {
  beforeCopy: (() => Promise<void>) | undefined;
  afterCopy: (() => Promise<void>) | undefined;
  override async copy(req: CopyRegionRequest): Promise<Placement> {
    const before = this.beforeCopy;
    this.beforeCopy = undefined;
    if (before) await before();
    const placement = await super.copy(req);
    const after = this.afterCopy;
    this.afterCopy = undefined;
    if (after) await after();
    return placement;
  }
}
export const GiB_BYTES = 1024 * MiB;

export interface Harness {
  readonly deps: UseCaseDeps;
  readonly catalog: MemoryCatalog;
  readonly allocator: HookedAllocator;
  readonly jobs: RecordingJobQueue;
  readonly clock: FakeClock;
  readonly presigner: FakePresigner | undefined;
  readonly ctx: RequestContext;
  /** A second tenant, for isolation checks. */
  readonly other: RequestContext;
}

export interface HarnessOptions {
  readonly capacity?: Partial<Record<StorageTier, number>>;
  readonly presigner?: boolean;
  readonly config?: Partial<DomainConfig>;
  readonly recentAllocations?: RecentAllocations;
}

export function harness(opts: HarnessOptions = {}): Harness {
  const catalog = new MemoryCatalog();
  const allocator = new HookedAllocator(opts.capacity ?? { GPU: 64 * MiB, RAM: 64 * MiB, DISK: 256 * MiB });
  const jobs = new RecordingJobQueue();
  const clock = new FakeClock();
  const presigner = opts.presigner ? new FakePresigner() : undefined;
  const deps: UseCaseDeps = {
    catalog,
    allocator,
    jobs,
    clock,
    ids: new SequentialIds(),
    presigner,
    config: { ...DEFAULT_DOMAIN_CONFIG, ...opts.config },
    recentAllocations: opts.recentAllocations,
  };
  return {
    deps,
    catalog,
    allocator,
    jobs,
    clock,
    presigner,
    ctx: { namespace: "team-a" },
    other: { namespace: "team-b" },
  };
}

export function allocateRequest(overrides: Partial<AllocateRequest> = {}): AllocateRequest {
  return {
    sizeBytes: MiB,
    tier: "RAM",
    ttlMs: 0,
    noEvict: false,
    evictionPolicy: undefined,
    preferredHost: undefined,
    ...overrides,
  };
}

export function policy(overrides: Partial<EvictionPolicy>): EvictionPolicy {
  return { ...DEFAULT_EVICTION_POLICY, ...overrides };
}

/** Allocates and returns the stored payload (ALLOCATED, version 1). */
export async function allocated(
  h: Harness,
  tier: Tier = "RAM",
  overrides: Partial<AllocateRequest> = {},
  ctx: RequestContext = h.ctx,
): Promise<Payload> {
  const view = await allocatePayload(h.deps, ctx, allocateRequest({ tier, ...overrides }));
  return view.payload;
}

/** Allocates and commits (ACTIVE on GPU/RAM, DURABLE on DISK/OBJECT, version 2). */
export async function committed(
  h: Harness,
  tier: Tier = "RAM",
  overrides: Partial<AllocateRequest> = {},
  ctx: RequestContext = h.ctx,
): Promise<Payload> {
  const p = await allocated(h, tier, overrides, ctx);
  if (tier === "OBJECT" && h.presigner && p.placement.location.kind === "object") {
    h.presigner.objects.set(p.placement.location.key, p.sizeBytes);
  }
  const view = await commitPayload(h.deps, ctx, { id: p.id, sizeBytes: 0, checksum: "" });
  return view.payload;
}

export async function leased(h: Harness, id: PayloadId, durationMs = 0, ctx = h.ctx): Promise<Lease> {
  const grant = await acquireReadLease(h.deps, ctx, {
    id,
    minTier: undefined,
    promotionPolicy: "BEST_EFFORT",
    durationMs,
  });
  return grant.lease;
}

/** The catalog row as stored now, bypassing namespaces. */
export function peek(h: Harness, id: PayloadId): Promise<Payload | undefined> {
  return h.catalog.transaction((tx) => tx.getPayload(id));
}

export function peekLease(h: Harness, id: LeaseId): Promise<Lease | undefined> {
  return h.catalog.transaction((tx) => tx.getLease(id));
}

export function retiredRegions(h: Harness): Promise<RetiredRegion[]> {
  return h.catalog.transaction((tx) => tx.listRetiredRegions(1000));
}

export const unknownId = asPayloadId("99999999-9999-4999-8999-999999999999");

/**
 * Runs `fn` and returns the DomainError it rejects with. Anything else (success, a plain Error, a
 * different code) fails the test with a message saying what happened instead.
 */
export async function domainError(fn: () => Promise<unknown>, code: ErrorCode): Promise<DomainError> {
  let result: unknown;
  try {
    result = await fn();
  } catch (e) {
    if (!(e instanceof DomainError)) throw new Error(`expected DomainError ${code}, got ${String(e)}`);
    if (e.code !== code) throw new Error(`expected DomainError ${code}, got ${e.code}: ${e.message}`);
    return e;
  }
  throw new Error(`expected DomainError ${code}, but it succeeded with ${JSON.stringify(result)}`);
}
