export {
  loadWorkerConfig,
  WORKER_ENV,
  type WorkerConfig,
  WorkerConfigError,
  WorkerConfigSchema,
} from "./config.ts";
export { type HealthServer, type HealthServerOptions, startHealthServer } from "./health-server.ts";
export {
  createInProcessJobQueue,
  createInProcessJobs,
  type InProcessJobs,
  type InProcessJobsOptions,
} from "./in-process.ts";
export { finalizeDeletionJob, JOB_HANDLERS, moveJob, pressureJob, sweepJob } from "./jobs/index.ts";
export { type TierView, tierViews } from "./jobs/pressure.ts";
export { startWorker, type WorkerHandle, type WorkerOverrides } from "./main.ts";
export { WorkerMetrics } from "./metrics.ts";
