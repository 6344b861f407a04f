import { applyStreamRetention } from "@pm/domain";
import type { JobHandler } from "@pm/queue";

/** Streams each catalog page of one pass covers; a pass walks every page. */
export const STREAM_RETENTION_BATCH = 500;

/**
 * Periodic stream retention: applies every stream's `retention_max_entries` /
 * `retention_max_age_sec` as of now, so entries of streams nobody appends to still age out (an
 * append applies its stream's retention itself). One short transaction per stream with a limit.
 * Returns how many streams it checked and how many entries went, for the metrics.
 */
export const streamRetentionJob: JobHandler<"stream-retention"> = async (deps, _payload, ctx) => {
  const report = await applyStreamRetention(deps, deps.clock.now(), STREAM_RETENTION_BATCH);
  if (report.entriesRemoved > 0) ctx.log.info({ ...report }, "stream retention");
  return { ...report };
};
