// BullMQ against the real Redis at PM_REDIS_URL (default redis://127.0.0.1:6379; start it with
// infra/dev/services.sh). Every key lives under a prefix unique to this run and is deleted after.
import {
  asPayloadId,
  DEFAULT_DOMAIN_CONFIG,
  DomainError,
  type DomainJob,
  jobIdOf,
  type UseCaseDeps,
} from "@pm/domain";
import { FakeAllocator, FakeClock, MemoryCatalog, SequentialIds } from "@pm/domain/testing";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { BullJobQueue, type BullJobQueueOptions, bullJobIdOf } from "./bull-job-queue.ts";
import { BullWorkerHost, type BullWorkerHostOptions } from "./bull-worker-host.ts";
import { InvalidJobError } from "./job-contracts.ts";
import { JobDeferred, type JobHandler, type JobHandlers } from "./job-execution.ts";
import { clearRedisPrefix } from "./testing/clear-redis-prefix.ts";

const REDIS_URL = process.env.PM_REDIS_URL ?? "redis://127.0.0.1:6379";
const PREFIX = `pm-test-${process.pid}-${Date.now().toString(36)}`;
const ID = asPayloadId("123e4567-e89b-42d3-a456-426614174000");

const finalize = (n = 0): DomainJob => ({
  name: "finalize-deletion",
  payloadId: asPayloadId(`123e4567-e89b-42d3-a456-${n.toString(16).padStart(12, "0")}`),
});
const move = (version: number): DomainJob => ({
  name: "move",
  payloadId: ID,
  toTier: "DISK",
  reason: "spill",
  fsync: false,
  version,
});

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
});
afterAll(async () => {
  await clearRedisPrefix(REDIS_URL, PREFIX);
});

let queueCounter = 0;
function newQueue(opts: Partial<BullJobQueueOptions> = {}): BullJobQueue {
  const q = new BullJobQueue({
    redisUrl: REDIS_URL,
    prefix: PREFIX,
    queueName: `q${++queueCounter}`,
    backoffMs: 50,
    commandTimeoutMs: 3_000,
    ...opts,
  });
  closers.push(() => q.close());
  return q;
}

interface Run {
  readonly name: string;
  readonly payload: unknown;
  readonly attempt: number;
  readonly at: number;
}

/** Handlers that record their runs and then do what the test says. */
function recording(
  behaviour: Partial<Record<keyof JobHandlers, (payload: unknown, attempt: number) => Promise<void>>> = {},
) {
  const runs: Run[] = [];
  const handler =
    (name: keyof JobHandlers): JobHandler<never> =>
    async (_deps, payload, ctx) => {
      runs.push({ name, payload, attempt: ctx.attempt, at: performance.now() });
      await behaviour[name]?.(payload, ctx.attempt);
    };
  const handlers: JobHandlers = {
    "finalize-deletion": handler("finalize-deletion"),
    move: handler("move"),
    sweep: handler("sweep"),
    pressure: handler("pressure"),
    "stream-retention": handler("stream-retention"),
  };
  return { runs, handlers };
}

function depsFor(queue: BullJobQueue): UseCaseDeps {
  return {
    catalog: new MemoryCatalog(),
    allocator: new FakeAllocator({ RAM: 1 }),
    jobs: queue,
    clock: new FakeClock(),
    ids: new SequentialIds(),
    presigner: undefined,
    config: DEFAULT_DOMAIN_CONFIG,
  };
}

async function startHost(
  queue: BullJobQueue,
  handlers: JobHandlers,
  opts: Partial<BullWorkerHostOptions> = {},
): Promise<BullWorkerHost> {
  const host = await BullWorkerHost.start({
    queue,
    deps: depsFor(queue),
    handlers,
    periodic: { sweepEveryMs: false, pressureEveryMs: false, streamRetentionEveryMs: false },
    ...opts,
  });
  closers.push(() => host.close());
  return host;
}

/** Polls until `fn` returns true, failing with `what` after the deadline. */
async function until(what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("BullJobQueue", () => {
  it("collapses a pending duplicate by its deterministic id, and accepts the id again once it finished", async () => {
    const queue = newQueue();
    await queue.enqueue(move(3), { delayMs: 60_000 });
    await queue.enqueue(move(3), { delayMs: 60_000 });
    await queue.enqueue(move(3));
    await queue.enqueue(finalize());
    await queue.enqueue(finalize());
    expect(await queue.depth()).toEqual({ waiting: 1, active: 0, delayed: 1, failed: 0 });
    const stored = await queue.bull.getJob(bullJobIdOf(jobIdOf(move(3))));
    expect(stored?.data).toEqual({
      payloadId: ID,
      toTier: "DISK",
      reason: "spill",
      fsync: false,
      version: 3,
    });

    const { runs, handlers } = recording();
    await startHost(queue, handlers);
    await until("the finalize job", () => runs.length === 1);
    await until("completion", async () => (await queue.depth()).waiting === 0);
    await queue.enqueue(finalize());
    await until("the second run of the same id", () => runs.length === 2);
    expect(runs.map((r) => r.name)).toEqual(["finalize-deletion", "finalize-deletion"]);
  });

  it("retries a retryable DomainError with exponential backoff until it succeeds", async () => {
    const queue = newQueue({ backoffMs: 100 });
    const { runs, handlers } = recording({
      move: async (_p, attempt) => {
        if (attempt < 3) throw new DomainError("UNAVAILABLE", "agent unreachable");
      },
    });
    await startHost(queue, handlers);
    await queue.enqueue(move(2));
    const id = bullJobIdOf(jobIdOf(move(2)));
    await until("completion", async () => (await queue.bull.getJobState(id)) === "completed");
    expect(runs.map((r) => r.attempt)).toEqual([1, 2, 3]);
    const [a, b, c] = runs.map((r) => r.at) as [number, number, number];
    expect(b - a).toBeGreaterThanOrEqual(95);
    expect(c - b).toBeGreaterThanOrEqual(195);
    expect((await queue.bull.getJob(id))?.attemptsMade).toBe(3);
  });

  it("fails a non-retryable DomainError once, as UnrecoverableError, without retrying", async () => {
    const queue = newQueue();
    const { runs, handlers } = recording({
      move: async () => {
        throw new DomainError("INVALID_TRANSITION", "cannot spill payload: it is DELETING");
      },
    });
    await startHost(queue, handlers);
    await queue.enqueue(move(2));
    const id = bullJobIdOf(jobIdOf(move(2)));
    await until("failure", async () => (await queue.bull.getJobState(id)) === "failed");
    await sleep(300); // backoff is 50 ms: a retry would have run by now
    const job = await queue.bull.getJob(id);
    expect(runs).toHaveLength(1);
    expect(job?.attemptsMade).toBe(1);
    expect(job?.failedReason).toBe("INVALID_TRANSITION: cannot spill payload: it is DELETING");
    expect(await queue.depth()).toMatchObject({ failed: 1, delayed: 0, waiting: 0 });
  });

  it("fails a job with an invalid payload once, without calling the handler", async () => {
    const queue = newQueue();
    const { runs, handlers } = recording();
    await startHost(queue, handlers);
    await queue.bull.add(
      "move",
      { payloadId: "not-an-id", toTier: "TAPE" },
      { jobId: "bad-move", attempts: 5 },
    );
    await until("failure", async () => (await queue.bull.getJobState("bad-move")) === "failed");
    await sleep(200);
    const job = await queue.bull.getJob("bad-move");
    expect(job?.attemptsMade).toBe(1);
    expect(job?.failedReason).toContain("invalid move job");
    expect(runs).toEqual([]);
  });

  it("refuses an invalid job on enqueue, before anything reaches Redis", async () => {
    const queue = newQueue();
    await expect(queue.enqueue(move(0))).rejects.toBeInstanceOf(InvalidJobError);
    expect(await queue.depth()).toEqual({ waiting: 0, active: 0, delayed: 0, failed: 0 });
  });

  it("runs a delayed job after its delay", async () => {
    const queue = newQueue();
    const { runs, handlers } = recording();
    await startHost(queue, handlers);
    const before = performance.now();
    await queue.enqueue(finalize(), { delayMs: 400 });
    await until("the delayed job", () => runs.length === 1);
    const waited = runs[0]!.at - before;
    expect(waited).toBeGreaterThanOrEqual(395);
    expect(waited).toBeLessThan(2_000);
  });

  it("re-runs a deferred job after its delay without using up an attempt", async () => {
    const queue = newQueue({ attempts: 1 });
    const { runs, handlers } = recording({
      "finalize-deletion": async () => {
        if (runs.length === 1) throw new JobDeferred(300, "still leased");
      },
    });
    await startHost(queue, handlers);
    await queue.enqueue(finalize());
    const id = bullJobIdOf(jobIdOf(finalize()));
    await until("completion", async () => (await queue.bull.getJobState(id)) === "completed");
    expect(runs.map((r) => r.attempt)).toEqual([1, 1]);
    expect(runs[1]!.at - runs[0]!.at).toBeGreaterThanOrEqual(295);
  });

  it("close lets the job in flight finish", async () => {
    const queue = newQueue();
    let finished = false;
    const { runs, handlers } = recording({
      move: async () => {
        await sleep(400);
        finished = true;
      },
    });
    const host = await startHost(queue, handlers);
    await queue.enqueue(move(2));
    await until("the job to start", () => runs.length === 1);
    await host.close();
    expect(finished).toBe(true);
    expect(await queue.bull.getJobState(bullJobIdOf(jobIdOf(move(2))))).toBe("completed");
  });

  it("registers each periodic job once however many hosts start", async () => {
    const queue = newQueue();
    const other = new BullJobQueue({ redisUrl: REDIS_URL, prefix: PREFIX, queueName: queue.queueName });
    closers.push(() => other.close());
    const a = recording();
    const b = recording();
    const periodic = { sweepEveryMs: 200, pressureEveryMs: 300, streamRetentionEveryMs: 5_000 };
    await startHost(queue, a.handlers, { periodic });
    await startHost(other, b.handlers, { periodic });
    const schedulers = await queue.bull.getJobSchedulers();
    expect(schedulers.map((s) => [s.key, s.every]).sort()).toEqual([
      ["pressure", 300],
      ["stream-retention", 5_000],
      ["sweep", 200],
    ]);
    await sleep(1_100);
    const sweeps = [...a.runs, ...b.runs].filter((r) => r.name === "sweep").length;
    // One scheduler ticks ~5 times in 1.1 s; a duplicate would double that.
    expect(sweeps).toBeGreaterThanOrEqual(3);
    expect(sweeps).toBeLessThanOrEqual(7);
  });

  it("reports queue depth by state", async () => {
    const queue = newQueue();
    for (let i = 1; i <= 2; i++) await queue.enqueue(finalize(i));
    for (let v = 1; v <= 3; v++) await queue.enqueue(move(v), { delayMs: 60_000 });
    expect(await queue.depth()).toEqual({ waiting: 2, active: 0, delayed: 3, failed: 0 });
    const { handlers } = recording({
      "finalize-deletion": async () => {
        throw new DomainError("INVALID_ARGUMENT", "bad");
      },
    });
    await startHost(queue, handlers);
    await until("both failures", async () => (await queue.depth()).failed === 2);
    expect(await queue.depth()).toEqual({ waiting: 0, active: 0, delayed: 3, failed: 2 });
  });

  it("fails fast with UNAVAILABLE when Redis is unreachable", async () => {
    const queue = newQueue({ redisUrl: "redis://127.0.0.1:1", commandTimeoutMs: 10_000 });
    for (let i = 0; i < 2; i++) {
      const started = performance.now();
      const e = await queue.enqueue(finalize()).catch((err: unknown) => err);
      expect(performance.now() - started).toBeLessThan(1_000);
      expect(e).toBeInstanceOf(DomainError);
      expect((e as DomainError).code).toBe("UNAVAILABLE");
      expect((e as DomainError).message).toContain("redis://127.0.0.1:1");
    }
    await expect(queue.ping()).rejects.toMatchObject({ code: "UNAVAILABLE" });
    await expect(queue.depth()).rejects.toMatchObject({ code: "UNAVAILABLE" });
  });

  it("masks the password of the Redis URL in errors", async () => {
    const queue = newQueue({ redisUrl: "redis://user:s3cret@127.0.0.1:1" });
    const e = (await queue.ping().catch((err: unknown) => err)) as DomainError;
    expect(e.message).not.toContain("s3cret");
    expect(e.message).toContain("***");
  });

  it("picks jobs up promptly (enqueue → handler start, local Redis)", async () => {
    const queue = newQueue();
    const { runs, handlers } = recording();
    await startHost(queue, handlers, { concurrency: 8 });
    const p = (xs: number[], q: number) => [...xs].sort((x, y) => x - y)[Math.floor(q * (xs.length - 1))]!;

    // One at a time: pure pickup latency.
    const paced: number[] = [];
    for (let i = 0; i < 200; i++) {
      const before = performance.now();
      await queue.enqueue(finalize(1_000 + i));
      await until("pickup", () => runs.length === i + 1);
      paced.push(runs[i]!.at - before);
    }
    // A burst of 200: includes waiting behind the others (concurrency 8).
    const sent: number[] = [];
    await Promise.all(
      Array.from({ length: 200 }, (_, i) => {
        sent.push(performance.now());
        return queue.enqueue(finalize(2_000 + i));
      }),
    );
    await until("the burst", () => runs.length === 400);
    const burst = runs.slice(200).map((r) => {
      const n = Number.parseInt((r.payload as { payloadId: string }).payloadId.slice(-12), 16) - 2_000;
      return r.at - sent[n]!;
    });
    const fmt = (xs: number[]) =>
      `p50 ${p(xs, 0.5).toFixed(2)} ms, p95 ${p(xs, 0.95).toFixed(2)} ms, max ${Math.max(...xs).toFixed(2)} ms`;
    console.log(`BullMQ pickup latency, 200 jobs one at a time: ${fmt(paced)}`);
    console.log(`BullMQ pickup latency, 200 jobs in a burst:     ${fmt(burst)}`);
    expect(p(paced, 0.5)).toBeLessThan(50);
  });
});
