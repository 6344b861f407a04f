import { describe, expect, it } from "vitest";
import { asLeaseId } from "../model/ids.ts";
import { listPayloads } from "./catalog.ts";
import { type AcquireLeaseRequest, acquireReadLease, releaseLease, renewLease } from "./leases.ts";
import { deletePayload } from "./lifecycle.ts";
import {
  allocated,
  committed,
  domainError,
  type Harness,
  harness,
  leased,
  MiB,
  peek,
  peekLease,
} from "./test-harness.ts";
import { spill } from "./tiering.ts";

const unknownLease = asLeaseId("77777777-7777-4777-8777-777777777777");

function acquire(
  h: Harness,
  req: Partial<AcquireLeaseRequest> & Pick<AcquireLeaseRequest, "id">,
  ctx = h.ctx,
) {
  return acquireReadLease(h.deps, ctx, {
    minTier: undefined,
    promotionPolicy: "BEST_EFFORT",
    durationMs: 0,
    ...req,
  });
}

describe("acquireReadLease", () => {
  it("refuses a payload that was never committed, telling the caller to commit first", async () => {
    const h = harness();
    const p = await allocated(h);
    const e = await domainError(() => acquire(h, { id: p.id }), "INVALID_TRANSITION");
    expect(e.message).toContain("must commit it first");
    expect(e.details.state).toBe("ALLOCATED");
  });

  it("grants 20 s by default, on the current version, with the readable descriptor", async () => {
    const h = harness();
    const p = await committed(h);
    const grant = await acquire(h, { id: p.id });
    expect(grant.lease.expiresAt).toBe(h.clock.now() + 20_000);
    expect(grant.lease.createdAt).toBe(h.clock.now());
    expect(grant.lease.version).toBe(2);
    expect(grant.lease.payloadId).toBe(p.id);
    expect(grant.lease.revoked).toBe(false);
    expect(grant.descriptor.payload.placement).toEqual(p.placement);
    expect(grant.descriptor.payload.version).toBe(2);
    expect(await peekLease(h, grant.lease.id)).toEqual(grant.lease);
  });

  it("grants the requested duration, capped at 120 s", async () => {
    const h = harness();
    const p = await committed(h);
    expect((await acquire(h, { id: p.id, durationMs: 45_000 })).lease.expiresAt).toBe(h.clock.now() + 45_000);
    expect((await acquire(h, { id: p.id, durationMs: 3_600_000 })).lease.expiresAt).toBe(
      h.clock.now() + 120_000,
    );
  });

  it("leases DURABLE payloads too", async () => {
    const h = harness();
    const p = await committed(h, "DISK");
    expect((await acquire(h, { id: p.id })).lease.payloadId).toBe(p.id);
  });

  it("grants many concurrent leases on one payload, each counted as live", async () => {
    const h = harness();
    const p = await committed(h);
    const grants = await Promise.all([1, 2, 3, 4, 5].map(() => acquire(h, { id: p.id })));
    expect(new Set(grants.map((g) => g.lease.id)).size).toBe(5);
    const list = await listPayloads(h.deps, h.ctx, {
      tier: undefined,
      state: undefined,
      pageSize: 0,
      pageToken: "",
    });
    expect(list.items[0]?.liveLeases).toBe(5);
  });

  it("records access times to a second: leases within it do not rewrite the payload", async () => {
    const h = harness();
    const p = await committed(h);
    h.clock.advance(7_000);
    await acquire(h, { id: p.id });
    const first = (await peek(h, p.id))?.lastAccessAt;
    h.clock.advance(400);
    await acquire(h, { id: p.id });
    expect((await peek(h, p.id))?.lastAccessAt).toBe(first);
    h.clock.advance(600);
    await acquire(h, { id: p.id });
    expect((await peek(h, p.id))?.lastAccessAt).toBe(h.clock.now());
  });

  it("records the access time without bumping the version", async () => {
    const h = harness();
    const p = await committed(h);
    h.clock.advance(7_000);
    await acquire(h, { id: p.id });
    const row = await peek(h, p.id);
    expect(row?.lastAccessAt).toBe(h.clock.now());
    expect(row?.version).toBe(2);
  });

  it("min_tier the payload already satisfies needs no promotion", async () => {
    const h = harness();
    const p = await committed(h, "RAM");
    const grant = await acquire(h, { id: p.id, minTier: "DISK" });
    expect(grant.descriptor.payload.placement.tier).toBe("RAM");
    expect(h.jobs.jobs).toEqual([]);
  });

  it("BEST_EFFORT with min_tier faster than the payload: refuses now and queues a promotion", async () => {
    const h = harness();
    const p = await committed(h, "DISK");
    const e = await domainError(
      () => acquire(h, { id: p.id, minTier: "RAM", promotionPolicy: "BEST_EFFORT" }),
      "INVALID_TRANSITION",
    );
    expect(e.message).toContain("a promotion was queued");
    expect(h.jobs.jobs.map((j) => j.job)).toEqual([
      { name: "move", payloadId: p.id, toTier: "RAM", reason: "promote", fsync: false, version: 2 },
    ]);
    expect(await peek(h, p.id)).toEqual(p);
    const list = await listPayloads(h.deps, h.ctx, {
      tier: undefined,
      state: undefined,
      pageSize: 0,
      pageToken: "",
    });
    expect(list.items[0]?.liveLeases).toBe(0);
  });

  it("BLOCKING with min_tier faster than the payload: promotes, then leases the new placement", async () => {
    const h = harness();
    const p = await committed(h, "DISK");
    const grant = await acquire(h, { id: p.id, minTier: "RAM", promotionPolicy: "BLOCKING" });
    expect(grant.descriptor.payload.placement.tier).toBe("RAM");
    expect(grant.descriptor.payload.state).toBe("ACTIVE");
    expect(grant.descriptor.payload.version).toBe(4);
    expect(grant.lease.version).toBe(4);
    expect(h.allocator.has(p.id, "RAM")).toBe(true);
    expect(h.allocator.has(p.id, "DISK")).toBe(false);
    expect((await peek(h, p.id))?.placement.tier).toBe("RAM");
  });

  it("BLOCKING promotion that cannot get room fails with TIER_FULL and leaves the payload where it was", async () => {
    const h = harness({ capacity: { RAM: MiB, DISK: 8 * MiB } });
    await committed(h, "RAM", { sizeBytes: MiB });
    const p = await committed(h, "DISK", { sizeBytes: MiB });
    await domainError(
      () => acquire(h, { id: p.id, minTier: "RAM", promotionPolicy: "BLOCKING" }),
      "TIER_FULL",
    );
    const row = await peek(h, p.id);
    expect(row?.state).toBe("DURABLE");
    expect(row?.placement.tier).toBe("DISK");
    expect(h.allocator.has(p.id, "DISK")).toBe(true);
  });

  it("grants a lease while a move is in flight (the source is still readable)", async () => {
    const h = harness();
    const p = await committed(h, "RAM");
    let during: Awaited<ReturnType<typeof acquire>> | undefined;
    h.allocator.beforeCopy = async () => {
      during = await acquire(h, { id: p.id });
    };
    await spill(h.deps, h.ctx, {
      ids: [p.id],
      policy: "BLOCKING",
      waitForLeases: false,
      fsync: false,
      targetTier: "DISK",
    });
    expect(during?.descriptor.payload.state).toBe("SPILLING");
    expect(during?.descriptor.payload.placement.tier).toBe("RAM");
    // The source region stays until that lease ends.
    expect(h.allocator.has(p.id, "RAM")).toBe(true);
  });
});

describe("renewLease", () => {
  it("extends a live lease from now, never shortening it", async () => {
    const h = harness();
    const p = await committed(h);
    const lease = await leased(h, p.id, 20_000);
    h.clock.advance(10_000);
    const renewed = await renewLease(h.deps, h.ctx, lease.id, 20_000);
    expect(renewed.lease.expiresAt).toBe(h.clock.now() + 20_000);
    expect((await peekLease(h, lease.id))?.expiresAt).toBe(h.clock.now() + 20_000);
    const shorter = await renewLease(h.deps, h.ctx, lease.id, 1_000);
    expect(shorter.lease.expiresAt).toBe(h.clock.now() + 20_000);
  });

  it("caps a renewal at 120 s from now", async () => {
    const h = harness();
    const p = await committed(h);
    const lease = await leased(h, p.id);
    const renewed = await renewLease(h.deps, h.ctx, lease.id, 3_600_000);
    expect(renewed.lease.expiresAt).toBe(h.clock.now() + 120_000);
  });

  it("counts as an access", async () => {
    const h = harness();
    const p = await committed(h);
    const lease = await leased(h, p.id);
    h.clock.advance(5_000);
    await renewLease(h.deps, h.ctx, lease.id, 0);
    expect((await peek(h, p.id))?.lastAccessAt).toBe(h.clock.now());
  });

  it("refuses an expired lease with LEASE_EXPIRED, telling the caller to acquire a new one", async () => {
    const h = harness();
    const p = await committed(h);
    const lease = await leased(h, p.id, 20_000);
    h.clock.advance(20_000);
    const e = await domainError(() => renewLease(h.deps, h.ctx, lease.id, 0), "LEASE_EXPIRED");
    expect(e.message).toContain("has expired");
    expect(e.message).toContain("acquire a new lease");
    expect(e.retryable).toBe(false);
  });

  it("refuses a lease revoked by a force delete with LEASE_EXPIRED", async () => {
    const h = harness();
    const p = await committed(h);
    const lease = await leased(h, p.id);
    await deletePayload(h.deps, h.ctx, { id: p.id, force: true });
    const e = await domainError(() => renewLease(h.deps, h.ctx, lease.id, 0), "LEASE_EXPIRED");
    expect(e.message).toContain("revoked");
    // Renewal attempts do not extend the protection of the doomed bytes.
    expect((await peekLease(h, lease.id))?.expiresAt).toBe(lease.expiresAt);
  });

  it("reports an unknown or released lease as LEASE_NOT_FOUND", async () => {
    const h = harness();
    const p = await committed(h);
    await domainError(() => renewLease(h.deps, h.ctx, unknownLease, 0), "LEASE_NOT_FOUND");
    const lease = await leased(h, p.id);
    await releaseLease(h.deps, h.ctx, lease.id);
    const e = await domainError(() => renewLease(h.deps, h.ctx, lease.id, 0), "LEASE_NOT_FOUND");
    expect(e.message).toContain("acquire a new lease");
  });

  it("another tenant cannot renew a lease", async () => {
    const h = harness();
    const p = await committed(h);
    const lease = await leased(h, p.id);
    await domainError(() => renewLease(h.deps, h.other, lease.id, 60_000), "LEASE_NOT_FOUND");
    expect((await peekLease(h, lease.id))?.expiresAt).toBe(lease.expiresAt);
  });
});

describe("releaseLease", () => {
  it("removes the lease; releasing twice or an unknown id succeeds", async () => {
    const h = harness();
    const p = await committed(h);
    const lease = await leased(h, p.id);
    await releaseLease(h.deps, h.ctx, lease.id);
    expect(await peekLease(h, lease.id)).toBeUndefined();
    await expect(releaseLease(h.deps, h.ctx, lease.id)).resolves.toBeUndefined();
    await expect(releaseLease(h.deps, h.ctx, unknownLease)).resolves.toBeUndefined();
  });

  it("a released lease no longer blocks a plain delete", async () => {
    const h = harness();
    const p = await committed(h);
    const lease = await leased(h, p.id);
    await releaseLease(h.deps, h.ctx, lease.id);
    await deletePayload(h.deps, h.ctx, { id: p.id, force: false });
    expect(await peek(h, p.id)).toBeUndefined();
  });

  it("another tenant's release is a silent no-op that leaves the lease in force", async () => {
    const h = harness();
    const p = await committed(h);
    const lease = await leased(h, p.id);
    await releaseLease(h.deps, h.other, lease.id);
    expect(await peekLease(h, lease.id)).toEqual(lease);
  });
});
