import {
  DEFAULT_EVICTION_POLICY,
  DomainError,
  type DomainJob,
  type Payload,
  pin,
  type Tier,
} from "@pm/domain";
import { PermanentJobError } from "@pm/queue";
import { afterEach, describe, expect, it } from "vitest";
import { type WorkerHarness, workerHarness } from "../testing/worker-harness.ts";

let h: WorkerHarness;
afterEach(() => h.close());

const moveOf = (p: Payload, toTier: Tier, reason: "spill" | "promote" | "prefetch" | "evict"): DomainJob => ({
  name: "move",
  payloadId: p.id,
  toTier,
  reason,
  fsync: false,
  version: p.version,
});

describe("move job (in-process runner)", () => {
  it("moves the payload when its version is the one the move was decided on", async () => {
    h = workerHarness();
    const p = await h.committed("RAM");
    await h.jobs.enqueue(moveOf(p, "DISK", "spill"));
    await h.settle();
    const after = await h.peek(p.id);
    expect(after?.placement.tier).toBe("DISK");
    expect(after?.state).toBe("DURABLE");
    expect(after?.version).toBe(p.version + 2);
    expect(h.allocator.has(p.id, "RAM")).toBe(false);
    expect(h.outcomes("move")).toEqual([["completed", { moved: 1, skipped: 0 }]]);
  });

  it("is a no-op when the version is stale (the payload has moved on)", async () => {
    h = workerHarness();
    const p = await h.committed("RAM");
    await h.jobs.enqueue({ ...moveOf(p, "DISK", "spill"), version: p.version - 1 } as DomainJob);
    await h.settle();
    expect(await h.peek(p.id)).toEqual(p);
    expect(h.allocator.has(p.id, "DISK")).toBe(false);
    expect(h.outcomes("move")).toEqual([["completed", { moved: 0, skipped: 1 }]]);
  });

  it("is a no-op for a payload that is gone", async () => {
    h = workerHarness();
    const p = await h.committed("RAM");
    await h.catalog.transaction((tx) => tx.deletePayload(p.id));
    await h.jobs.enqueue(moveOf(p, "DISK", "spill"));
    await h.settle();
    expect(h.outcomes("move")).toEqual([["completed", { moved: 0, skipped: 1 }]]);
  });

  it("prefetches under a live lease, keeping the source until the lease ends", async () => {
    h = workerHarness();
    const p = await h.committed("DISK");
    const lease = await h.leased(p.id, 5_000);
    await h.jobs.enqueue(moveOf(await h.peek(p.id).then((x) => x!), "RAM", "prefetch"));
    await h.settle();
    expect((await h.peek(p.id))?.placement.tier).toBe("RAM");
    expect(h.allocator.has(p.id, "DISK")).toBe(true);
    await h.advance(lease.expiresAt - h.clock.now() + 1_000);
    expect(h.allocator.has(p.id, "DISK")).toBe(false);
  });

  it("skips a promotion to a tier the payload is already on or faster than", async () => {
    h = workerHarness();
    const p = await h.committed("GPU");
    await h.jobs.enqueue(moveOf(p, "RAM", "promote"));
    await h.settle();
    expect((await h.peek(p.id))?.placement.tier).toBe("GPU");
    expect(h.outcomes("move")).toEqual([["completed", { moved: 0, skipped: 1 }]]);
  });

  it("retries a spill blocked by a lease with backoff, and moves once the lease has ended", async () => {
    h = workerHarness();
    const p = await h.committed("RAM");
    await h.leased(p.id, 2_500);
    await h.jobs.enqueue(moveOf(await h.peek(p.id).then((x) => x!), "DISK", "spill"));
    await h.advance(10_000);
    expect(h.outcomes("move").map(([o]) => o)).toEqual(["retrying", "retrying", "completed"]);
    expect((await h.peek(p.id))?.placement.tier).toBe("DISK");
  });

  it("re-checks an eviction when it runs: a payload pinned since is left alone", async () => {
    h = workerHarness();
    const p = await h.committed("RAM");
    await h.jobs.enqueue(moveOf(p, "DISK", "evict"), { delayMs: 1_000 });
    await pin(h.deps, h.ctx, p.id, 0);
    await h.advance(1_000);
    expect((await h.peek(p.id))?.placement.tier).toBe("RAM");
    expect(h.outcomes("move")).toEqual([["completed", { moved: 0, skipped: 1 }]]);
  });

  it("evicts to VOID by deleting the payload", async () => {
    h = workerHarness();
    const p = await h.committed("DISK", {
      evictionPolicy: { ...DEFAULT_EVICTION_POLICY, spillTarget: "VOID" },
    });
    await h.jobs.enqueue(moveOf(p, "VOID", "evict"));
    await h.settle();
    expect(await h.peek(p.id)).toBeUndefined();
    expect(h.allocator.has(p.id, "DISK")).toBe(false);
    expect(h.outcomes("move")).toEqual([["completed", { moved: 0, deleted: 1 }]]);
  });

  it("fails for good, without a pointless retry, when a failed copy was rolled back", async () => {
    h = workerHarness();
    const p = await h.committed("RAM");
    h.allocator.failNextCopy = new DomainError("UNAVAILABLE", "agent unreachable");
    await h.jobs.enqueue(moveOf(p, "DISK", "spill"));
    await h.advance(60_000);
    const [event, ...rest] = h.events.filter((e) => e.name === "move");
    expect(rest).toEqual([]);
    expect(event?.outcome).toBe("failed");
    expect(event?.error).toBeInstanceOf(PermanentJobError);
    const after = await h.peek(p.id);
    expect(after?.placement.tier).toBe("RAM");
    expect(after?.state).toBe("ACTIVE");
    expect(after?.version).toBe(p.version + 2);
  });

  it("fails a spill of a pinned payload at once (PIN_CONFLICT is not retryable)", async () => {
    h = workerHarness();
    const p = await h.committed("RAM");
    await pin(h.deps, h.ctx, p.id, 0);
    await h.jobs.enqueue(moveOf(p, "DISK", "spill"));
    await h.advance(60_000);
    const events = h.events.filter((e) => e.name === "move");
    expect(events.map((e) => [e.outcome, (e.error as DomainError).code])).toEqual([
      ["failed", "PIN_CONFLICT"],
    ]);
  });
});
