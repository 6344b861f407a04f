import { DomainError, type DomainJob, isDomainError, type JobQueue } from "@pm/domain";
import { type JobsOptions, Queue } from "bullmq";
import { Redis } from "ioredis";
import { envelopeOf, type JobName, parseJobPayload } from "./job-contracts.ts";
import { type JobLog, type QueueDepth, silentLog } from "./job-execution.ts";

/** How many finished jobs BullMQ keeps for inspection, and for how long. */
export interface Retention {
  readonly count: number;
  readonly ageSeconds: number;
}

export interface BullJobQueueOptions {
  /** `redis://[user:password@]host:port[/db]`; `rediss://` for TLS. */
  readonly redisUrl: string;
  /** Queue name (no ':'); default "payload-manager". */
  readonly queueName?: string;
  /** Prefix of every Redis key of the queue; default "pm". */
  readonly prefix?: string;
  /** Runs per job before it fails for good; default 5. */
  readonly attempts?: number;
  /** Base of the exponential backoff between attempts; default 1000 ms (1 s, 2 s, 4 s, 8 s). */
  readonly backoffMs?: number;
  /** Default: the last 1000 completed jobs, at most 1 hour old. */
  readonly keepCompleted?: Retention;
  /** Default: the last 5000 failed jobs, at most 7 days old. */
  readonly keepFailed?: Retention;
  /** Longest an enqueue, ping or depth query waits on Redis before failing UNAVAILABLE; default 5000 ms. */
  readonly commandTimeoutMs?: number;
  readonly log?: JobLog;
}

/**
 * BullMQ job ids may not contain ':' (bullmq 5.81 rejects a custom id with ':' unless it has
 * exactly three parts, a legacy repeat-job form) nor be an integer. Domain ids (`jobIdOf`) use ':'
 * as separator, so it is escaped; escaping '%' first keeps the mapping one-to-one.
 */
export function bullJobIdOf(domainJobId: string): string {
  return domainJobId.replaceAll("%", "%25").replaceAll(":", "%3A");
}

/** Inverse of bullJobIdOf, for logs and tools. */
export function domainJobIdOf(bullJobId: string): string {
  return bullJobId.replace(/%(25|3A)/g, (m) => (m === "%25" ? "%" : ":"));
}

/** The Redis URL with any password masked, for messages and logs. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparseable Redis URL)";
  }
}

/**
 * The production JobQueue: BullMQ on Redis. Jobs get deterministic ids (`jobIdOf`), so enqueuing a
 * job that is still pending (waiting, delayed, active or between retries) is a no-op; a finished
 * job kept for inspection does not block a new one with the same id. Jobs are retried with
 * exponential backoff.
 *
 * Enqueue fails fast with UNAVAILABLE when Redis is unreachable: the producer connection has no
 * offline queue, so a caller (an API request) gets an error instead of hanging.
 */
export class BullJobQueue implements JobQueue {
  /** The BullMQ queue; for the worker host (schedulers) and tests. */
  readonly bull: Queue;
  readonly queueName: string;
  readonly prefix: string;
  readonly redisUrl: string;
  readonly attempts: number;
  private readonly redis: Redis;
  private readonly timeoutMs: number;
  private readonly jobOptions: JobsOptions;
  private readonly log: JobLog;
  private lastErrorLogAt = 0;
  private closed = false;

  constructor(opts: BullJobQueueOptions) {
    this.queueName = opts.queueName ?? "payload-manager";
    this.prefix = opts.prefix ?? "pm";
    if (this.queueName.includes(":")) throw new Error(`queue name ${this.queueName} must not contain ':'`);
    this.redisUrl = opts.redisUrl;
    this.attempts = Math.max(1, opts.attempts ?? 5);
    this.timeoutMs = opts.commandTimeoutMs ?? 5_000;
    this.log = opts.log ?? silentLog;
    const completed = opts.keepCompleted ?? { count: 1_000, ageSeconds: 3_600 };
    const failed = opts.keepFailed ?? { count: 5_000, ageSeconds: 7 * 24 * 3_600 };
    this.jobOptions = {
      attempts: this.attempts,
      backoff: { type: "exponential", delay: opts.backoffMs ?? 1_000 },
      removeOnComplete: { count: completed.count, age: completed.ageSeconds },
      removeOnFail: { count: failed.count, age: failed.ageSeconds },
    };
    const connection = {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: Math.min(this.timeoutMs, 2_000),
      retryStrategy: (times: number) => Math.min(times * 200, 2_000),
    };
    // BullMQ owns the connection its commands go through (and closes it cleanly even if it never
    // connected); this second one only tells, synchronously, whether Redis is reachable right now.
    this.redis = new Redis(opts.redisUrl, { ...connection, connectionName: "pm-queue-probe" });
    this.redis.on("error", (e) => this.logConnectionError(e));
    this.bull = new Queue(this.queueName, {
      connection: { url: opts.redisUrl, ...connection },
      prefix: this.prefix,
    });
    this.bull.on("error", (e) => this.logConnectionError(e));
  }

  /** Validates and enqueues a domain job. Rejects with UNAVAILABLE, promptly, when Redis is down. */
  async enqueue(job: DomainJob, opts?: { readonly delayMs?: number }): Promise<void> {
    const env = envelopeOf(job);
    await this.add(env.name, env.payload, bullJobIdOf(env.jobId), opts?.delayMs ?? 0);
  }

  /** Enqueues any job by name with an explicit id (periodic jobs run once now, tests). */
  async enqueueJob(
    name: JobName,
    data: unknown,
    opts: { readonly jobId: string; readonly delayMs?: number },
  ): Promise<void> {
    const payload = parseJobPayload(name, data);
    await this.add(name, payload, bullJobIdOf(opts.jobId), opts.delayMs ?? 0);
  }

  /** Job counts per state, for metrics and readiness. */
  async depth(): Promise<QueueDepth> {
    return this.redisCall("read the queue depth", async () => {
      const c = await this.bull.getJobCounts("waiting", "prioritized", "active", "delayed", "failed");
      return {
        waiting: (c.waiting ?? 0) + (c.prioritized ?? 0) + (c.paused ?? 0),
        active: c.active ?? 0,
        delayed: c.delayed ?? 0,
        failed: c.failed ?? 0,
      };
    });
  }

  /** Readiness probe: resolves when Redis answers, else UNAVAILABLE without waiting for reconnects. */
  async ping(): Promise<void> {
    await this.redisCall("ping Redis", () => this.redis.ping());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.bull.close().catch(() => undefined);
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  private async add(name: JobName, payload: unknown, jobId: string, delayMs: number): Promise<void> {
    await this.redisCall(`enqueue job ${name}`, async () => {
      // A finished job kept for inspection would swallow a new one with its id: the domain contract
      // is that only a *pending* job makes enqueue a no-op.
      const state = await this.bull.getJobState(jobId);
      if (state === "completed" || state === "failed") await this.bull.remove(jobId);
      const opts: JobsOptions = { ...this.jobOptions, jobId };
      if (delayMs > 0) opts.delay = Math.round(delayMs);
      await this.bull.add(name, payload, opts);
    });
  }

  /**
   * Runs Redis commands with a deadline, failing at once when the connection is down (ioredis would
   * otherwise wait for a reconnect) and mapping every Redis fault to UNAVAILABLE.
   */
  private async redisCall<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw this.unavailable(what, "the queue is closed (the process is shutting down)");
    await this.connected(what);
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        fn(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(this.unavailable(what, `no answer within ${this.timeoutMs} ms`)),
            this.timeoutMs,
          );
        }),
      ]);
    } catch (e) {
      if (isDomainError(e)) throw e;
      throw this.unavailable(what, e instanceof Error ? e.message : String(e));
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits for a first connection in progress; fails immediately while disconnected or reconnecting. */
  private async connected(what: string): Promise<void> {
    const status = this.redis.status;
    if (status === "ready") return;
    if (status !== "connecting" && status !== "connect" && status !== "wait") {
      throw this.unavailable(what, `the connection is ${status}`);
    }
    await new Promise<void>((resolve, reject) => {
      const done = (err?: DomainError) => {
        clearTimeout(timer);
        this.redis.off("ready", onReady);
        this.redis.off("error", onError);
        this.redis.off("close", onClose);
        if (err) reject(err);
        else resolve();
      };
      const onReady = () => done();
      const onError = (e: Error) => done(this.unavailable(what, e.message));
      const onClose = () => done(this.unavailable(what, "the connection closed"));
      const timer = setTimeout(
        () => done(this.unavailable(what, `not connected within ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
      this.redis.once("ready", onReady);
      this.redis.once("error", onError);
      this.redis.once("close", onClose);
    });
  }

  private unavailable(what: string, why: string): DomainError {
    return new DomainError(
      "UNAVAILABLE",
      `cannot ${what}: the job queue (Redis at ${redactRedisUrl(this.redisUrl)}) is unreachable (${why}); check that Redis is running and PM_REDIS_URL, then retry`,
      { dependency: "redis" },
    );
  }

  /** ioredis reports every failed reconnect; one line per 10 s is enough for an operator. */
  private logConnectionError(e: Error): void {
    const now = Date.now();
    if (now - this.lastErrorLogAt < 10_000) return;
    this.lastErrorLogAt = now;
    this.log.warn({ err: e, redis: redactRedisUrl(this.redisUrl) }, "job queue: Redis connection error");
  }
}
