export {
  BullJobQueue,
  type BullJobQueueOptions,
  bullJobIdOf,
  domainJobIdOf,
  type Retention,
  redactRedisUrl,
} from "./bull-job-queue.ts";
export { BullWorkerHost, type BullWorkerHostOptions } from "./bull-worker-host.ts";
export { InProcessJobQueue, type InProcessJobQueueOptions } from "./in-process-job-queue.ts";
export {
  envelopeOf,
  InvalidJobError,
  isJobName,
  JOB_NAMES,
  JOBS,
  type JobContract,
  type JobEnvelope,
  type JobName,
  type JobPayload,
  PERIODIC_JOBS,
  type PeriodicJobName,
  parseJobPayload,
} from "./job-contracts.ts";
export {
  backoffDelay,
  DEFAULT_PERIODIC_SCHEDULE,
  describeFailure,
  type ExecutionResult,
  executeJob,
  isPermanentFailure,
  type JobContext,
  type JobCounts,
  JobDeferred,
  type JobFinishEvent,
  type JobHandler,
  type JobHandlers,
  type JobLog,
  type JobObserver,
  type JobOutcome,
  type JobStartEvent,
  PERIODIC_SCHEDULE_KEYS,
  type PeriodicSchedule,
  PermanentJobError,
  type QueueDepth,
  silentLog,
} from "./job-execution.ts";
export { realTimers, type TimerHandle, type Timers } from "./timers.ts";
