import { deletePayload } from "@pm/domain";
import { JobDeferred, silentLog } from "@pm/queue";
import { afterEach, describe, expect, it } from "vitest";
import { type WorkerHarness, workerHarness } from "../testing/worker-harness.ts";
import { finalizeDeletionJob } from "./finalize-deletion.ts";

let h: WorkerHarness;
afterEach(() => h.close());

const ctx = { jobId: "test", attempt: 1, log: silentLog };

describe("finalize-deletion job", () => {
  it("frees the bytes of a force-deleted payload when its lease expires, not before", async () => {
    // No sweep: the queued job alone must do it.
    h = workerHarness({ sweepIntervalMs: false, pressureIntervalMs: false });
    const p = await h.committed("RAM");
    const lease = await h.leased(p.id, 20_000);
    await deletePayload(h.deps, h.ctx, { id: p.id, force: true });
    expect((await h.peek(p.id))?.state).toBe("DELETING");
    expect(h.jobs.depth().delayed).toBe(1);

    await h.advance(lease.expiresAt - h.clock.now());
    expect(h.allocator.has(p.id, "RAM")).toBe(true);
    expect((await h.peek(p.id))?.state).toBe("DELETING");
    await h.advance(100);
    expect(await h.peek(p.id)).toBeUndefined();
    expect(h.allocator.has(p.id, "RAM")).toBe(false);
    expect(h.outcomes("finalize-deletion")).toEqual([["completed", { freed: 1 }]]);
  });

  it("defers itself while a lease still protects the bytes", async () => {
    h = workerHarness({ sweepIntervalMs: false, pressureIntervalMs: false });
    const p = await h.committed("RAM");
    const lease = await h.leased(p.id, 20_000);
    await deletePayload(h.deps, h.ctx, { id: p.id, force: true });
    const e = await finalizeDeletionJob(h.deps, { payloadId: p.id }, ctx).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(JobDeferred);
    expect((e as JobDeferred).delayMs).toBe(lease.expiresAt - h.clock.now() + 50);
    expect(h.allocator.has(p.id, "RAM")).toBe(true);
  });

  it("is a no-op for a payload already gone", async () => {
    h = workerHarness({ sweepIntervalMs: false, pressureIntervalMs: false });
    const p = await h.committed("RAM");
    await deletePayload(h.deps, h.ctx, { id: p.id, force: false });
    expect(await h.peek(p.id)).toBeUndefined();
    expect(await finalizeDeletionJob(h.deps, { payloadId: p.id }, ctx)).toEqual({ freed: 0 });
  });
});
