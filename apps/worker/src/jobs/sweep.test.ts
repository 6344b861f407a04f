import { afterEach, describe, expect, it } from "vitest";
import { type WorkerHarness, workerHarness } from "../testing/worker-harness.ts";

let h: WorkerHarness;
afterEach(() => h.close());

describe("periodic sweep (in-process runner)", () => {
  it("enforces a TTL within 1 s of the deadline: the payload goes and its region is freed", async () => {
    h = workerHarness();
    const p = await h.committed("RAM", { ttlMs: 5_000 });
    await h.advance(4_999);
    expect((await h.peek(p.id))?.state).toBe("ACTIVE");
    expect(h.allocator.has(p.id, "RAM")).toBe(true);
    await h.advance(1_000);
    expect(await h.peek(p.id)).toBeUndefined();
    expect(h.allocator.has(p.id, "RAM")).toBe(false);
    expect(h.outcomes("sweep").some(([, c]) => (c as { expired: number }).expired === 1)).toBe(true);
  });

  it("expires a leased payload but keeps its bytes until the lease ends", async () => {
    h = workerHarness();
    const p = await h.committed("RAM", { ttlMs: 1_000 });
    const lease = await h.leased(p.id, 20_000);
    await h.advance(1_000);
    expect((await h.peek(p.id))?.state).toBe("EXPIRED");
    expect(h.allocator.has(p.id, "RAM")).toBe(true);
    const stored = await h.catalog.transaction((tx) => tx.getLease(lease.id));
    expect(stored?.revoked).toBe(true);

    await h.advance(lease.expiresAt - h.clock.now() - 1);
    expect(h.allocator.has(p.id, "RAM")).toBe(true);
    await h.advance(1_000);
    expect(await h.peek(p.id)).toBeUndefined();
    expect(h.allocator.has(p.id, "RAM")).toBe(false);
  });

  it("reaps an allocation never committed within allocationTimeoutMs", async () => {
    h = workerHarness({ config: { allocationTimeoutMs: 60_000 } });
    const p = await h.allocated("DISK");
    const kept = await h.committed("DISK");
    await h.advance(59_000);
    expect((await h.peek(p.id))?.state).toBe("ALLOCATED");
    await h.advance(1_000);
    expect(await h.peek(p.id)).toBeUndefined();
    expect(h.allocator.has(p.id, "DISK")).toBe(false);
    expect((await h.peek(kept.id))?.state).toBe("DURABLE");
    expect(h.outcomes("sweep").some(([, c]) => (c as { reaped: number }).reaped === 1)).toBe(true);
  });

  it("leaves payloads without a TTL alone", async () => {
    h = workerHarness();
    const p = await h.committed("RAM");
    await h.advance(3_600_000);
    expect((await h.peek(p.id))?.state).toBe("ACTIVE");
  });
});
