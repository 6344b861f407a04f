import { describe, expect, it } from "vitest";
import { deletePayload } from "./lifecycle.ts";
import { sweep } from "./sweeps.ts";
import { allocated, committed, harness, leased, peek, peekLease, retiredRegions } from "./test-harness.ts";
import { spill } from "./tiering.ts";

describe("sweep", () => {
  it("expires, reaps, finalizes, sweeps leases and frees retired regions, reporting each count", async () => {
    const h = harness();
    // Expires: committed with a 1 s TTL.
    const ttl = await committed(h, "RAM", { ttlMs: 1_000 });
    // Reaped: never committed.
    const abandoned = await allocated(h, "RAM");
    // Finalized: force-deleted under a lease that will have ended.
    const doomed = await committed(h, "RAM");
    await leased(h, doomed.id, 20_000);
    await deletePayload(h.deps, h.ctx, { id: doomed.id, force: true });
    // Lease swept + region freed: moved while leased.
    const moved = await committed(h, "RAM");
    const lease = await leased(h, moved.id, 20_000);
    await spill(h.deps, h.ctx, {
      ids: [moved.id],
      policy: "BLOCKING",
      waitForLeases: true,
      fsync: false,
      targetTier: "DISK",
    });
    // Untouched: committed, no TTL.
    const keeper = await committed(h, "DISK");

    expect(await sweep(h.deps)).toEqual({
      expired: 0,
      reaped: 0,
      finalized: 0,
      leasesSwept: 0,
      regionsFreed: 0,
      movesRepaired: 0,
    });
    h.clock.advance(1_000);
    expect(await sweep(h.deps)).toEqual({
      expired: 1,
      reaped: 0,
      finalized: 0,
      leasesSwept: 0,
      regionsFreed: 0,
      movesRepaired: 0,
    });
    expect(await peek(h, ttl.id)).toBeUndefined();

    h.clock.advance(10 * 60_000 - 1_000);
    expect(await sweep(h.deps)).toEqual({
      expired: 0,
      reaped: 1,
      finalized: 1,
      leasesSwept: 1,
      regionsFreed: 1,
      movesRepaired: 0,
    });

    expect(await peek(h, abandoned.id)).toBeUndefined();
    expect(await peek(h, doomed.id)).toBeUndefined();
    expect(await peekLease(h, lease.id)).toBeUndefined();
    expect(await retiredRegions(h)).toEqual([]);
    expect((await peek(h, moved.id))?.placement.tier).toBe("DISK");
    expect((await peek(h, keeper.id))?.state).toBe("DURABLE");
    expect([...h.allocator.regions.keys()].sort()).toEqual([`${keeper.id}@DISK`, `${moved.id}@DISK`].sort());

    // Idempotent: nothing left to do.
    expect(await sweep(h.deps)).toEqual({
      expired: 0,
      reaped: 0,
      finalized: 0,
      leasesSwept: 0,
      regionsFreed: 0,
      movesRepaired: 0,
    });
  });

  it("a payload whose TTL fired under a lease is expired now and finalized once the lease ends", async () => {
    const h = harness();
    const p = await committed(h, "RAM", { ttlMs: 1_000 });
    await leased(h, p.id, 30_000);
    h.clock.advance(1_000);
    expect(await sweep(h.deps)).toMatchObject({ expired: 1, finalized: 0 });
    expect((await peek(h, p.id))?.state).toBe("EXPIRED");
    expect(h.allocator.has(p.id, "RAM")).toBe(true);

    h.clock.advance(29_000);
    expect(await sweep(h.deps)).toMatchObject({ expired: 0, finalized: 1 });
    expect(await peek(h, p.id)).toBeUndefined();
    expect(h.allocator.regions.size).toBe(0);
  });

  it("respects the batch size", async () => {
    const h = harness();
    for (let i = 0; i < 3; i++) await committed(h, "RAM", { ttlMs: 1 });
    h.clock.advance(1);
    expect((await sweep(h.deps, 2)).expired).toBe(2);
    expect((await sweep(h.deps, 2)).expired).toBe(1);
  });
});
