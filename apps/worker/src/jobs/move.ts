import {
  DomainError,
  deletePayload,
  evictionBlocker,
  isDomainError,
  isDurableTier,
  isFaster,
  isPinLive,
  type MoveDirection,
  movePayload,
  type Payload,
  type UseCaseDeps,
} from "@pm/domain";
import {
  describeFailure,
  type JobContext,
  type JobHandler,
  type JobPayload,
  PermanentJobError,
} from "@pm/queue";

type MoveJob = JobPayload<"move">;

const DIRECTION: Record<MoveJob["reason"], MoveDirection> = {
  spill: "spill",
  evict: "evict",
  promote: "promote",
  prefetch: "promote",
};

/**
 * Executes a queued spill, eviction, promotion or prefetch. Idempotent: a payload that is gone or
 * whose version is no longer the one the move was decided on (it has moved on since) is left
 * alone, and so is an eviction that is no longer allowed (pinned, leased, no-evict) by the time it
 * runs. Promotions and prefetches wait for leases (the source is kept until they end); spills and
 * evictions yield to them (LEASE_CONFLICT, retried with backoff). A move to VOID deletes.
 */
export const moveJob: JobHandler<"move"> = async (deps, job, ctx) => {
  const fields = { payloadId: job.payloadId, toTier: job.toTier, reason: job.reason, version: job.version };
  const now = deps.clock.now();
  const seen = await deps.catalog.transaction(async (tx) => {
    const payload = await tx.getPayload(job.payloadId);
    if (!payload) return undefined;
    const pin = await tx.getPin(payload.id);
    const pinned = pin !== undefined && isPinLive(pin, now);
    return { payload, liveLeases: (await tx.liveLeases(payload.id, now)).length, pinned };
  });
  if (!seen) {
    ctx.log.debug(fields, "move skipped: the payload is gone");
    return { moved: 0, skipped: 1 };
  }
  const p = seen.payload;
  if (p.version !== job.version) {
    ctx.log.info({ ...fields, currentVersion: p.version }, "move skipped: the payload has moved on");
    return { moved: 0, skipped: 1 };
  }
  if (job.reason === "evict") {
    const blocker = evictionBlocker(seen);
    if (blocker) {
      ctx.log.info({ ...fields, blocker }, "eviction skipped: no longer allowed");
      return { moved: 0, skipped: 1 };
    }
  }
  if (job.toTier === "VOID") return drop(deps, p, job, seen.pinned);

  const direction = DIRECTION[job.reason];
  if (direction === "promote" && !isFaster(job.toTier, p.placement.tier)) {
    ctx.log.debug({ ...fields, tier: p.placement.tier }, "promotion skipped: already there or faster");
    return { moved: 0, skipped: 1 };
  }
  try {
    await movePayload(deps, undefined, {
      id: p.id,
      toTier: job.toTier,
      fsync: job.fsync,
      waitForLeases: direction === "promote",
      direction,
    });
  } catch (e) {
    await failAfterRollback(deps, job, e, ctx);
    throw e;
  }
  ctx.log.info({ ...fields, from: p.placement.tier }, "payload moved");
  return { moved: 1, skipped: 0 };
};

/**
 * A copy that fails puts the payload back with version +2 (SPILLING, then settled again), so a
 * retry of this job would only find a stale version. Fail it for good instead of pretending: the
 * decision is made again by whoever made it (pressure on its next tick; a client re-requesting).
 */
async function failAfterRollback(deps: UseCaseDeps, job: MoveJob, e: unknown, ctx: JobContext) {
  if (!isDomainError(e) || !e.retryable) return;
  const after = await deps.catalog.transaction((tx) => tx.getPayload(job.payloadId)).catch(() => undefined);
  if (after && after.version !== job.version) {
    ctx.log.warn({ payloadId: job.payloadId, err: e }, "move failed and was rolled back");
    throw new PermanentJobError(
      `move of payload ${job.payloadId} to ${job.toTier} failed and was rolled back (${describeFailure(e)}); it is decided again on the next request or pressure tick`,
      { cause: e },
    );
  }
}

/** Spilling or evicting to VOID drops the payload: a delete without force (leases block it). */
async function drop(deps: UseCaseDeps, p: Payload, job: MoveJob, pinned: boolean) {
  if (job.reason === "promote" || job.reason === "prefetch") {
    throw new PermanentJobError(`a ${job.reason} job cannot target TIER_VOID (payload ${p.id})`);
  }
  if (p.evictionPolicy.requireDurable && !isDurableTier(p.placement.tier)) {
    throw new DomainError(
      "INVALID_TRANSITION",
      `payload ${p.id} requires a durable copy before it may leave ${p.placement.tier}; spill it to TIER_DISK or TIER_OBJECT instead of TIER_VOID`,
      { payloadId: p.id },
    );
  }
  if (pinned) {
    throw new DomainError("PIN_CONFLICT", `payload ${p.id} is pinned; unpin it before spilling`, {
      payloadId: p.id,
    });
  }
  await deletePayload(deps, { namespace: p.namespace }, { id: p.id, force: false });
  return { moved: 0, deleted: 1 };
}
