import { DomainError, invalidArgument, isDomainError } from "../errors.ts";
import { asPayloadId, type PayloadId } from "../model/ids.ts";
import { DEFAULT_EVICTION_POLICY, type EvictionPolicy, type Payload } from "../model/payload.ts";
import type { Placement } from "../model/placement.ts";
import { isFaster, type Tier } from "../model/tier.ts";
import { requireState, settledState, transition } from "../rules/lifecycle.ts";
import { validateAllocationTier, validateChecksum, validateSize } from "../rules/validation.ts";
import type { RequestContext, UseCaseDeps } from "./deps.ts";
import { type DescriptorView, describe } from "./descriptor.ts";
import { requirePayload } from "./lookup.ts";

export interface AllocateRequest {
  readonly sizeBytes: number;
  readonly tier: Tier | undefined;
  readonly ttlMs: number;
  readonly noEvict: boolean;
  readonly evictionPolicy: EvictionPolicy | undefined;
  readonly preferredHost: string | undefined;
}

/**
 * Validates the request, has the allocator create a region, and stores the payload ALLOCATED at
 * version 1. Nothing is written when validation or region creation fails; a region whose row
 * cannot be stored is freed again.
 */
export async function allocatePayload(
  deps: UseCaseDeps,
  ctx: RequestContext,
  req: AllocateRequest,
): Promise<DescriptorView> {
  validateSize(req.sizeBytes);
  const tier = validateAllocationTier(req.tier);
  if (!Number.isSafeInteger(req.ttlMs) || req.ttlMs < 0) {
    throw invalidArgument(`ttl_ms must be a non-negative integer, got ${req.ttlMs}`, { field: "ttl_ms" });
  }
  const policy = req.evictionPolicy ?? DEFAULT_EVICTION_POLICY;
  if (policy.spillTarget !== undefined && policy.spillTarget !== "VOID") {
    if (!isFaster(tier, policy.spillTarget)) {
      throw invalidArgument(
        `eviction_policy.spill_target ${policy.spillTarget} must be slower than the allocation tier ${tier} (or TIER_VOID)`,
        { field: "eviction_policy.spill_target" },
      );
    }
  }
  const id = asPayloadId(deps.ids.newId());
  const placement = await deps.allocator.allocate({
    payloadId: id,
    tier,
    sizeBytes: req.sizeBytes,
    preferredHost: req.preferredHost || undefined,
  });
  const now = deps.clock.now();
  const expires = req.ttlMs > 0 && !req.noEvict && policy.priority !== "NEVER" ? now + req.ttlMs : undefined;
  const payload: Payload = {
    id,
    namespace: ctx.namespace,
    sizeBytes: req.sizeBytes,
    state: "ALLOCATED",
    version: 1,
    placement,
    pendingPlacement: undefined,
    createdAt: now,
    updatedAt: now,
    expiresAt: expires,
    lastAccessAt: now,
    noEvict: req.noEvict,
    evictionPolicy: policy,
    checksum: undefined,
  };
  try {
    await deps.catalog.autocommit((tx) => tx.insertPayload(payload));
  } catch (e) {
    await deps.allocator.free(id, placement).catch(() => undefined);
    throw e;
  }
  deps.recentAllocations?.remember(payload, now);
  return describe(deps, payload, now + deps.config.allocationTimeoutMs);
}

export interface CommitRequest {
  readonly id: PayloadId;
  /** Writer-reported size; 0 = not reported. Must equal the allocated size when given. */
  readonly sizeBytes: number;
  /** Writer-reported checksum `<algorithm>:<hex>`; "" = none. */
  readonly checksum: string;
}

/**
 * Seals an ALLOCATED payload: ACTIVE on GPU/RAM, DURABLE on DISK/OBJECT, version +1. For the
 * object tier the object must exist with the allocated size (HEAD) before the state changes.
 */
export async function commitPayload(
  deps: UseCaseDeps,
  ctx: RequestContext,
  req: CommitRequest,
): Promise<DescriptorView> {
  validateChecksum(req.checksum);
  // Read, decide, then write only if nothing changed the row meanwhile (compare-and-set): two
  // statements and no lock held between them. A payload changed under us is read again, and
  // then usually refused (deleted, reaped, expired or moved meanwhile).
  // The row as this process stored it at allocation, if it did and the commit would pass on it:
  // the compare-and-set below checks that it is still current. Anything else (a miss, a refusal)
  // reads the row, so errors always describe the stored row.
  const remembered = deps.recentAllocations?.take(req.id, deps.clock.now());
  const usable =
    remembered?.namespace === ctx.namespace &&
    (req.sizeBytes === 0 || req.sizeBytes === remembered.sizeBytes) &&
    remembered.state === "ALLOCATED" &&
    // An object-tier commit may be refused by its HEAD: that refusal must see the stored row.
    remembered.placement.location.kind !== "object";
  for (let attempt = 1; ; attempt++) {
    const before =
      attempt === 1 && usable
        ? remembered
        : await deps.catalog.autocommit((tx) => requirePayload(tx, ctx, req.id, false));
    if (req.sizeBytes !== 0 && req.sizeBytes !== before.sizeBytes) {
      throw invalidArgument(
        `size_bytes ${req.sizeBytes} does not match the allocated size ${before.sizeBytes}; allocate a payload of the size you wrote`,
        { field: "size_bytes" },
      );
    }
    // Only an ALLOCATED payload commits. SPILLING → ACTIVE/DURABLE is a legal transition (a move
    // settling), so the state machine alone would let a late commit "settle" a payload mid-move.
    requireState(before, "ALLOCATED", "commit");
    if (before.placement.location.kind === "object") await verifyObject(deps, before);
    const next: Payload = {
      ...transition(before, settledState(before), deps.clock.now(), "commit"),
      checksum: req.checksum || undefined,
    };
    if (await deps.catalog.autocommit((tx) => tx.updatePayloadIf(next, before))) {
      return describe(deps, next, undefined);
    }
    if (attempt === COMMIT_ATTEMPTS) {
      throw new DomainError(
        "UNAVAILABLE",
        `payload ${req.id} kept changing while it was being committed (${attempt} attempts); retry the commit`,
        { payloadId: req.id },
      );
    }
  }
}

const COMMIT_ATTEMPTS = 5;

async function verifyObject(deps: UseCaseDeps, p: Payload): Promise<void> {
  if (!deps.presigner) {
    throw new DomainError("TIER_UNAVAILABLE", "the object tier is not configured on this server");
  }
  const size = await deps.presigner.head(p.placement);
  if (size === undefined) {
    throw new DomainError(
      "INVALID_TRANSITION",
      `object for payload ${p.id} has not been uploaded; PUT the bytes to the presigned URL from AllocatePayload, then commit`,
      { payloadId: p.id },
    );
  }
  if (size !== p.sizeBytes) {
    throw new DomainError(
      "INVALID_TRANSITION",
      `object for payload ${p.id} holds ${size} bytes but ${p.sizeBytes} were allocated; upload exactly the allocated size`,
      { payloadId: p.id },
    );
  }
}

/** Where the payload is right now. Advisory only: without a lease the bytes may move. */
export async function resolveSnapshot(
  deps: UseCaseDeps,
  ctx: RequestContext,
  id: PayloadId,
): Promise<DescriptorView> {
  const p = await deps.catalog.transaction((tx) => requirePayload(tx, ctx, id, false));
  return describe(deps, p, undefined);
}

export interface DeleteRequest {
  readonly id: PayloadId;
  readonly force: boolean;
}

/**
 * Marks the payload DELETING (version +1) and frees its bytes once no live lease remains.
 * Without force a live lease is LEASE_CONFLICT; with force leases are revoked (they can no longer be
 * renewed) but their bytes are still kept until they expire or are released.
 */
export async function deletePayload(
  deps: UseCaseDeps,
  ctx: RequestContext,
  req: DeleteRequest,
): Promise<void> {
  const now = deps.clock.now();
  const marked = await deps.catalog.transaction(async (tx) => {
    const p = await requirePayload(tx, ctx, req.id, true);
    if (p.state === "DELETING") return false;
    const leases = await tx.liveLeases(p.id, now);
    if (leases.length > 0 && !req.force) {
      const until = Math.max(...leases.map((l) => l.expiresAt));
      throw new DomainError(
        "LEASE_CONFLICT",
        `payload ${p.id} has ${leases.length} live read lease(s) (the last expires at ${new Date(until).toISOString()}); wait for them to be released or delete with force=true`,
        { payloadId: p.id },
      );
    }
    for (const l of leases) if (!l.revoked) await tx.updateLease({ ...l, revoked: true });
    await tx.updatePayload(transition(p, "DELETING", now, "delete"));
    return true;
  });
  if (marked) await finalizeOrSchedule(deps, req.id);
}

/** Outcome of one attempt to free a deleted payload's bytes. */
export type FinalizeOutcome =
  | { readonly status: "done" }
  | { readonly status: "gone" }
  | { readonly status: "waiting"; readonly retryAt: number };

/**
 * Frees the bytes of a DELETING/EXPIRED payload and removes its row, unless a live (possibly
 * revoked) lease still protects the bytes: then it reports when to try again. Idempotent.
 */
export async function finalizeDeletion(deps: UseCaseDeps, id: PayloadId): Promise<FinalizeOutcome> {
  const now = deps.clock.now();
  const step = await deps.catalog.transaction(async (tx) => {
    const p = await tx.lockPayload(id);
    if (!p) return { status: "gone" as const };
    if (p.state !== "DELETING" && p.state !== "EXPIRED") return { status: "gone" as const };
    const leases = await tx.liveLeases(id, now);
    if (leases.length > 0) {
      return { status: "waiting" as const, retryAt: Math.max(...leases.map((l) => l.expiresAt)) };
    }
    if (p.state === "EXPIRED") await tx.updatePayload(transition(p, "DELETING", now, "delete"));
    return { status: "free" as const, regions: regionsOf(p) };
  });
  if (step.status !== "free") return step;
  for (const r of step.regions) await deps.allocator.free(id, r);
  await deps.catalog.transaction(async (tx) => {
    const p = await tx.lockPayload(id);
    if (p && p.state === "DELETING") await tx.deletePayload(id);
  });
  return { status: "done" };
}

function regionsOf(p: Payload): Placement[] {
  return p.pendingPlacement ? [p.placement, p.pendingPlacement] : [p.placement];
}

/**
 * Tries to finish a deletion now; if leases still hold the bytes, or the backend is unreachable,
 * a finalize job is queued so the bytes are freed later without the caller waiting.
 */
export async function finalizeOrSchedule(
  deps: UseCaseDeps,
  id: PayloadId,
): Promise<FinalizeOutcome | undefined> {
  try {
    const out = await finalizeDeletion(deps, id);
    if (out.status === "waiting") {
      await scheduleFinalize(deps, id, Math.max(0, out.retryAt - deps.clock.now()) + 50);
    }
    return out;
  } catch (e) {
    if (isDomainError(e) && e.retryable) {
      await scheduleFinalize(deps, id, 1_000);
      return undefined;
    }
    throw e;
  }
}

/**
 * Queues a finalize job. The row is already DELETING/EXPIRED, so when the queue itself is down
 * (Redis unreachable) the caller still succeeds: the worker's sweep finds the payload and
 * finishes the deletion once it runs again.
 */
async function scheduleFinalize(deps: UseCaseDeps, id: PayloadId, delayMs: number): Promise<void> {
  try {
    await deps.jobs.enqueue({ name: "finalize-deletion", payloadId: id }, { delayMs });
  } catch (e) {
    if (!(isDomainError(e) && e.retryable)) throw e;
  }
}

/**
 * Enforces a TTL: the payload becomes EXPIRED (version +1), its leases are revoked, and deletion
 * proceeds exactly like a force delete. A payload whose deadline moved or that is already being
 * deleted is left alone.
 */
export async function expirePayload(deps: UseCaseDeps, id: PayloadId): Promise<boolean> {
  const now = deps.clock.now();
  const expired = await deps.catalog.transaction(async (tx) => {
    const p = await tx.lockPayload(id);
    if (!p || p.expiresAt === undefined || p.expiresAt > now) return false;
    if (p.state === "DELETING" || p.state === "EXPIRED") return false;
    for (const l of await tx.liveLeases(id, now))
      if (!l.revoked) await tx.updateLease({ ...l, revoked: true });
    await tx.updatePayload(transition(p, "EXPIRED", now, "expire"));
    return true;
  });
  if (expired) await finalizeOrSchedule(deps, id);
  return expired;
}

/** Reclaims an allocation that was never committed within the allocation timeout. */
export async function reapAbandoned(deps: UseCaseDeps, id: PayloadId): Promise<boolean> {
  const now = deps.clock.now();
  const reaped = await deps.catalog.transaction(async (tx) => {
    const p = await tx.lockPayload(id);
    if (!p || p.state !== "ALLOCATED") return false;
    if (p.createdAt > now - deps.config.allocationTimeoutMs) return false;
    await tx.updatePayload(transition(p, "DELETING", now, "reap"));
    return true;
  });
  if (reaped) await finalizeOrSchedule(deps, id);
  return reaped;
}
