import type { UseCaseDeps } from "@pm/domain";
import { DelayedError, type Job, UnrecoverableError, Worker } from "bullmq";
import type { BullJobQueue } from "./bull-job-queue.ts";
import { domainJobIdOf, redactRedisUrl } from "./bull-job-queue.ts";
import { PERIODIC_JOBS } from "./job-contracts.ts";
import {
  DEFAULT_PERIODIC_SCHEDULE,
  describeFailure,
  executeJob,
  type JobFinishEvent,
  type JobHandlers,
  type JobLog,
  type JobObserver,
  type JobOutcome,
  logOutcome,
  PERIODIC_SCHEDULE_KEYS,
  type PeriodicSchedule,
  type QueueDepth,
  silentLog,
} from "./job-execution.ts";

export interface BullWorkerHostOptions {
  /** Producer side: where follow-up jobs go, and whose queue the schedulers are registered on. */
  readonly queue: BullJobQueue;
  readonly deps: UseCaseDeps;
  readonly handlers: JobHandlers;
  /** Jobs this process runs at once; default 4. */
  readonly concurrency?: number;
  readonly periodic?: Partial<PeriodicSchedule>;
  /** A job's lock; a worker that dies mid-job loses it after this and another worker reruns the job. */
  readonly lockDurationMs?: number;
  readonly observer?: JobObserver;
  readonly log?: JobLog;
}

/**
 * Runs the job handlers on a BullMQ Worker. Failures that retrying cannot fix (a malformed
 * payload, a non-retryable DomainError) become UnrecoverableError, so BullMQ fails the job at once;
 * everything else is retried with the queue's backoff. A handler's JobDeferred moves the job back
 * to delayed without using an attempt. Periodic jobs are registered with upsertJobScheduler, which
 * is idempotent: however many hosts start, each periodic job has one scheduler.
 */
export class BullWorkerHost {
  private readonly worker: Worker;
  private readonly queue: BullJobQueue;
  private readonly observer: JobObserver;
  private readonly log: JobLog;
  private lastErrorLogAt = 0;

  private constructor(private readonly opts: BullWorkerHostOptions) {
    this.queue = opts.queue;
    this.observer = opts.observer ?? {};
    this.log = opts.log ?? silentLog;
    this.worker = new Worker(this.queue.queueName, (job, token) => this.process(job, token), {
      // The worker's connections block (BZPOPMIN): ioredis must retry forever (services.md).
      connection: { url: this.queue.redisUrl, maxRetriesPerRequest: null },
      prefix: this.queue.prefix,
      concurrency: Math.max(1, opts.concurrency ?? 4),
      lockDuration: opts.lockDurationMs ?? 30_000,
      autorun: false,
    });
    this.worker.on("error", (e) => {
      const now = Date.now();
      if (now - this.lastErrorLogAt < 10_000) return;
      this.lastErrorLogAt = now;
      this.log.warn({ err: e, redis: redactRedisUrl(this.queue.redisUrl) }, "job worker: Redis error");
    });
  }

  /** Registers the periodic jobs and starts taking jobs; resolves once the worker is connected. */
  static async start(opts: BullWorkerHostOptions): Promise<BullWorkerHost> {
    const host = new BullWorkerHost(opts);
    try {
      await host.registerSchedules({ ...DEFAULT_PERIODIC_SCHEDULE, ...opts.periodic });
      host.worker.run().catch((e) => host.log.error({ err: e }, "job worker stopped"));
      await host.worker.waitUntilReady();
    } catch (e) {
      await host.worker.close(true).catch(() => undefined);
      throw e;
    }
    return host;
  }

  depth(): Promise<QueueDepth> {
    return this.queue.depth();
  }

  ping(): Promise<void> {
    return this.queue.ping();
  }

  /** Stops taking jobs and waits for the ones in flight to finish. Does not close the queue. */
  async close(): Promise<void> {
    await this.worker.close();
  }

  private async registerSchedules(schedule: PeriodicSchedule): Promise<void> {
    for (const name of PERIODIC_JOBS) {
      const every = schedule[PERIODIC_SCHEDULE_KEYS[name]];
      if (every === false || every <= 0) {
        await this.queue.bull.removeJobScheduler(name);
        continue;
      }
      await this.queue.bull.upsertJobScheduler(
        name,
        { every },
        {
          name,
          data: {},
          // The next tick is the retry; keep only a little history of a job that runs every second.
          opts: { attempts: 1, removeOnComplete: { count: 20 }, removeOnFail: { count: 100 } },
        },
      );
    }
  }

  private async process(job: Job, token: string | undefined): Promise<void> {
    const jobId = domainJobIdOf(job.id ?? "");
    const attempt = job.attemptsMade + 1;
    const maxAttempts = job.opts.attempts ?? 1;
    const base = { name: job.name, jobId, attempt };
    const started = performance.now();
    this.notify(() =>
      this.observer.jobStarted?.({
        ...base,
        queuedMs: Math.max(0, Date.now() - job.timestamp - (job.delay ?? 0)),
      }),
    );
    const result = await executeJob(this.opts.handlers, this.opts.deps, job.name, job.data, {
      jobId,
      attempt,
      log: this.log,
    });
    let outcome: JobOutcome;
    let error: unknown;
    switch (result.kind) {
      case "completed":
        outcome = "completed";
        break;
      case "deferred":
        outcome = "deferred";
        break;
      case "retry":
        error = result.error;
        outcome = attempt < maxAttempts ? "retrying" : "failed";
        break;
      case "permanent":
        error = result.error;
        outcome = "failed";
        break;
    }
    const event: JobFinishEvent = {
      ...base,
      outcome,
      durationMs: performance.now() - started,
      counts: result.kind === "completed" ? result.counts : undefined,
      error,
    };
    logOutcome(this.log, event, maxAttempts);
    this.notify(() => this.observer.jobFinished?.(event));

    switch (result.kind) {
      case "completed":
        return;
      case "deferred":
        await job.moveToDelayed(Date.now() + result.delayMs, token);
        throw new DelayedError(result.reason);
      case "retry":
        throw result.error instanceof Error ? result.error : new Error(describeFailure(result.error));
      case "permanent":
        throw new UnrecoverableError(describeFailure(result.error));
    }
  }

  private notify(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.log.warn({ err: e }, "job observer failed");
    }
  }
}
