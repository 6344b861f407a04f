import { sweep } from "@pm/domain";
import type { JobHandler } from "@pm/queue";

/** Rows each step of one sweep handles; the next tick (1 s later) takes the rest. */
export const SWEEP_BATCH = 500;

/**
 * Housekeeping tick: TTL expiry, abandoned-allocation reaping, deletions whose leases ended,
 * expired leases and retired regions (the domain's sweep). Returns its counts for the metrics.
 */
export const sweepJob: JobHandler<"sweep"> = async (deps, _payload, ctx) => {
  const report = await sweep(deps, SWEEP_BATCH);
  const counts = { ...report };
  if (Object.values(counts).some((n) => n > 0)) ctx.log.info(counts, "sweep");
  return counts;
};
