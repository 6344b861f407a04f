import {
  asPayloadId,
  DEFAULT_DOMAIN_CONFIG,
  DomainError,
  type DomainJob,
  type UseCaseDeps,
} from "@pm/domain";
import { FakeAllocator, FakeClock, MemoryCatalog, SequentialIds } from "@pm/domain/testing";
import { describe, expect, it } from "vitest";
import { InProcessJobQueue, type InProcessJobQueueOptions } from "./in-process-job-queue.ts";
import { InvalidJobError } from "./job-contracts.ts";
import {
  executeJob,
  JobDeferred,
  type JobFinishEvent,
  type JobHandler,
  type JobHandlers,
  PermanentJobError,
} from "./job-execution.ts";
import { ManualTimers } from "./testing/manual-timers.ts";

const ID = asPayloadId("123e4567-e89b-42d3-a456-426614174000");
const OTHER = asPayloadId("223e4567-e89b-42d3-a456-426614174000");
const finalize = (payloadId = ID): DomainJob => ({ name: "finalize-deletion", payloadId });
const move = (version: number, payloadId = ID): DomainJob => ({
  name: "move",
  payloadId,
  toTier: "DISK",
  reason: "spill",
  fsync: false,
  version,
});

interface Run {
  readonly name: string;
  readonly payload: unknown;
  readonly at: number;
  readonly attempt: number;
}

/** A runner over recording handlers, driven by a fake clock. */
function setup(
  behaviour: Partial<Record<keyof JobHandlers, (payload: unknown, attempt: number) => Promise<void>>> = {},
  opts: Partial<InProcessJobQueueOptions> = {},
) {
  const clock = new FakeClock();
  const timers = new ManualTimers(clock);
  const runs: Run[] = [];
  const events: JobFinishEvent[] = [];
  const handler =
    (name: keyof JobHandlers): JobHandler<never> =>
    async (_deps, payload, ctx) => {
      runs.push({ name, payload, at: clock.now(), attempt: ctx.attempt });
      await behaviour[name]?.(payload, ctx.attempt);
    };
  const handlers: JobHandlers = {
    "finalize-deletion": handler("finalize-deletion"),
    move: handler("move"),
    sweep: handler("sweep"),
    pressure: handler("pressure"),
    "stream-retention": handler("stream-retention"),
  };
  const queue = new InProcessJobQueue({
    handlers,
    timers,
    periodic: { sweepEveryMs: false, pressureEveryMs: false, streamRetentionEveryMs: false },
    observer: { jobFinished: (e) => events.push(e) },
    ...opts,
  });
  const deps: UseCaseDeps = {
    catalog: new MemoryCatalog(),
    allocator: new FakeAllocator({ RAM: 1 }),
    jobs: queue,
    clock,
    ids: new SequentialIds(),
    presigner: undefined,
    config: DEFAULT_DOMAIN_CONFIG,
  };
  const advance = (ms: number) => timers.advance(ms, () => queue.idle());
  return { clock, timers, queue, handlers, deps, runs, events, advance, start: () => queue.start(deps) };
}

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, opened };
}

describe("InProcessJobQueue", () => {
  it("runs enqueued jobs once started, with the validated payload", async () => {
    const t = setup();
    await t.queue.enqueue(finalize(asPayloadId(ID.toUpperCase())));
    await t.queue.idle();
    expect(t.runs).toEqual([]); // not started: the API may enqueue before the runner has deps
    t.start();
    await t.queue.idle();
    expect(t.runs).toEqual([
      { name: "finalize-deletion", payload: { payloadId: ID }, at: t.clock.now(), attempt: 1 },
    ]);
    expect(t.events.map((e) => [e.name, e.jobId, e.outcome])).toEqual([
      ["finalize-deletion", `finalize-deletion:${ID}`, "completed"],
    ]);
  });

  it("collapses a job whose id is pending, and runs it again once it has finished", async () => {
    const t = setup();
    t.start();
    await t.queue.enqueue(move(3), { delayMs: 1_000 });
    await t.queue.enqueue(move(3));
    await t.queue.enqueue(move(3), { delayMs: 5 });
    await t.queue.enqueue(move(4), { delayMs: 1_000 }); // another version is another job
    expect(t.queue.depth()).toEqual({ waiting: 0, active: 0, delayed: 2, failed: 0 });
    await t.advance(1_000);
    expect(t.runs.map((r) => (r.payload as { version: number }).version)).toEqual([3, 4]);
    await t.queue.enqueue(move(3));
    await t.queue.idle();
    expect(t.runs).toHaveLength(3);
  });

  it("collapses a duplicate enqueued while the job is running", async () => {
    const g = gate();
    const t = setup({ "finalize-deletion": () => g.opened });
    t.start();
    await t.queue.enqueue(finalize());
    expect(t.queue.depth().active).toBe(1);
    await t.queue.enqueue(finalize());
    g.open();
    await t.queue.idle();
    expect(t.runs).toHaveLength(1);
  });

  it("runs a delayed job when its delay has passed, not before", async () => {
    const t = setup();
    t.start();
    const from = t.clock.now();
    await t.queue.enqueue(finalize(), { delayMs: 2_500 });
    await t.advance(2_499);
    expect(t.runs).toEqual([]);
    await t.advance(1);
    expect(t.runs.map((r) => r.at - from)).toEqual([2_500]);
  });

  it("retries a retryable failure with exponential backoff until it succeeds", async () => {
    const t = setup(
      {
        move: async (_p, attempt) => {
          if (attempt < 3) throw new DomainError("UNAVAILABLE", "agent unreachable");
        },
      },
      { backoffMs: 1_000 },
    );
    t.start();
    const from = t.clock.now();
    await t.queue.enqueue(move(2));
    await t.advance(10_000);
    expect(t.runs.map((r) => [r.attempt, r.at - from])).toEqual([
      [1, 0],
      [2, 1_000],
      [3, 3_000],
    ]);
    expect(t.events.map((e) => e.outcome)).toEqual(["retrying", "retrying", "completed"]);
    expect(t.queue.depth().failed).toBe(0);
  });

  it("gives up after the attempt limit", async () => {
    const t = setup(
      {
        move: async () => {
          throw new Error("bug");
        },
      },
      { attempts: 3, backoffMs: 10 },
    );
    t.start();
    await t.queue.enqueue(move(2));
    await t.advance(1_000);
    expect(t.runs).toHaveLength(3);
    expect(t.events.map((e) => e.outcome)).toEqual(["retrying", "retrying", "failed"]);
    expect(t.queue.depth()).toEqual({ waiting: 0, active: 0, delayed: 0, failed: 1 });
  });

  it.each([
    ["a non-retryable DomainError", new DomainError("INVALID_TRANSITION", "it is DELETING")],
    ["a PermanentJobError", new PermanentJobError("rolled back")],
  ])("fails %s at once, without retrying", async (_, error) => {
    const t = setup({
      move: async () => {
        throw error;
      },
    });
    t.start();
    await t.queue.enqueue(move(2));
    await t.advance(60_000);
    expect(t.runs).toHaveLength(1);
    expect(t.events.map((e) => [e.outcome, e.error])).toEqual([["failed", error]]);
  });

  it("refuses a malformed job on enqueue", async () => {
    const t = setup();
    t.start();
    await expect(t.queue.enqueue(move(0))).rejects.toBeInstanceOf(InvalidJobError);
    await expect(t.queue.enqueueJob("sweep", null)).rejects.toBeInstanceOf(InvalidJobError);
    expect(t.queue.depth().waiting).toBe(0);
  });

  it("fails a malformed payload at execution as permanent, without calling the handler", async () => {
    const t = setup();
    const result = await executeJob(
      t.handlers,
      t.deps,
      "move",
      { payloadId: "nope" },
      {
        jobId: "x",
        attempt: 1,
        log: { debug() {}, info() {}, warn() {}, error() {} },
      },
    );
    expect(result.kind).toBe("permanent");
    expect((result as { error: unknown }).error).toBeInstanceOf(InvalidJobError);
    expect(t.runs).toEqual([]);
  });

  it("re-runs a deferred job after its delay without using up an attempt", async () => {
    const t = setup(
      {
        "finalize-deletion": async () => {
          if (t.runs.length < 4) throw new JobDeferred(5_000, "still leased");
        },
      },
      { attempts: 1 },
    );
    t.start();
    const from = t.clock.now();
    await t.queue.enqueue(finalize());
    await t.queue.idle();
    expect(t.queue.depth().delayed).toBe(1);
    await t.queue.enqueue(finalize()); // still pending while deferred: collapses
    await t.advance(20_000);
    expect(t.runs.map((r) => [r.attempt, r.at - from])).toEqual([
      [1, 0],
      [1, 5_000],
      [1, 10_000],
      [1, 15_000],
    ]);
    expect(t.events.at(-1)?.outcome).toBe("completed");
  });

  it("runs at most `concurrency` jobs at once", async () => {
    let running = 0;
    let peak = 0;
    const t = setup(
      {
        move: async () => {
          running++;
          peak = Math.max(peak, running);
          await new Promise((r) => setImmediate(r));
          running--;
        },
      },
      { concurrency: 2 },
    );
    for (let v = 1; v <= 6; v++) await t.queue.enqueue(move(v));
    t.start();
    await t.queue.idle();
    expect(t.runs).toHaveLength(6);
    expect(peak).toBe(2);
  });

  it("runs sweep and pressure on their intervals, never two of one at once", async () => {
    const g = gate();
    const t = setup(
      { sweep: async () => (t.runs.length === 1 ? g.opened : undefined) },
      { periodic: { sweepEveryMs: 1_000, pressureEveryMs: 2_000 } },
    );
    t.start();
    const from = t.clock.now();
    // The first sweep hangs until the gate opens: the ticks at 2 s and 3 s find it still running.
    await t.timers.advance(3_000);
    expect(t.runs.map((r) => [r.name, r.at - from])).toEqual([
      ["sweep", 1_000],
      ["pressure", 2_000],
    ]);
    g.open();
    await t.advance(2_000);
    expect(t.runs.map((r) => [r.name, r.at - from])).toEqual([
      ["sweep", 1_000],
      ["pressure", 2_000],
      ["pressure", 4_000],
      ["sweep", 4_000],
      ["sweep", 5_000],
    ]);
  });

  it("close waits for the job in flight, drops queued ones, and refuses new jobs", async () => {
    const g = gate();
    let finished = false;
    const t = setup({
      move: async () => {
        await g.opened;
        finished = true;
      },
    });
    t.start();
    await t.queue.enqueue(move(1));
    await t.queue.enqueue(finalize(OTHER), { delayMs: 1_000 });
    const closed = t.queue.close();
    let closedYet = false;
    void closed.then(() => {
      closedYet = true;
    });
    await new Promise((r) => setImmediate(r));
    expect(closedYet).toBe(false);
    g.open();
    await closed;
    expect(finished).toBe(true);
    expect(t.timers.size).toBe(0);
    expect(t.queue.depth()).toEqual({ waiting: 0, active: 0, delayed: 0, failed: 0 });
    const e = await t.queue.enqueue(finalize()).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(DomainError);
    expect((e as DomainError).code).toBe("UNAVAILABLE");
  });
});
