import { finalizeDeletion } from "@pm/domain";
import { JobDeferred, type JobHandler } from "@pm/queue";

/** Slack after the last lease's expiry, so the retry does not land a hair before it. */
const AFTER_LEASE_MS = 50;

/**
 * Frees the bytes of a DELETING/EXPIRED payload and removes its row. While a (revoked) lease still
 * protects the bytes the job defers itself until that lease ends, keeping its id pending, so the
 * bytes are never freed under a live lease and duplicates keep collapsing. A payload already gone
 * is a no-op.
 */
export const finalizeDeletionJob: JobHandler<"finalize-deletion"> = async (deps, { payloadId }, ctx) => {
  const out = await finalizeDeletion(deps, payloadId);
  if (out.status === "waiting") {
    const delayMs = Math.max(0, out.retryAt - deps.clock.now()) + AFTER_LEASE_MS;
    throw new JobDeferred(delayMs, `payload ${payloadId} is still under a lease`);
  }
  ctx.log.debug({ payloadId, status: out.status }, "finalize-deletion");
  return { freed: out.status === "done" ? 1 : 0 };
};
