import type { JobHandlers } from "@pm/queue";
import { finalizeDeletionJob } from "./finalize-deletion.ts";
import { moveJob } from "./move.ts";
import { pressureJob } from "./pressure.ts";
import { streamRetentionJob } from "./stream-retention.ts";
import { sweepJob } from "./sweep.ts";

/** The handler of every job, shared by the BullMQ worker and the in-process runner. */
export const JOB_HANDLERS: JobHandlers = {
  "finalize-deletion": finalizeDeletionJob,
  move: moveJob,
  sweep: sweepJob,
  pressure: pressureJob,
  "stream-retention": streamRetentionJob,
};

export { finalizeDeletionJob, moveJob, pressureJob, streamRetentionJob, sweepJob };
