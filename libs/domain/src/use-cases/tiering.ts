import { DomainError, isDomainError } from "../errors.ts";
import type { PayloadId } from "../model/ids.ts";
import { isPinLive } from "../model/lease.ts";
import type { Payload } from "../model/payload.ts";
import type { Location, Placement } from "../model/placement.ts";
import { isDurableTier, isFaster, type StorageTier, type Tier } from "../model/tier.ts";
import { spillTargetOf } from "../rules/eviction.ts";
import { settledState, transition } from "../rules/lifecycle.ts";
import type { RequestContext, UseCaseDeps } from "./deps.ts";
import { type DescriptorView, describe } from "./descriptor.ts";
import { deletePayload } from "./lifecycle.ts";
import { requirePayload } from "./lookup.ts";

export type MoveDirection = "spill" | "promote" | "evict";

export interface MoveRequest {
  readonly id: PayloadId;
  readonly toTier: StorageTier;
  readonly fsync: boolean;
  /**
   * true: live leases do not block the move; the source region is kept until they end.
   * false: a live lease is LEASE_CONFLICT.
   */
  readonly waitForLeases: boolean;
  readonly direction: MoveDirection;
}

/**
 * Two-phase move: SPILLING (version +1, still readable from the source) → the allocator copies the
 * bytes → the placement switches (version +1) → the source region is retired and freed once no
 * lease on the old placement remains. A failed copy puts the payload back where it was.
 * Moving to the tier it is already on is a no-op.
 */
export async function movePayload(
  deps: UseCaseDeps,
  ctx: RequestContext | undefined,
  req: MoveRequest,
): Promise<Payload> {
  const started = await deps.catalog.transaction(async (tx) => {
    const now = deps.clock.now();
    const p = await requirePayload(tx, ctx, req.id, true);
    if (p.placement.tier === req.toTier && p.state !== "SPILLING") return { noop: p } as const;
    checkDirection(p, req);
    if (p.state !== "ACTIVE" && p.state !== "DURABLE") {
      throw transitionError(p, req.direction);
    }
    if (req.direction !== "promote") {
      const pin = await tx.getPin(p.id);
      if (pin && isPinLive(pin, now)) throw pinConflict(p.id);
      const floor = p.evictionPolicy.minResidencyTier;
      if (floor && isFaster(floor, req.toTier)) {
        throw new DomainError(
          "INVALID_TRANSITION",
          `payload ${p.id} must stay on ${floor} or faster (min_residency_tier); choose a target tier no slower than ${floor}`,
          { payloadId: p.id },
        );
      }
    }
    const leases = await tx.liveLeases(p.id, now);
    if (leases.length > 0 && !req.waitForLeases) {
      throw new DomainError(
        "LEASE_CONFLICT",
        `payload ${p.id} has ${leases.length} live read lease(s); retry after they are released, or set wait_for_leases to move now and free the source when they end`,
        { payloadId: p.id },
      );
    }
    // The target is recorded before any byte is copied, so the catalog always knows where a
    // partial copy may be if this process dies mid-copy (the sweep's repairStuckMove frees it).
    const spilling: Payload = {
      ...transition(p, "SPILLING", now, req.direction),
      pendingPlacement: provisionalPlacement(p.placement, req.toTier, p.sizeBytes),
    };
    await tx.updatePayload(spilling);
    return { spilling } as const;
  });
  if ("noop" in started) return started.noop;
  const { spilling } = started;

  let target: Payload["placement"];
  try {
    target = await deps.allocator.copy({
      payloadId: spilling.id,
      sizeBytes: spilling.sizeBytes,
      from: spilling.placement,
      toTier: req.toTier,
      fsync: req.fsync,
    });
  } catch (e) {
    await rollbackMove(deps, spilling);
    throw e;
  }

  const switched = await deps.catalog.transaction(async (tx) => {
    const now = deps.clock.now();
    const p = await tx.lockPayload(spilling.id);
    if (!p || p.state !== "SPILLING" || p.version !== spilling.version) return undefined;
    const next: Payload = { ...p, placement: target, pendingPlacement: undefined };
    const settled = transition(next, settledState(next), now, req.direction);
    await tx.updatePayload(settled);
    await tx.addRetiredRegion({
      id: deps.ids.newId(),
      payloadId: p.id,
      version: p.version,
      placement: p.placement,
      retiredAt: now,
    });
    return settled;
  });
  if (!switched) {
    // Deleted or expired while copying: the new region belongs to nobody.
    await deps.allocator.free(spilling.id, target).catch(() => undefined);
    throw new DomainError(
      "INVALID_TRANSITION",
      `payload ${spilling.id} was deleted while it was being moved`,
      {
        payloadId: spilling.id,
      },
    );
  }
  await freeRetiredRegions(deps, 100).catch(() => undefined);
  return switched;
}

function checkDirection(p: Payload, req: MoveRequest): void {
  const slower = isFaster(p.placement.tier, req.toTier);
  if (req.direction === "promote" && slower) {
    throw new DomainError(
      "INVALID_ARGUMENT",
      `cannot promote payload ${p.id} from ${p.placement.tier} to the slower tier ${req.toTier}; use Spill to move it down`,
      { field: "target_tier" },
    );
  }
  if (req.direction !== "promote" && !slower) {
    throw new DomainError(
      "INVALID_ARGUMENT",
      `cannot spill payload ${p.id} from ${p.placement.tier} to ${req.toTier}: the target must be slower; use Promote to move it up`,
      { field: "target_tier" },
    );
  }
}

function pinConflict(id: PayloadId): DomainError {
  return new DomainError("PIN_CONFLICT", `payload ${id} is pinned; unpin it before spilling`, {
    payloadId: id,
  });
}

function transitionError(p: Payload, direction: string): DomainError {
  const what =
    p.state === "SPILLING" ? "a move is already in flight, retry when it finishes" : `it is ${p.state}`;
  return new DomainError("INVALID_TRANSITION", `cannot ${direction} payload ${p.id}: ${what}`, {
    payloadId: p.id,
    state: p.state,
  });
}

async function rollbackMove(deps: UseCaseDeps, spilling: Payload): Promise<void> {
  await deps.catalog.transaction(async (tx) => {
    const p = await tx.lockPayload(spilling.id);
    if (!p || p.state !== "SPILLING" || p.version !== spilling.version) return;
    const back = transition(p, settledState(p), deps.clock.now(), "roll back");
    await tx.updatePayload({ ...back, pendingPlacement: undefined });
  });
}

/**
 * Where a move's copy to `toTier` will land, as far as it is known before the copy: the tier, the
 * agent that executes it (the source's for agent tiers — bytes move host-locally — and "" for the
 * object store), the source host and an empty location of the target's kind. Allocators free by
 * (payload, tier) on that agent; the object store derives the key from the payload id (an empty
 * key means "the key this payload's copy would use", see ObjectRegionAllocator.free).
 * A move from the object store is downloaded by whichever agent has room, so its agent is not
 * known before the copy: no pending placement is recorded (undefined), as before — a placement
 * naming no agent could not be freed, and would wedge a later deletion.
 */
export function provisionalPlacement(
  from: Placement,
  toTier: StorageTier,
  lengthBytes: number,
): Placement | undefined {
  if (from.location.kind === "object") return undefined;
  const agentId = toTier === "OBJECT" ? "" : from.agentId;
  return { tier: toTier, agentId, host: from.host, location: emptyLocation(toTier), lengthBytes };
}

function emptyLocation(tier: StorageTier): Location {
  switch (tier) {
    case "GPU":
      return { kind: "gpu", deviceId: 0, ipcHandle: new Uint8Array(0) };
    case "RAM":
      return { kind: "ram", shmName: "" };
    case "DISK":
      return { kind: "disk", path: "", offsetBytes: 0 };
    case "OBJECT":
      return { kind: "object", bucket: "", key: "" };
  }
}

export type StuckMoveOutcome = "repaired" | "deferred" | "skipped";

/**
 * Repairs a move whose executor died mid-copy (found by the sweep: SPILLING for longer than
 * `moveTimeoutMs`): frees the pending target region, then rolls the payload back to its settled
 * state on the source (version +1). A copy that was merely slow loses its switch (the version
 * changed) and frees its own new region.
 *
 * Deferred while a lease older than the move is live: a region retired by an earlier move may sit
 * on the target tier under the same (payload, tier) / object key, and must not be freed under its
 * reader. Once those leases end, that region may be freed anyway.
 */
export async function repairStuckMove(
  deps: UseCaseDeps,
  id: PayloadId,
  updatedBefore: number,
): Promise<StuckMoveOutcome> {
  const stuck = await deps.catalog.transaction(async (tx) => {
    const p = await tx.getPayload(id);
    if (!p || p.state !== "SPILLING" || p.updatedAt > updatedBefore) return "skipped" as const;
    const older = (await tx.liveLeases(id, deps.clock.now())).filter((l) => l.version < p.version);
    return older.length > 0 ? ("deferred" as const) : p;
  });
  if (typeof stuck === "string") return stuck;
  const pending = stuck.pendingPlacement;
  // Free first: if this fails, the row still says where the partial copy is and the next sweep retries.
  if (pending) await deps.allocator.free(stuck.id, pending);
  return deps.catalog.transaction(async (tx) => {
    const p = await tx.lockPayload(id);
    if (!p || p.state !== "SPILLING" || p.version !== stuck.version) return "skipped" as const;
    const back = transition(p, settledState(p), deps.clock.now(), "roll back");
    await tx.updatePayload({ ...back, pendingPlacement: undefined });
    return "repaired" as const;
  });
}

/**
 * Frees regions that moves left behind once no live lease on their version (or older) remains.
 * Returns how many were freed. Safe to run concurrently: freeing is idempotent.
 */
export async function freeRetiredRegions(deps: UseCaseDeps, limit: number): Promise<number> {
  const now = deps.clock.now();
  const ready = await deps.catalog.transaction(async (tx) => {
    const out = [];
    for (const r of await tx.listRetiredRegions(limit)) {
      const leases = await tx.liveLeases(r.payloadId, now);
      if (!leases.some((l) => l.version <= r.version)) out.push(r);
    }
    return out;
  });
  let freed = 0;
  for (const r of ready) {
    await deps.allocator.free(r.payloadId, r.placement);
    await deps.catalog.transaction((tx) => tx.deleteRetiredRegion(r.id));
    freed++;
  }
  return freed;
}

export type SpillPolicy = "BEST_EFFORT" | "BLOCKING";

export interface SpillRequest {
  readonly ids: readonly PayloadId[];
  readonly policy: SpillPolicy;
  readonly waitForLeases: boolean;
  readonly fsync: boolean;
  /** Overrides the payload's spill target; undefined = per-payload default. */
  readonly targetTier: Tier | undefined;
}

export interface SpillItemResult {
  readonly id: PayloadId;
  readonly ok: boolean;
  readonly errorMessage: string;
  readonly descriptor: DescriptorView | undefined;
}

/**
 * Spills each payload towards slower storage and reports per item; the RPC itself succeeds.
 * Target precedence: request target > payload spill target > next slower tier. VOID deletes.
 * BLOCKING moves now and returns the new descriptors; BEST_EFFORT queues jobs and returns at once.
 */
export async function spill(
  deps: UseCaseDeps,
  ctx: RequestContext,
  req: SpillRequest,
): Promise<SpillItemResult[]> {
  const results: SpillItemResult[] = [];
  for (const id of req.ids) {
    try {
      results.push(await spillOne(deps, ctx, req, id));
    } catch (e) {
      if (!isDomainError(e)) throw e;
      results.push({ id, ok: false, errorMessage: `${e.code}: ${e.message}`, descriptor: undefined });
    }
  }
  return results;
}

async function spillOne(
  deps: UseCaseDeps,
  ctx: RequestContext,
  req: SpillRequest,
  id: PayloadId,
): Promise<SpillItemResult> {
  const p = await deps.catalog.transaction((tx) => requirePayload(tx, ctx, id, false));
  const target = req.targetTier ?? spillTargetOf(p);
  if (target === "VOID") {
    if (p.evictionPolicy.requireDurable && !isDurableTier(p.placement.tier)) {
      throw new DomainError(
        "INVALID_TRANSITION",
        `payload ${id} requires a durable copy before it may leave ${p.placement.tier}; spill it to TIER_DISK or TIER_OBJECT instead of TIER_VOID`,
        { payloadId: id },
      );
    }
    // Dropping is still a spill, and pins block spills (only an explicit delete ignores them).
    const pinned = await deps.catalog.transaction(async (tx) => {
      const pin = await tx.getPin(id);
      return pin !== undefined && isPinLive(pin, deps.clock.now());
    });
    if (pinned) throw pinConflict(id);
    await deletePayload(deps, ctx, { id, force: false });
    return { id, ok: true, errorMessage: "", descriptor: undefined };
  }
  checkDirection(p, {
    id,
    toTier: target,
    fsync: req.fsync,
    waitForLeases: req.waitForLeases,
    direction: "spill",
  });
  if (req.policy === "BLOCKING") {
    const moved = await movePayload(deps, ctx, {
      id,
      toTier: target,
      fsync: req.fsync,
      waitForLeases: req.waitForLeases,
      direction: "spill",
    });
    return { id, ok: true, errorMessage: "", descriptor: await describe(deps, moved, undefined) };
  }
  await deps.jobs.enqueue({
    name: "move",
    payloadId: id,
    toTier: target,
    reason: "spill",
    fsync: req.fsync,
    version: p.version,
  });
  return { id, ok: true, errorMessage: "", descriptor: await describe(deps, p, undefined) };
}

export interface PromoteRequest {
  readonly id: PayloadId;
  readonly targetTier: Tier | undefined;
  readonly policy: "BEST_EFFORT" | "BLOCKING";
}

/** Moves a payload to a faster tier: BLOCKING waits for the move, BEST_EFFORT queues it. */
export async function promote(
  deps: UseCaseDeps,
  ctx: RequestContext,
  req: PromoteRequest,
): Promise<DescriptorView> {
  const target = requireStorageTier(req.targetTier, "target_tier");
  const p = await deps.catalog.transaction((tx) => requirePayload(tx, ctx, req.id, false));
  if (p.placement.tier === target) return describe(deps, p, undefined);
  checkDirection(p, { id: req.id, toTier: target, fsync: false, waitForLeases: true, direction: "promote" });
  if (req.policy === "BLOCKING") {
    const moved = await movePayload(deps, ctx, {
      id: req.id,
      toTier: target,
      fsync: false,
      waitForLeases: true,
      direction: "promote",
    });
    return describe(deps, moved, undefined);
  }
  await deps.jobs.enqueue({
    name: "move",
    payloadId: p.id,
    toTier: target,
    reason: "promote",
    fsync: false,
    version: p.version,
  });
  return describe(deps, p, undefined);
}

/** An asynchronous, idempotent hint to warm a payload up to `targetTier`. */
export async function prefetch(
  deps: UseCaseDeps,
  ctx: RequestContext,
  id: PayloadId,
  targetTier: Tier | undefined,
): Promise<void> {
  const target = requireStorageTier(targetTier, "target_tier");
  const p = await deps.catalog.transaction((tx) => requirePayload(tx, ctx, id, false));
  if (!isFaster(target, p.placement.tier)) return;
  await deps.jobs.enqueue({
    name: "move",
    payloadId: id,
    toTier: target,
    reason: "prefetch",
    fsync: false,
    version: p.version,
  });
}

function requireStorageTier(t: Tier | undefined, field: string): StorageTier {
  if (t === undefined || t === "VOID") {
    throw new DomainError(
      "INVALID_ARGUMENT",
      `${field} must be one of TIER_GPU, TIER_RAM, TIER_DISK, TIER_OBJECT`,
      { field },
    );
  }
  return t;
}

/** Pins a payload against spill and eviction for `durationMs` (0 = until Unpin). */
export async function pin(
  deps: UseCaseDeps,
  ctx: RequestContext,
  id: PayloadId,
  durationMs: number,
): Promise<void> {
  await deps.catalog.transaction(async (tx) => {
    const p = await requirePayload(tx, ctx, id, true);
    if (p.state === "DELETING" || p.state === "EXPIRED") throw transitionError(p, "pin");
    const now = deps.clock.now();
    await tx.putPin({ payloadId: id, expiresAt: durationMs > 0 ? now + durationMs : undefined });
  });
}

/** Removes a pin; unpinning an unpinned payload is a no-op. */
export async function unpin(deps: UseCaseDeps, ctx: RequestContext, id: PayloadId): Promise<void> {
  await deps.catalog.transaction(async (tx) => {
    await requirePayload(tx, ctx, id, true);
    await tx.deletePin(id);
  });
}
