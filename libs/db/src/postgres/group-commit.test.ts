import { describe, expect, it } from "vitest";
import { GroupCommit } from "./group-commit.ts";

/** A runner whose batches finish only when the test says so. */
function gatedRunner() {
  const batches: number[][] = [];
  const gates: (() => void)[] = [];
  let opened = false;
  let running = 0;
  let maxRunning = 0;
  const run = async (batch: readonly number[]) => {
    batches.push([...batch]);
    running++;
    maxRunning = Math.max(maxRunning, running);
    if (!opened) await new Promise<void>((r) => gates.push(r));
    running--;
    if (batch.some((n) => n < 0)) throw new Error(`negative in ${batch.join(",")}`);
    return batch.map((n) => n * 10);
  };
  /** Lets the batches in flight finish, and every later one run straight through. */
  const openAll = () => {
    opened = true;
    for (const g of gates.splice(0)) g();
  };
  return { batches, run, openAll, maxRunning: () => maxRunning };
}

const tick = () => new Promise((r) => setImmediate(r));

describe("GroupCommit", () => {
  it("sends a lone call at once and queues the calls that arrive while every lane is busy into one batch", async () => {
    const r = gatedRunner();
    const gc = new GroupCommit({ run: r.run, lanes: 1, maxBatch: 100, isolate: () => true });
    const first = gc.submit(1);
    await tick();
    expect(r.batches).toEqual([[1]]);
    const rest = [2, 3, 4, 5].map((n) => gc.submit(n));
    await tick();
    expect(r.batches).toHaveLength(1); // the lane is busy: they wait
    expect(gc.pending).toBe(5);
    r.openAll();
    expect(await first).toBe(10);
    expect(await Promise.all(rest)).toEqual([20, 30, 40, 50]);
    expect(r.batches).toEqual([[1], [2, 3, 4, 5]]);
    expect(gc.pending).toBe(0);
  });

  it("keeps at most `lanes` batches in flight and at most `maxBatch` calls in one", async () => {
    const r = gatedRunner();
    const gc = new GroupCommit({ run: r.run, lanes: 2, maxBatch: 3, isolate: () => true });
    const all = Array.from({ length: 10 }, (_, i) => gc.submit(i));
    await tick();
    expect(r.batches).toEqual([
      [0, 1, 2],
      [3, 4, 5],
    ]);
    r.openAll();
    expect(await Promise.all(all)).toEqual(Array.from({ length: 10 }, (_, i) => i * 10));
    expect(r.maxRunning()).toBe(2);
    expect(Math.max(...r.batches.map((b) => b.length))).toBe(3);
    expect(r.batches.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: 10 }, (_, i) => i));
  });

  it("re-runs a failed batch call by call when the error is isolatable, so only the bad call fails", async () => {
    const r = gatedRunner();
    const sizes: number[] = [];
    const gc = new GroupCommit({
      run: r.run,
      lanes: 1,
      maxBatch: 100,
      isolate: () => true,
      onBatch: (n) => sizes.push(n),
    });
    const calls = [1, 2, -3, 4].map((n) => gc.submit(n));
    r.openAll();
    const settled = await Promise.allSettled(calls);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "fulfilled", "rejected", "fulfilled"]);
    expect(settled[2]).toMatchObject({ reason: { message: "negative in -3" } });
    expect(sizes).toEqual([4, 1, 1, 1, 1]);
  });

  it("fails every call of the batch with the batch's error when it is not isolatable", async () => {
    const r = gatedRunner();
    const gc = new GroupCommit({ run: r.run, lanes: 1, maxBatch: 100, isolate: () => false });
    const calls = [1, -2, 3].map((n) => gc.submit(n));
    r.openAll();
    for (const s of await Promise.allSettled(calls)) {
      expect(s).toMatchObject({ status: "rejected", reason: { message: "negative in 1,-2,3" } });
    }
    expect(r.batches).toHaveLength(1);
  });

  it("refuses a batch answer of the wrong length instead of mis-assigning results", async () => {
    const gc = new GroupCommit<number, number>({
      run: async (b) => b.slice(1),
      lanes: 1,
      maxBatch: 100,
      isolate: () => false,
    });
    const calls = [1, 2].map((n) => gc.submit(n));
    for (const s of await Promise.allSettled(calls)) {
      expect(s).toMatchObject({ status: "rejected", reason: { message: "a batch of 2 returned 1 results" } });
    }
  });

  it("fails calls queued past maxWaitMs while every lane is stuck, and serves the rest once one frees", async () => {
    const r = gatedRunner();
    const gc = new GroupCommit({
      run: r.run,
      lanes: 1,
      maxBatch: 100,
      isolate: () => true,
      maxWaitMs: 30,
      waitError: (waited) => new Error(`waited ${waited >= 30 ? "enough" : waited}`),
    });
    const stuck = gc.submit(1);
    await tick();
    const queued = [2, 3].map((n) => gc.submit(n));
    const settled = await Promise.allSettled(queued);
    for (const s of settled)
      expect(s).toMatchObject({ status: "rejected", reason: { message: "waited enough" } });
    const later = gc.submit(4);
    r.openAll();
    expect(await stuck).toBe(10);
    expect(await later).toBe(40);
    expect(r.batches).toEqual([[1], [4]]);
  });

  it("settles every call even when the batch-size hook throws", async () => {
    const gc = new GroupCommit<number, number>({
      run: async (b) => b.map((n) => n + 1),
      lanes: 1,
      maxBatch: 10,
      isolate: () => true,
      onBatch: () => {
        throw new Error("metrics down");
      },
    });
    expect(await Promise.all([1, 2].map((n) => gc.submit(n)))).toEqual([2, 3]);
  });

  it("rejects nonsense shapes", () => {
    const run = async (b: readonly number[]) => b;
    expect(() => new GroupCommit({ run, lanes: 0, maxBatch: 1, isolate: () => true })).toThrow(/lanes/);
    expect(() => new GroupCommit({ run, lanes: 1, maxBatch: 0, isolate: () => true })).toThrow(/maxBatch/);
  });
});
