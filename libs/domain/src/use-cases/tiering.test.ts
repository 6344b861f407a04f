import { describe, expect, it } from "vitest";
import { DomainError } from "../errors.ts";
import type { PayloadId } from "../model/ids.ts";
import { jobIdOf } from "../ports/job-queue.ts";
import { releaseLease } from "./leases.ts";
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
  policy,
  retiredRegions,
  unknownId,
} from "./test-harness.ts";
import {
  freeRetiredRegions,
  movePayload,
  pin,
  prefetch,
  promote,
  type SpillRequest,
  spill,
  unpin,
} from "./tiering.ts";

function spillReq(ids: PayloadId[], overrides: Partial<SpillRequest> = {}): SpillRequest {
  return { ids, policy: "BLOCKING", waitForLeases: false, fsync: false, targetTier: undefined, ...overrides };
}

async function spillOne(h: Harness, id: PayloadId, overrides: Partial<SpillRequest> = {}) {
  const [result, ...rest] = await spill(h.deps, h.ctx, spillReq([id], overrides));
  expect(rest).toEqual([]);
  if (!result) throw new Error("no result");
  return result;
}

describe("spill", () => {
  it("reports per item and never throws for domain errors", async () => {
    const h = harness();
    const good = await committed(h);
    const pinned = await committed(h);
    await pin(h.deps, h.ctx, pinned.id, 0);
    const results = await spill(h.deps, h.ctx, spillReq([good.id, unknownId, pinned.id]));
    expect(results.map((r) => [r.id, r.ok])).toEqual([
      [good.id, true],
      [unknownId, false],
      [pinned.id, false],
    ]);
    expect(results[0]?.errorMessage).toBe("");
    expect(results[1]?.errorMessage).toMatch(/^PAYLOAD_NOT_FOUND: /);
    expect(results[2]?.errorMessage).toMatch(/^PIN_CONFLICT: .*unpin it/);
    expect(results[1]?.descriptor).toBeUndefined();
  });

  it("BLOCKING moves RAM to DISK: SPILLING during the copy, then DURABLE at version +2, source freed", async () => {
    const h = harness();
    const p = await committed(h, "RAM");
    let during: Awaited<ReturnType<typeof peek>>;
    h.allocator.beforeCopy = async () => {
      during = await peek(h, p.id);
    };
    const r = await spillOne(h, p.id);
    expect(during?.state).toBe("SPILLING");
    expect(during?.version).toBe(3);
    expect(during?.placement.tier).toBe("RAM");

    expect(r.ok).toBe(true);
    const d = r.descriptor?.payload;
    expect(d?.state).toBe("DURABLE");
    expect(d?.version).toBe(4);
    expect(d?.placement.tier).toBe("DISK");
    expect(d?.placement.location).toEqual({ kind: "disk", path: `/data/${p.id}.bin`, offsetBytes: 0 });
    expect(d?.pendingPlacement).toBeUndefined();
    expect(await peek(h, p.id)).toEqual(d);
    expect(h.allocator.has(p.id, "RAM")).toBe(false);
    expect(h.allocator.has(p.id, "DISK")).toBe(true);
    expect(await retiredRegions(h)).toEqual([]);
  });

  it("with a live lease and wait_for_leases=false, the item fails with LEASE_CONFLICT and nothing moves", async () => {
    const h = harness();
    const p = await committed(h);
    await leased(h, p.id);
    const r = await spillOne(h, p.id, { waitForLeases: false });
    expect(r.ok).toBe(false);
    expect(r.errorMessage).toMatch(/^LEASE_CONFLICT: .*wait_for_leases/);
    expect(await peek(h, p.id)).toMatchObject({ state: "ACTIVE", version: 2 });
    expect(h.allocator.regions.size).toBe(1);
  });

  it("with wait_for_leases=true, moves now and frees the source only once the lease is released", async () => {
    const h = harness();
    const p = await committed(h);
    const lease = await leased(h, p.id);
    const r = await spillOne(h, p.id, { waitForLeases: true });
    expect(r.ok).toBe(true);
    expect(r.descriptor?.payload.placement.tier).toBe("DISK");
    expect(h.allocator.has(p.id, "RAM")).toBe(true);
    expect((await retiredRegions(h)).map((x) => x.placement.tier)).toEqual(["RAM"]);

    expect(await freeRetiredRegions(h.deps, 10)).toBe(0);
    expect(h.allocator.has(p.id, "RAM")).toBe(true);

    await releaseLease(h.deps, h.ctx, lease.id);
    expect(await freeRetiredRegions(h.deps, 10)).toBe(1);
    expect(h.allocator.has(p.id, "RAM")).toBe(false);
    expect(h.allocator.has(p.id, "DISK")).toBe(true);
    expect(await retiredRegions(h)).toEqual([]);
  });

  it("with wait_for_leases=true, the source is freed once the old lease expires", async () => {
    const h = harness();
    const p = await committed(h);
    await leased(h, p.id, 20_000);
    await spillOne(h, p.id, { waitForLeases: true });
    // A lease on the new placement does not protect the old one.
    await leased(h, p.id, 60_000);
    h.clock.advance(19_999);
    expect(await freeRetiredRegions(h.deps, 10)).toBe(0);
    h.clock.advance(1);
    expect(await freeRetiredRegions(h.deps, 10)).toBe(1);
    expect(h.allocator.has(p.id, "RAM")).toBe(false);
  });

  it("refuses a pinned payload with PIN_CONFLICT until unpinned", async () => {
    const h = harness();
    const p = await committed(h);
    await pin(h.deps, h.ctx, p.id, 0);
    expect((await spillOne(h, p.id)).errorMessage).toMatch(/^PIN_CONFLICT/);
    expect((await peek(h, p.id))?.placement.tier).toBe("RAM");
    await unpin(h.deps, h.ctx, p.id);
    expect((await spillOne(h, p.id)).ok).toBe(true);
  });

  it("a pin with a duration stops protecting once it has run out", async () => {
    const h = harness();
    const p = await committed(h);
    await pin(h.deps, h.ctx, p.id, 5_000);
    h.clock.advance(4_999);
    expect((await spillOne(h, p.id)).ok).toBe(false);
    h.clock.advance(1);
    expect((await spillOne(h, p.id)).ok).toBe(true);
  });

  it("refuses a pinned payload even when the target is VOID (a spill, not an explicit delete)", async () => {
    const h = harness();
    const p = await committed(h);
    await pin(h.deps, h.ctx, p.id, 0);
    const r = await spillOne(h, p.id, { targetTier: "VOID" });
    expect(r.ok).toBe(false);
    expect(r.errorMessage).toMatch(/^PIN_CONFLICT/);
    expect((await peek(h, p.id))?.state).toBe("ACTIVE");
    expect(h.allocator.has(p.id, "RAM")).toBe(true);
  });

  it.each([
    ["a faster tier", "GPU"],
    ["the same tier", "RAM"],
  ] as const)("refuses a target on %s with INVALID_ARGUMENT", async (_, targetTier) => {
    const h = harness();
    const p = await committed(h, "RAM");
    const r = await spillOne(h, p.id, { targetTier });
    expect(r.ok).toBe(false);
    expect(r.errorMessage).toMatch(/^INVALID_ARGUMENT: .*must be slower.*Promote/);
    expect(await peek(h, p.id)).toMatchObject({ state: "ACTIVE", version: 2 });
  });

  it("target precedence: the request's target wins over the payload's spill target", async () => {
    const h = harness({ capacity: { GPU: 8 * MiB, DISK: 8 * MiB, OBJECT: 8 * MiB } });
    const p = await committed(h, "GPU", { evictionPolicy: policy({ spillTarget: "DISK" }) });
    const r = await spillOne(h, p.id, { targetTier: "OBJECT" });
    expect(r.descriptor?.payload.placement.tier).toBe("OBJECT");
  });

  it("target precedence: the payload's spill target wins over the next slower tier", async () => {
    const h = harness();
    const p = await committed(h, "GPU", { evictionPolicy: policy({ spillTarget: "DISK" }) });
    const r = await spillOne(h, p.id);
    expect(r.descriptor?.payload.placement.tier).toBe("DISK");
    expect(h.allocator.has(p.id, "RAM")).toBe(false);
  });

  it("target precedence: without either, the next slower tier", async () => {
    const h = harness();
    const p = await committed(h, "GPU");
    const r = await spillOne(h, p.id);
    expect(r.descriptor?.payload.placement.tier).toBe("RAM");
    expect(r.descriptor?.payload.state).toBe("ACTIVE");
  });

  it("a payload already on its spill target spills on to the next slower tier", async () => {
    const h = harness({ capacity: { GPU: 8 * MiB, DISK: 8 * MiB, OBJECT: 8 * MiB } });
    const p = await committed(h, "GPU", { evictionPolicy: policy({ spillTarget: "DISK" }) });
    expect((await spillOne(h, p.id)).descriptor?.payload.placement.tier).toBe("DISK");
    const again = await spillOne(h, p.id);
    expect(again.errorMessage).toBe("");
    expect(again.descriptor?.payload.placement.tier).toBe("OBJECT");
  });

  it("a VOID target deletes the payload", async () => {
    const h = harness();
    const p = await committed(h);
    const r = await spillOne(h, p.id, { targetTier: "VOID" });
    expect(r).toEqual({ id: p.id, ok: true, errorMessage: "", descriptor: undefined });
    expect(await peek(h, p.id)).toBeUndefined();
    expect(h.allocator.regions.size).toBe(0);
  });

  it("a payload whose own spill target is VOID is deleted by a plain spill", async () => {
    const h = harness();
    const p = await committed(h, "RAM", { evictionPolicy: policy({ spillTarget: "VOID" }) });
    expect((await spillOne(h, p.id)).ok).toBe(true);
    expect(await peek(h, p.id)).toBeUndefined();
  });

  it("require_durable refuses VOID from a volatile tier and keeps the payload", async () => {
    const h = harness();
    const p = await committed(h, "RAM", { evictionPolicy: policy({ requireDurable: true }) });
    const r = await spillOne(h, p.id, { targetTier: "VOID" });
    expect(r.ok).toBe(false);
    expect(r.errorMessage).toMatch(/^INVALID_TRANSITION: .*durable copy.*TIER_DISK/);
    expect((await peek(h, p.id))?.state).toBe("ACTIVE");
    expect(h.allocator.has(p.id, "RAM")).toBe(true);
  });

  it("require_durable lets a payload on a durable tier be dropped", async () => {
    const h = harness();
    const p = await committed(h, "DISK", { evictionPolicy: policy({ requireDurable: true }) });
    expect((await spillOne(h, p.id, { targetTier: "VOID" })).ok).toBe(true);
    expect(await peek(h, p.id)).toBeUndefined();
  });

  it("min_residency_tier refuses a move below the floor", async () => {
    const h = harness();
    const p = await committed(h, "RAM", { evictionPolicy: policy({ minResidencyTier: "RAM" }) });
    const r = await spillOne(h, p.id, { targetTier: "DISK" });
    expect(r.ok).toBe(false);
    expect(r.errorMessage).toMatch(/^INVALID_TRANSITION: .*min_residency_tier/);
    expect(await peek(h, p.id)).toMatchObject({ state: "ACTIVE", version: 2 });
  });

  it("min_residency_tier allows a move down to the floor itself", async () => {
    const h = harness();
    const p = await committed(h, "GPU", { evictionPolicy: policy({ minResidencyTier: "RAM" }) });
    expect((await spillOne(h, p.id)).descriptor?.payload.placement.tier).toBe("RAM");
  });

  it("BEST_EFFORT queues a move job with a deterministic id and returns the current descriptor", async () => {
    const h = harness();
    const p = await committed(h);
    const r = await spillOne(h, p.id, { policy: "BEST_EFFORT", fsync: true });
    expect(r.ok).toBe(true);
    expect(r.descriptor?.payload).toEqual(p);
    expect(await peek(h, p.id)).toEqual(p);
    const job = {
      name: "move",
      payloadId: p.id,
      toTier: "DISK",
      reason: "spill",
      fsync: true,
      version: 2,
    } as const;
    expect(h.jobs.jobs).toEqual([{ job, delayMs: 0 }]);
    expect(jobIdOf(job)).toBe(`move:${p.id}:2:DISK`);

    // Asking twice names the same job, so the queue collapses it.
    await spillOne(h, p.id, { policy: "BEST_EFFORT", fsync: true });
    const [a, b] = h.jobs.jobs.map((j) => jobIdOf(j.job));
    expect(a).toBe(b);
  });

  it("a failed copy rolls back to the settled state on the source, leaking no region", async () => {
    const h = harness();
    const p = await committed(h);
    h.allocator.failNextCopy = new DomainError("UNAVAILABLE", "agent unreachable; retry");
    const r = await spillOne(h, p.id);
    expect(r.ok).toBe(false);
    expect(r.errorMessage).toMatch(/^UNAVAILABLE: /);
    const row = await peek(h, p.id);
    expect(row?.state).toBe("ACTIVE");
    expect(row?.placement).toEqual(p.placement);
    expect(row?.version).toBe(4);
    expect([...h.allocator.regions.keys()]).toEqual([`${p.id}@RAM`]);
    expect(await retiredRegions(h)).toEqual([]);
    // And it can be spilled again afterwards.
    expect((await spillOne(h, p.id)).ok).toBe(true);
  });

  it("a target tier without room fails with TIER_FULL and rolls back", async () => {
    const h = harness({ capacity: { RAM: 8 * MiB, DISK: MiB } });
    const p = await committed(h, "RAM", { sizeBytes: 2 * MiB });
    const r = await spillOne(h, p.id);
    expect(r.errorMessage).toMatch(/^TIER_FULL/);
    expect(await peek(h, p.id)).toMatchObject({ state: "ACTIVE", placement: p.placement });
  });

  it("a payload deleted while its bytes are being copied leaves no region behind", async () => {
    const h = harness();
    const p = await committed(h);
    h.allocator.afterCopy = async () => {
      expect(h.allocator.has(p.id, "DISK")).toBe(true);
      await deletePayload(h.deps, h.ctx, { id: p.id, force: false });
    };
    const r = await spillOne(h, p.id);
    expect(r.ok).toBe(false);
    expect(r.errorMessage).toMatch(/^INVALID_TRANSITION: .*deleted while it was being moved/);
    expect(await peek(h, p.id)).toBeUndefined();
    expect(h.allocator.regions.size).toBe(0);
  });

  it("refuses a second move while one is in flight", async () => {
    const h = harness();
    const p = await committed(h, "GPU");
    let nested: Awaited<ReturnType<typeof spillOne>> | undefined;
    h.allocator.beforeCopy = async () => {
      nested = await spillOne(h, p.id, { targetTier: "DISK" });
    };
    expect((await spillOne(h, p.id)).ok).toBe(true);
    expect(nested?.ok).toBe(false);
    expect(nested?.errorMessage).toMatch(/^INVALID_TRANSITION: .*already in flight/);
  });

  it("refuses a payload that was never committed", async () => {
    const h = harness();
    const p = await allocated(h);
    const r = await spillOne(h, p.id);
    expect(r.errorMessage).toMatch(/^INVALID_TRANSITION/);
    expect((await peek(h, p.id))?.state).toBe("ALLOCATED");
  });

  it("another tenant's payload is not found", async () => {
    const h = harness();
    const p = await committed(h);
    const [r] = await spill(h.deps, h.other, spillReq([p.id]));
    expect(r?.errorMessage).toMatch(/^PAYLOAD_NOT_FOUND/);
    expect((await peek(h, p.id))?.placement.tier).toBe("RAM");
  });
});

describe("movePayload (eviction by the system)", () => {
  it("moves a payload of any namespace when called without a request context", async () => {
    const h = harness();
    const p = await committed(h, "RAM", {}, h.other);
    const moved = await movePayload(h.deps, undefined, {
      id: p.id,
      toTier: "DISK",
      fsync: false,
      waitForLeases: false,
      direction: "evict",
    });
    expect(moved.placement.tier).toBe("DISK");
    expect(moved.namespace).toBe("team-b");
  });

  it("moving to the tier the payload is on is a no-op", async () => {
    const h = harness();
    const p = await committed(h, "RAM");
    const same = await movePayload(h.deps, undefined, {
      id: p.id,
      toTier: "RAM",
      fsync: false,
      waitForLeases: false,
      direction: "evict",
    });
    expect(same).toEqual(p);
  });

  it("eviction respects pins and leases", async () => {
    const h = harness();
    const pinned = await committed(h);
    const withLease = await committed(h);
    await pin(h.deps, h.ctx, pinned.id, 0);
    await leased(h, withLease.id);
    const evict = (id: PayloadId) =>
      movePayload(h.deps, undefined, {
        id,
        toTier: "DISK",
        fsync: false,
        waitForLeases: false,
        direction: "evict",
      });
    await domainError(() => evict(pinned.id), "PIN_CONFLICT");
    await domainError(() => evict(withLease.id), "LEASE_CONFLICT");
  });
});

describe("promote", () => {
  it("BLOCKING moves DISK to RAM at version +2 and frees the disk region", async () => {
    const h = harness();
    const p = await committed(h, "DISK");
    const view = await promote(h.deps, h.ctx, { id: p.id, targetTier: "RAM", policy: "BLOCKING" });
    expect(view.payload).toMatchObject({ state: "ACTIVE", version: 4 });
    expect(view.payload.placement.tier).toBe("RAM");
    expect(h.allocator.has(p.id, "DISK")).toBe(false);
    expect(h.allocator.has(p.id, "RAM")).toBe(true);
  });

  it("BEST_EFFORT queues a promote job and returns the current descriptor", async () => {
    const h = harness();
    const p = await committed(h, "DISK");
    const view = await promote(h.deps, h.ctx, { id: p.id, targetTier: "GPU", policy: "BEST_EFFORT" });
    expect(view.payload).toEqual(p);
    expect(h.jobs.jobs.map((j) => j.job)).toEqual([
      { name: "move", payloadId: p.id, toTier: "GPU", reason: "promote", fsync: false, version: 2 },
    ]);
  });

  it("refuses a slower target with INVALID_ARGUMENT pointing at Spill", async () => {
    const h = harness();
    const p = await committed(h, "RAM");
    const e = await domainError(
      () => promote(h.deps, h.ctx, { id: p.id, targetTier: "DISK", policy: "BLOCKING" }),
      "INVALID_ARGUMENT",
    );
    expect(e.message).toContain("use Spill");
    expect(h.jobs.jobs).toEqual([]);
  });

  it.each([undefined, "VOID"] as const)("refuses target %s with INVALID_ARGUMENT", async (targetTier) => {
    const h = harness();
    const p = await committed(h, "DISK");
    const e = await domainError(
      () => promote(h.deps, h.ctx, { id: p.id, targetTier, policy: "BLOCKING" }),
      "INVALID_ARGUMENT",
    );
    expect(e.details.field).toBe("target_tier");
  });

  it("promoting to the current tier changes nothing", async () => {
    const h = harness();
    const p = await committed(h, "RAM");
    const view = await promote(h.deps, h.ctx, { id: p.id, targetTier: "RAM", policy: "BLOCKING" });
    expect(view.payload).toEqual(p);
    expect(h.jobs.jobs).toEqual([]);
  });

  it("a pin does not block promotion", async () => {
    const h = harness();
    const p = await committed(h, "DISK");
    await pin(h.deps, h.ctx, p.id, 0);
    const view = await promote(h.deps, h.ctx, { id: p.id, targetTier: "RAM", policy: "BLOCKING" });
    expect(view.payload.placement.tier).toBe("RAM");
  });

  it("a promotion under a live lease keeps the leased bytes until the lease ends", async () => {
    const h = harness();
    const p = await committed(h, "DISK");
    const lease = await leased(h, p.id);
    await promote(h.deps, h.ctx, { id: p.id, targetTier: "RAM", policy: "BLOCKING" });
    expect(h.allocator.has(p.id, "DISK")).toBe(true);
    await releaseLease(h.deps, h.ctx, lease.id);
    expect(await freeRetiredRegions(h.deps, 10)).toBe(1);
    expect(h.allocator.has(p.id, "DISK")).toBe(false);
  });

  it("another tenant's payload is not found", async () => {
    const h = harness();
    const p = await committed(h, "DISK");
    await domainError(
      () => promote(h.deps, h.other, { id: p.id, targetTier: "RAM", policy: "BLOCKING" }),
      "PAYLOAD_NOT_FOUND",
    );
  });
});

describe("prefetch", () => {
  it("queues a prefetch move when the target is faster, under an idempotent job id", async () => {
    const h = harness();
    const p = await committed(h, "DISK");
    await prefetch(h.deps, h.ctx, p.id, "RAM");
    await prefetch(h.deps, h.ctx, p.id, "RAM");
    expect(h.jobs.jobs[0]?.job).toEqual({
      name: "move",
      payloadId: p.id,
      toTier: "RAM",
      reason: "prefetch",
      fsync: false,
      version: 2,
    });
    const ids = h.jobs.jobs.map((j) => jobIdOf(j.job));
    expect(ids).toEqual([`move:${p.id}:2:RAM`, `move:${p.id}:2:RAM`]);
    expect(await peek(h, p.id)).toEqual(p);
  });

  it.each(["RAM", "DISK"] as const)("queues nothing when the target (%s) is not faster", async (target) => {
    const h = harness();
    const p = await committed(h, "RAM");
    await prefetch(h.deps, h.ctx, p.id, target);
    expect(h.jobs.jobs).toEqual([]);
  });

  it("rejects VOID and reports unknown ids", async () => {
    const h = harness();
    const p = await committed(h, "DISK");
    await domainError(() => prefetch(h.deps, h.ctx, p.id, "VOID"), "INVALID_ARGUMENT");
    await domainError(() => prefetch(h.deps, h.ctx, unknownId, "RAM"), "PAYLOAD_NOT_FOUND");
  });
});

describe("pin / unpin", () => {
  it("stores a pin until unpinned, or until its duration runs out", async () => {
    const h = harness();
    const p = await committed(h);
    await pin(h.deps, h.ctx, p.id, 0);
    expect(await h.catalog.transaction((tx) => tx.getPin(p.id))).toEqual({
      payloadId: p.id,
      expiresAt: undefined,
    });
    await pin(h.deps, h.ctx, p.id, 30_000);
    expect(await h.catalog.transaction((tx) => tx.getPin(p.id))).toEqual({
      payloadId: p.id,
      expiresAt: h.clock.now() + 30_000,
    });
  });

  it("unpinning twice is fine", async () => {
    const h = harness();
    const p = await committed(h);
    await pin(h.deps, h.ctx, p.id, 0);
    await unpin(h.deps, h.ctx, p.id);
    await expect(unpin(h.deps, h.ctx, p.id)).resolves.toBeUndefined();
    expect(await h.catalog.transaction((tx) => tx.getPin(p.id))).toBeUndefined();
  });

  it("pin and unpin of an unknown or foreign payload are PAYLOAD_NOT_FOUND", async () => {
    const h = harness();
    const p = await committed(h);
    await domainError(() => pin(h.deps, h.ctx, unknownId, 0), "PAYLOAD_NOT_FOUND");
    await domainError(() => unpin(h.deps, h.ctx, unknownId), "PAYLOAD_NOT_FOUND");
    await domainError(() => pin(h.deps, h.other, p.id, 0), "PAYLOAD_NOT_FOUND");
    await pin(h.deps, h.ctx, p.id, 0);
    await domainError(() => unpin(h.deps, h.other, p.id), "PAYLOAD_NOT_FOUND");
    expect(await h.catalog.transaction((tx) => tx.getPin(p.id))).toBeDefined();
  });

  it("a pin does not block an explicit delete", async () => {
    const h = harness();
    const p = await committed(h);
    await pin(h.deps, h.ctx, p.id, 0);
    await deletePayload(h.deps, h.ctx, { id: p.id, force: false });
    expect(await peek(h, p.id)).toBeUndefined();
  });

  it("a payload being deleted cannot be pinned", async () => {
    const h = harness();
    const p = await committed(h);
    await leased(h, p.id);
    await deletePayload(h.deps, h.ctx, { id: p.id, force: true });
    await domainError(() => pin(h.deps, h.ctx, p.id, 0), "INVALID_TRANSITION");
  });
});
