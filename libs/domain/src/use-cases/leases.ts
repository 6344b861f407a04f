import { DomainError, payloadNotFound } from "../errors.ts";
import { asLeaseId, type LeaseId, type PayloadId } from "../model/ids.ts";
import { isLive, type Lease } from "../model/lease.ts";
import { isReadable, READABLE_STATES } from "../model/payload.ts";
import { isFaster, STORAGE_TIERS, type StorageTier } from "../model/tier.ts";
import { ACCESS_TIME_RESOLUTION_MS } from "../rules/eviction.ts";
import { leaseDuration } from "../rules/leases.ts";
import type { RequestContext, UseCaseDeps } from "./deps.ts";
import { type DescriptorView, describe } from "./descriptor.ts";
import { finalizeOrSchedule } from "./lifecycle.ts";
import { movePayload } from "./tiering.ts";

const READABLE_STATE_LIST = [...READABLE_STATES];

export type PromotionPolicy = "BEST_EFFORT" | "BLOCKING";

export interface AcquireLeaseRequest {
  readonly id: PayloadId;
  /** Placement must be this tier or faster; undefined = wherever it is. */
  readonly minTier: StorageTier | undefined;
  readonly promotionPolicy: PromotionPolicy;
  /** Shortest acceptable lease; 0 = server default. Capped by config. */
  readonly durationMs: number;
}

export interface LeaseGrant {
  readonly lease: Lease;
  readonly descriptor: DescriptorView;
}

/**
 * Grants a read lease on a readable payload. When the payload sits slower than `minTier`,
 * BEST_EFFORT queues a promotion and answers INVALID_TRANSITION now; BLOCKING promotes first.
 */
export async function acquireReadLease(
  deps: UseCaseDeps,
  ctx: RequestContext,
  req: AcquireLeaseRequest,
): Promise<LeaseGrant> {
  const minTier = req.minTier;
  // Tiers a lease may be served from: every tier not slower than min_tier.
  const tiers = minTier ? STORAGE_TIERS.filter((t) => !isFaster(minTier, t)) : STORAGE_TIERS;
  const attempt = async () => {
    const now = deps.clock.now();
    const { payload: p, lease } = await deps.catalog.grantLease({
      leaseId: asLeaseId(deps.ids.newId()),
      payloadId: req.id,
      namespace: ctx.namespace,
      now,
      expiresAt: now + leaseDuration(req.durationMs, deps.config),
      states: READABLE_STATE_LIST,
      tiers,
      touchIfAccessedAtOrBefore: now - ACCESS_TIME_RESOLUTION_MS,
    });
    if (!p) throw payloadNotFound(req.id);
    if (lease) return { lease, payload: p } as const;
    if (!isReadable(p)) {
      throw new DomainError(
        "INVALID_TRANSITION",
        `payload ${p.id} is ${p.state} and cannot be read${p.state === "ALLOCATED" ? "; the producer must commit it first" : ""}`,
        { payloadId: p.id, state: p.state },
      );
    }
    return { needsPromotion: p } as const;
  };

  let out = await attempt();
  if ("needsPromotion" in out && minTier) {
    const p = out.needsPromotion;
    if (req.promotionPolicy !== "BLOCKING") {
      await deps.jobs.enqueue({
        name: "move",
        payloadId: p.id,
        toTier: minTier,
        reason: "promote",
        fsync: false,
        version: p.version,
      });
      throw new DomainError(
        "INVALID_TRANSITION",
        `payload ${p.id} is on ${p.placement.tier}, slower than min_tier ${minTier}; a promotion was queued, retry shortly or use PROMOTION_POLICY_BLOCKING`,
        { payloadId: p.id, tier: p.placement.tier },
      );
    }
    await movePayload(deps, ctx, {
      id: p.id,
      toTier: minTier,
      fsync: false,
      waitForLeases: true,
      direction: "promote",
    });
    out = await attempt();
    if ("needsPromotion" in out) {
      throw new DomainError(
        "UNAVAILABLE",
        `payload ${p.id} moved again while it was being promoted; retry the lease`,
      );
    }
  }
  if ("needsPromotion" in out) throw new Error("unreachable: promotion without min_tier");
  return { lease: out.lease, descriptor: await describe(deps, out.payload, out.lease.expiresAt) };
}

/**
 * Extends a live lease to now + `extendMs` (capped). An expired or revoked lease, or one whose
 * payload is gone, is LEASE_EXPIRED (FAILED_PRECONDITION): acquire a new lease instead.
 */
export async function renewLease(
  deps: UseCaseDeps,
  ctx: RequestContext,
  leaseId: LeaseId,
  extendMs: number,
): Promise<LeaseGrant> {
  const grant = await deps.catalog.transaction(async (tx) => {
    const now = deps.clock.now();
    const lease = await tx.getLease(leaseId);
    if (!lease || lease.namespace !== ctx.namespace) {
      throw new DomainError(
        "LEASE_NOT_FOUND",
        `lease ${leaseId} does not exist (released, swept or never granted); acquire a new lease`,
        { leaseId },
      );
    }
    if (!isLive(lease, now) || lease.revoked) {
      throw new DomainError(
        "LEASE_EXPIRED",
        `lease ${leaseId} ${lease.revoked ? "was revoked because its payload is being deleted" : "has expired"}; acquire a new lease`,
        { leaseId },
      );
    }
    const p = await tx.lockPayload(lease.payloadId);
    if (!p || !isReadable(p)) {
      throw new DomainError(
        "LEASE_EXPIRED",
        `the payload of lease ${leaseId} is no longer readable; acquire a new lease`,
        { leaseId },
      );
    }
    const renewed: Lease = {
      ...lease,
      expiresAt: Math.max(lease.expiresAt, now + leaseDuration(extendMs, deps.config)),
    };
    await tx.updateLease(renewed);
    if (now - p.lastAccessAt >= ACCESS_TIME_RESOLUTION_MS)
      await tx.updatePayload({ ...p, lastAccessAt: now });
    return { lease: renewed, payload: p };
  });
  return { lease: grant.lease, descriptor: await describe(deps, grant.payload, grant.lease.expiresAt) };
}

/**
 * Ends a lease. Idempotent: unknown or already released ids succeed. Releasing the last lease of a
 * payload being deleted frees its bytes now rather than at the lease's expiry.
 */
export async function releaseLease(deps: UseCaseDeps, ctx: RequestContext, leaseId: LeaseId): Promise<void> {
  const released = await deps.catalog.releaseLease(leaseId, ctx.namespace);
  const freed =
    released?.payloadState === "DELETING" || released?.payloadState === "EXPIRED"
      ? released.payloadId
      : undefined;
  if (freed) await finalizeOrSchedule(deps, freed);
}
