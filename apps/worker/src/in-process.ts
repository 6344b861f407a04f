import type { UseCaseDeps } from "@pm/domain";
import {
  InProcessJobQueue,
  type JobLog,
  type JobObserver,
  type PeriodicSchedule,
  type QueueDepth,
  type Timers,
} from "@pm/queue";
import { JOB_HANDLERS } from "./jobs/index.ts";

export interface InProcessJobsOptions {
  /** Jobs run at once; default 4. */
  readonly concurrency?: number;
  /** Runs per job before it fails for good; default 5. */
  readonly attempts?: number;
  /** Base of the exponential retry backoff; default 1000 ms. */
  readonly backoffMs?: number;
  /** Default 1000 ms; false = off. */
  readonly sweepIntervalMs?: number | false;
  /** Default 2000 ms; false = off. */
  readonly pressureIntervalMs?: number | false;
  /** Default 30 000 ms; false (or 0) = off. */
  readonly streamRetentionIntervalMs?: number | false;
  /** Real timers by default; tests pass ManualTimers from `@pm/queue/testing`. */
  readonly timers?: Timers;
  readonly observer?: JobObserver;
  readonly log?: JobLog;
}

export interface InProcessJobs {
  /** The queue to give the API as its `jobs` (already in `deps`). */
  readonly jobs: InProcessJobQueue;
  /** `deps` with `jobs` filled in: what the handlers run with. */
  readonly deps: UseCaseDeps;
  depth(): QueueDepth;
  /** Resolves when no job is running or ready to run. */
  idle(): Promise<void>;
  /** Stops the periodic jobs and waits for the jobs in flight. */
  close(): Promise<void>;
}

/**
 * An unstarted in-process queue with the worker's handlers. For a composition root that must hand
 * the queue to the API before it has the deps: `startApi(config, { jobs: queue })`, then
 * `queue.start(api.deps)`.
 */
export function createInProcessJobQueue(opts: InProcessJobsOptions = {}): InProcessJobQueue {
  const periodic: Partial<PeriodicSchedule> = {
    ...(opts.sweepIntervalMs !== undefined && { sweepEveryMs: opts.sweepIntervalMs }),
    ...(opts.pressureIntervalMs !== undefined && { pressureEveryMs: opts.pressureIntervalMs }),
    ...(opts.streamRetentionIntervalMs !== undefined && {
      streamRetentionEveryMs: opts.streamRetentionIntervalMs,
    }),
  };
  return new InProcessJobQueue({
    handlers: JOB_HANDLERS,
    periodic,
    ...(opts.concurrency !== undefined && { concurrency: opts.concurrency }),
    ...(opts.attempts !== undefined && { attempts: opts.attempts }),
    ...(opts.backoffMs !== undefined && { backoffMs: opts.backoffMs }),
    ...(opts.timers && { timers: opts.timers }),
    ...(opts.observer && { observer: opts.observer }),
    ...(opts.log && { log: opts.log }),
  });
}

/**
 * The embedded default's jobs (`payload-manager all`): the same handlers BullMQ runs in
 * production, executed in this process, started at once. The API gets `jobs` as its queue.
 */
export function createInProcessJobs(
  deps: Omit<UseCaseDeps, "jobs">,
  opts: InProcessJobsOptions = {},
): InProcessJobs {
  const jobs = createInProcessJobQueue(opts);
  const full: UseCaseDeps = { ...deps, jobs };
  jobs.start(full);
  return {
    jobs,
    deps: full,
    depth: () => jobs.depth(),
    idle: () => jobs.idle(),
    close: () => jobs.close(),
  };
}
