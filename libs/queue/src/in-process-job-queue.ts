import { DomainError, type DomainJob, type JobQueue, type UseCaseDeps } from "@pm/domain";
import { envelopeOf, type JobName, PERIODIC_JOBS, parseJobPayload } from "./job-contracts.ts";
import {
  backoffDelay,
  DEFAULT_PERIODIC_SCHEDULE,
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
import { realTimers, type TimerHandle, type Timers } from "./timers.ts";

export interface InProcessJobQueueOptions {
  readonly handlers: JobHandlers;
  /** Jobs run at the same time (default 4). */
  readonly concurrency?: number;
  /** Runs per job before it fails for good (default 5, as on BullMQ). */
  readonly attempts?: number;
  /** Base of the exponential retry backoff (default 1000 ms). */
  readonly backoffMs?: number;
  readonly periodic?: Partial<PeriodicSchedule>;
  readonly timers?: Timers;
  readonly observer?: JobObserver;
  readonly log?: JobLog;
}

type EntryState = "delayed" | "waiting" | "active";

interface Entry {
  readonly id: string;
  readonly name: JobName;
  readonly payload: unknown;
  readonly maxAttempts: number;
  attempt: number;
  state: EntryState;
  timer: TimerHandle | undefined;
  /** performance.now() when the job became runnable, for the queued-time metric. */
  readyAt: number;
}

/**
 * The job queue of the embedded default (`payload-manager all`): the same contracts and handlers
 * as BullMQ, run in this process. Job ids dedupe while a job is pending (delayed, waiting or
 * active), failures are retried with exponential backoff, handlers may defer, and the periodic
 * sweep, pressure and stream-retention jobs run on timers. Nothing survives a restart, which is
 * safe because every job's effect is also reached by the next sweep from catalog state (except
 * queued moves, which are hints).
 *
 * Jobs enqueued before `start(deps)` wait for it: the API needs the queue in its deps before the
 * runner can have those deps.
 */
export class InProcessJobQueue implements JobQueue {
  private readonly handlers: JobHandlers;
  private readonly concurrency: number;
  private readonly attempts: number;
  private readonly backoffMs: number;
  private readonly periodic: PeriodicSchedule;
  private readonly timers: Timers;
  private readonly observer: JobObserver;
  private readonly log: JobLog;

  private readonly entries = new Map<string, Entry>();
  private readonly ready: Entry[] = [];
  private readonly running = new Set<Promise<void>>();
  /** Counted before a run starts: a handler can enqueue synchronously, before `running` has its promise. */
  private active = 0;
  private readonly periodicTimers = new Map<string, TimerHandle>();
  private idleWaiters: (() => void)[] = [];
  private deps: UseCaseDeps | undefined;
  private closed = false;
  private failedCount = 0;

  constructor(opts: InProcessJobQueueOptions) {
    this.handlers = opts.handlers;
    this.concurrency = Math.max(1, opts.concurrency ?? 4);
    this.attempts = Math.max(1, opts.attempts ?? 5);
    this.backoffMs = opts.backoffMs ?? 1_000;
    this.periodic = { ...DEFAULT_PERIODIC_SCHEDULE, ...opts.periodic };
    this.timers = opts.timers ?? realTimers;
    this.observer = opts.observer ?? {};
    this.log = opts.log ?? silentLog;
  }

  /** Validates and queues a domain job; a job whose id is pending is a no-op. */
  async enqueue(job: DomainJob, opts?: { readonly delayMs?: number }): Promise<void> {
    const env = envelopeOf(job);
    this.add(env.name, env.payload, env.jobId, opts?.delayMs ?? 0, this.attempts);
  }

  /** Queues any job by name (a periodic one run now, say); `jobId` defaults to the name. */
  async enqueueJob(
    name: JobName,
    data: unknown,
    opts: { readonly jobId?: string; readonly delayMs?: number } = {},
  ): Promise<void> {
    const payload = parseJobPayload(name, data);
    const periodic = (PERIODIC_JOBS as readonly string[]).includes(name);
    this.add(name, payload, opts.jobId ?? name, opts.delayMs ?? 0, periodic ? 1 : this.attempts);
  }

  /** Starts executing with `deps` (whose `jobs` is normally this queue) and starts the periodic jobs. */
  start(deps: UseCaseDeps): void {
    if (this.deps) throw new Error("InProcessJobQueue.start called twice");
    if (this.closed) throw new Error("InProcessJobQueue.start called after close");
    this.deps = deps;
    for (const name of PERIODIC_JOBS) this.every(name, this.periodic[PERIODIC_SCHEDULE_KEYS[name]]);
    this.pump();
  }

  depth(): QueueDepth {
    let delayed = 0;
    for (const e of this.entries.values()) if (e.state === "delayed") delayed++;
    return { waiting: this.ready.length, active: this.active, delayed, failed: this.failedCount };
  }

  /** Resolves when no job is running or ready to run (delayed ones may remain). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stops the periodic jobs, drops delayed and waiting jobs (their effects are recovered by the
   * next sweep) and waits for the jobs in flight to finish. Enqueuing afterwards is UNAVAILABLE.
   */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      for (const t of this.periodicTimers.values()) this.timers.clearTimeout(t);
      this.periodicTimers.clear();
      let dropped = 0;
      for (const e of [...this.entries.values()]) {
        if (e.state === "active") continue;
        if (e.timer !== undefined) this.timers.clearTimeout(e.timer);
        this.entries.delete(e.id);
        dropped++;
      }
      this.ready.length = 0;
      if (dropped > 0) this.log.info({ dropped }, "in-process job runner closed; queued jobs dropped");
    }
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
    this.checkIdle();
  }

  private add(name: JobName, payload: unknown, id: string, delayMs: number, maxAttempts: number): void {
    if (this.closed) {
      throw new DomainError(
        "UNAVAILABLE",
        "the job runner is shutting down and accepts no new jobs; retry against a running server",
      );
    }
    if (this.entries.has(id)) return;
    const entry: Entry = {
      id,
      name,
      payload,
      maxAttempts,
      attempt: 1,
      state: "waiting",
      timer: undefined,
      readyAt: 0,
    };
    this.entries.set(id, entry);
    this.schedule(entry, delayMs);
  }

  private schedule(entry: Entry, delayMs: number): void {
    if (delayMs > 0) {
      entry.state = "delayed";
      entry.timer = this.timers.setTimeout(() => {
        entry.timer = undefined;
        if (!this.closed) this.makeReady(entry);
      }, delayMs);
    } else {
      this.makeReady(entry);
    }
  }

  private makeReady(entry: Entry): void {
    entry.state = "waiting";
    entry.readyAt = performance.now();
    this.ready.push(entry);
    this.pump();
  }

  private pump(): void {
    if (this.deps && !this.closed) {
      while (this.active < this.concurrency && this.ready.length > 0) this.run(this.ready.shift()!);
    }
    this.checkIdle();
  }

  private run(entry: Entry): void {
    entry.state = "active";
    this.active++;
    const p: Promise<void> = this.execute(entry)
      .catch((e) => this.log.error({ err: e, jobId: entry.id }, "job runner fault"))
      .finally(() => {
        this.active--;
        this.running.delete(p);
        this.pump();
      });
    this.running.add(p);
  }

  private async execute(entry: Entry): Promise<void> {
    const deps = this.deps!;
    const base = { name: entry.name, jobId: entry.id, attempt: entry.attempt };
    const started = performance.now();
    this.notify(() => this.observer.jobStarted?.({ ...base, queuedMs: started - entry.readyAt }));
    const result = await executeJob(this.handlers, deps, entry.name, entry.payload, {
      jobId: entry.id,
      attempt: entry.attempt,
      log: this.log,
    });
    let outcome: JobOutcome;
    let error: unknown;
    switch (result.kind) {
      case "completed":
        this.entries.delete(entry.id);
        outcome = "completed";
        break;
      case "deferred":
        outcome = "deferred";
        if (this.closed) this.entries.delete(entry.id);
        else this.schedule(entry, result.delayMs);
        break;
      case "retry":
        error = result.error;
        if (entry.attempt < entry.maxAttempts && !this.closed) {
          outcome = "retrying";
          const delay = backoffDelay(this.backoffMs, entry.attempt);
          entry.attempt++;
          this.schedule(entry, delay);
        } else {
          outcome = "failed";
          this.entries.delete(entry.id);
          this.failedCount++;
        }
        break;
      case "permanent":
        error = result.error;
        outcome = "failed";
        this.entries.delete(entry.id);
        this.failedCount++;
        break;
    }
    const event: JobFinishEvent = {
      ...base,
      outcome,
      durationMs: performance.now() - started,
      counts: result.kind === "completed" ? result.counts : undefined,
      error,
    };
    logOutcome(this.log, event, entry.maxAttempts);
    this.notify(() => this.observer.jobFinished?.(event));
  }

  private every(name: JobName, everyMs: number | false): void {
    if (everyMs === false || everyMs <= 0) return;
    const handle = this.timers.setTimeout(() => {
      this.periodicTimers.delete(name);
      if (this.closed) return;
      // Still running from the last tick: skip this one rather than stack runs.
      if (!this.entries.has(name)) this.add(name, {}, name, 0, 1);
      this.every(name, everyMs);
    }, everyMs);
    this.periodicTimers.set(name, handle);
  }

  /** Observers are for metrics; a fault there must not change how a job ends. */
  private notify(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.log.warn({ err: e }, "job observer failed");
    }
  }

  private isIdle(): boolean {
    return this.active === 0 && (this.ready.length === 0 || !this.deps || this.closed);
  }

  private checkIdle(): void {
    if (this.idleWaiters.length === 0 || !this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
