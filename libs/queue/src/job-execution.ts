import { isDomainError, type UseCaseDeps } from "@pm/domain";
import { ZodError } from "zod";
import {
  InvalidJobError,
  type JobName,
  type JobPayload,
  type PeriodicJobName,
  parseJobPayload,
} from "./job-contracts.ts";

/** The logging a runner and its handlers need; a pino logger satisfies it. */
export interface JobLog {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export const silentLog: JobLog = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/** What a handler learns about the run it is part of. */
export interface JobContext {
  readonly jobId: string;
  /** 1 on the first run, +1 on every retry (a deferral does not count). */
  readonly attempt: number;
  readonly log: JobLog;
}

/** Numbers a handler reports about its run (a sweep's counts); runners pass them to the observer. */
export type JobCounts = Readonly<Record<string, number>>;

export type JobHandler<N extends JobName> = (
  deps: UseCaseDeps,
  payload: JobPayload<N>,
  ctx: JobContext,
  // biome-ignore lint/suspicious/noConfusingVoidType: a handler with nothing to report just returns
) => Promise<JobCounts | void>;

/** One handler per job name; the worker app supplies them, the runners execute them. */
export type JobHandlers = { readonly [N in JobName]: JobHandler<N> };

/**
 * Thrown by a handler whose job cannot make progress yet but will later (bytes still under a
 * lease): the runner runs the same job again after `delayMs` without using up an attempt. Throwing
 * keeps the job id pending, so a duplicate enqueued meanwhile still collapses into it.
 */
export class JobDeferred extends Error {
  constructor(
    readonly delayMs: number,
    reason: string,
  ) {
    super(reason);
    this.name = "JobDeferred";
  }
}

/** Thrown by a handler when retrying cannot help, for a failure that is not a DomainError. */
export class PermanentJobError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PermanentJobError";
  }
}

/**
 * Whether retrying a failed job is pointless: a malformed payload, a non-retryable DomainError or
 * a PermanentJobError. Other errors (retryable DomainErrors, infrastructure faults, bugs) are
 * retried with backoff up to the attempt limit.
 */
export function isPermanentFailure(e: unknown): boolean {
  if (e instanceof InvalidJobError || e instanceof ZodError || e instanceof PermanentJobError) return true;
  return isDomainError(e) && !e.retryable;
}

/** A one-line description for logs and failed-job records: the domain code first when there is one. */
export function describeFailure(e: unknown): string {
  if (isDomainError(e)) return `${e.code}: ${e.message}`;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}

export type ExecutionResult =
  | { readonly kind: "completed"; readonly counts: JobCounts | undefined }
  | { readonly kind: "deferred"; readonly delayMs: number; readonly reason: string }
  | { readonly kind: "retry"; readonly error: unknown }
  | { readonly kind: "permanent"; readonly error: unknown };

/** How a run ended, as runners report it to observers and metrics. */
export type JobOutcome = "completed" | "deferred" | "retrying" | "failed";

export interface JobStartEvent {
  readonly name: string;
  readonly jobId: string;
  readonly attempt: number;
  /** From when the job became due (enqueued, or its delay ended) to when it started. */
  readonly queuedMs: number;
}

export interface JobFinishEvent {
  readonly name: string;
  readonly jobId: string;
  readonly attempt: number;
  readonly outcome: JobOutcome;
  readonly durationMs: number;
  readonly counts: JobCounts | undefined;
  readonly error: unknown;
}

/** Hooks for metrics; both runners call them the same way. */
export interface JobObserver {
  jobStarted?(e: JobStartEvent): void;
  jobFinished?(e: JobFinishEvent): void;
}

/**
 * Validates the payload and runs the handler, classifying the outcome. Shared by the BullMQ and
 * in-process runners so both treat every failure the same way.
 */
export async function executeJob(
  handlers: JobHandlers,
  deps: UseCaseDeps,
  name: string,
  data: unknown,
  ctx: JobContext,
): Promise<ExecutionResult> {
  try {
    const payload = parseJobPayload(name, data);
    const handler = handlers[name as JobName] as JobHandler<JobName>;
    const counts = await handler(deps, payload, ctx);
    return { kind: "completed", counts: counts ?? undefined };
  } catch (e) {
    if (e instanceof JobDeferred) {
      return { kind: "deferred", delayMs: Math.max(0, e.delayMs), reason: e.message };
    }
    return isPermanentFailure(e) ? { kind: "permanent", error: e } : { kind: "retry", error: e };
  }
}

/** Exponential backoff, as BullMQ computes it: base·2^(attempt−1) after failed attempt `attempt`. */
export function backoffDelay(baseMs: number, failedAttempt: number): number {
  return Math.round(baseMs * 2 ** (failedAttempt - 1));
}

/** Logs a run's end: retries as warnings, permanent failures as errors, completions at debug. */
export function logOutcome(log: JobLog, e: JobFinishEvent, maxAttempts: number): void {
  const fields = { job: e.name, jobId: e.jobId, attempt: e.attempt, durationMs: e.durationMs };
  switch (e.outcome) {
    case "completed":
      log.debug({ ...fields, counts: e.counts }, "job completed");
      return;
    case "deferred":
      log.debug(fields, "job deferred");
      return;
    case "retrying":
      log.warn(
        { ...fields, err: e.error, maxAttempts },
        `job failed, will retry: ${describeFailure(e.error)}`,
      );
      return;
    case "failed":
      log.error({ ...fields, err: e.error, maxAttempts }, `job failed for good: ${describeFailure(e.error)}`);
      return;
  }
}

/** Jobs per state, for queue-depth gauges and readiness. `waiting` includes prioritized jobs. */
export interface QueueDepth {
  readonly waiting: number;
  readonly active: number;
  readonly delayed: number;
  readonly failed: number;
}

/** Intervals of the periodic jobs in milliseconds; `false` turns one off. */
export interface PeriodicSchedule {
  readonly sweepEveryMs: number | false;
  readonly pressureEveryMs: number | false;
  readonly streamRetentionEveryMs: number | false;
}

/**
 * product.md §4: TTL enforced within 1 s of the deadline; pressure follows 3 s heartbeats. Stream
 * retention only matters for streams nobody appends to (appends apply it themselves), so it runs
 * rarely.
 */
export const DEFAULT_PERIODIC_SCHEDULE: PeriodicSchedule = {
  sweepEveryMs: 1_000,
  pressureEveryMs: 2_000,
  streamRetentionEveryMs: 30_000,
};

/** Which interval of the schedule drives each periodic job. */
export const PERIODIC_SCHEDULE_KEYS: Readonly<Record<PeriodicJobName, keyof PeriodicSchedule>> = {
  sweep: "sweepEveryMs",
  pressure: "pressureEveryMs",
  "stream-retention": "streamRetentionEveryMs",
};
