import { describe, expect, it } from "vitest";
import type { Payload } from "../model/payload.ts";
import type { StorageTier } from "../model/tier.ts";
import { deletePayload } from "./lifecycle.ts";
import { sweep } from "./sweeps.ts";
import { committed, domainError, type Harness, harness, leased, peek } from "./test-harness.ts";
import { movePayload, provisionalPlacement, repairStuckMove } from "./tiering.ts";

const MOVE_TIMEOUT = 60_000;

function setup(): Harness {
  return harness({
    capacity: { RAM: 64 * 1024 * 1024, DISK: 256 * 1024 * 1024, OBJECT: 1024 * 1024 * 1024 },
    config: { moveTimeoutMs: MOVE_TIMEOUT },
  });
}

function move(h: Harness, p: Payload, toTier: StorageTier) {
  return movePayload(h.deps, h.ctx, {
    id: p.id,
    toTier,
    fsync: false,
    waitForLeases: false,
    direction: "spill",
  });
}

/**
 * Simulates a worker killed mid-copy: the copy writes (part of) the target region, then the process
 * dies — the promise never settles, so the switch transaction never runs.
 */
function dieMidCopy(h: Harness): void {
  h.allocator.afterCopy = () => new Promise<void>(() => undefined);
}

async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

describe("a move interrupted by a crash", () => {
  it("records the target as a provisional pending placement before copying", async () => {
    const h = setup();
    const p = await committed(h, "RAM");
    let seen: Payload | undefined;
    h.allocator.beforeCopy = async () => {
      seen = await peek(h, p.id);
    };
    const moved = await move(h, p, "DISK");
    expect(seen?.state).toBe("SPILLING");
    expect(seen?.pendingPlacement).toEqual({
      tier: "DISK",
      agentId: p.placement.agentId,
      host: p.placement.host,
      location: { kind: "disk", path: "", offsetBytes: 0 },
      lengthBytes: p.sizeBytes,
    });
    expect(moved.pendingPlacement).toBeUndefined();
    expect((await peek(h, p.id))?.pendingPlacement).toBeUndefined();
  });

  it("provisional placements: agent-local for agent tiers, no agent and empty key for OBJECT, none from OBJECT", async () => {
    const h = setup();
    const ram = await committed(h, "RAM");
    expect(provisionalPlacement(ram.placement, "OBJECT", 5)).toEqual({
      tier: "OBJECT",
      agentId: "",
      host: ram.placement.host,
      location: { kind: "object", bucket: "", key: "" },
      lengthBytes: 5,
    });
    const obj = {
      ...ram.placement,
      tier: "OBJECT" as const,
      agentId: "",
      location: { kind: "object" as const, bucket: "b", key: "k" },
    };
    expect(provisionalPlacement(obj, "RAM", 5)).toBeUndefined();
  });

  it("a failed copy rolls back and clears the pending placement", async () => {
    const h = setup();
    const p = await committed(h, "RAM");
    h.allocator.failNextCopy = new (await import("../errors.ts")).DomainError("TIER_FULL", "full");
    await domainError(() => move(h, p, "DISK"), "TIER_FULL");
    const back = await peek(h, p.id);
    expect(back?.state).toBe("ACTIVE");
    expect(back?.pendingPlacement).toBeUndefined();
    expect(back?.version).toBe(p.version + 2);
  });

  it("the sweep frees the partial region and rolls the payload back once the move timed out", async () => {
    const h = setup();
    const p = await committed(h, "RAM");
    dieMidCopy(h);
    void move(h, p, "DISK");
    await flush();
    const stuck = await peek(h, p.id);
    expect(stuck?.state).toBe("SPILLING");
    expect(h.allocator.has(p.id, "DISK")).toBe(true); // the orphan the crash left

    // Not yet: a move younger than moveTimeoutMs may just be slow.
    h.clock.advance(MOVE_TIMEOUT - 1);
    expect((await sweep(h.deps)).movesRepaired).toBe(0);
    expect((await peek(h, p.id))?.state).toBe("SPILLING");

    h.clock.advance(1);
    expect((await sweep(h.deps)).movesRepaired).toBe(1);
    const repaired = await peek(h, p.id);
    expect(repaired?.state).toBe("ACTIVE");
    expect(repaired?.version).toBe(stuck!.version + 1);
    expect(repaired?.placement).toEqual(p.placement);
    expect(repaired?.pendingPlacement).toBeUndefined();
    expect(h.allocator.has(p.id, "DISK")).toBe(false);
    expect(h.allocator.has(p.id, "RAM")).toBe(true);
    // Idempotent, and the payload can move again.
    expect((await sweep(h.deps)).movesRepaired).toBe(0);
    const moved = await move(h, repaired!, "DISK");
    expect(moved.placement.tier).toBe("DISK");
  });

  it("repairs a crashed spill to OBJECT by freeing the provisional object (empty key)", async () => {
    const h = setup();
    const p = await committed(h, "DISK");
    dieMidCopy(h);
    void move(h, p, "OBJECT");
    await flush();
    expect(h.allocator.has(p.id, "OBJECT")).toBe(true);
    h.clock.advance(MOVE_TIMEOUT);
    expect((await sweep(h.deps)).movesRepaired).toBe(1);
    expect((await peek(h, p.id))?.state).toBe("DURABLE");
    expect(h.allocator.has(p.id, "OBJECT")).toBe(false);
  });

  it("a slow copy that finishes after the repair loses its switch and frees its new region", async () => {
    const h = setup();
    const p = await committed(h, "RAM");
    let finishCopy: () => void = () => undefined;
    h.allocator.afterCopy = () =>
      new Promise<void>((resolve) => {
        finishCopy = resolve;
      });
    const slow = move(h, p, "DISK");
    await flush();
    h.clock.advance(MOVE_TIMEOUT);
    expect((await sweep(h.deps)).movesRepaired).toBe(1);
    const repaired = await peek(h, p.id);
    expect(repaired?.state).toBe("ACTIVE");

    // The copy re-created its region after the repair freed it (it was still writing).
    await h.allocator.allocate({
      payloadId: p.id,
      tier: "DISK",
      sizeBytes: p.sizeBytes,
      preferredHost: undefined,
    });
    finishCopy();
    await domainError(() => slow, "INVALID_TRANSITION");
    const after = await peek(h, p.id);
    expect(after).toEqual(repaired);
    expect(h.allocator.has(p.id, "DISK")).toBe(false);
    expect(h.allocator.has(p.id, "RAM")).toBe(true);
  });

  it("a slow copy that finishes before the timeout switches normally and the sweep leaves it alone", async () => {
    const h = setup();
    const p = await committed(h, "RAM");
    let finishCopy: () => void = () => undefined;
    h.allocator.afterCopy = () =>
      new Promise<void>((resolve) => {
        finishCopy = resolve;
      });
    const slow = move(h, p, "DISK");
    await flush();
    h.clock.advance(MOVE_TIMEOUT - 1);
    expect((await sweep(h.deps)).movesRepaired).toBe(0);
    finishCopy();
    const moved = await slow;
    expect(moved.placement.tier).toBe("DISK");
    expect(h.allocator.has(p.id, "DISK")).toBe(true);
    h.clock.advance(MOVE_TIMEOUT);
    expect((await sweep(h.deps)).movesRepaired).toBe(0);
  });

  it("defers the repair while a lease older than the move is live, then repairs", async () => {
    const h = setup();
    const p = await committed(h, "RAM");
    await leased(h, p.id, 120_000);
    dieMidCopy(h);
    void movePayload(h.deps, h.ctx, {
      id: p.id,
      toTier: "DISK",
      fsync: false,
      waitForLeases: true,
      direction: "spill",
    });
    await flush();
    h.clock.advance(MOVE_TIMEOUT);
    expect((await sweep(h.deps)).movesRepaired).toBe(0);
    expect(h.allocator.has(p.id, "DISK")).toBe(true);
    expect((await peek(h, p.id))?.state).toBe("SPILLING");
    h.clock.advance(120_000);
    expect((await sweep(h.deps)).movesRepaired).toBe(1);
    expect(h.allocator.has(p.id, "DISK")).toBe(false);
    expect((await peek(h, p.id))?.state).toBe("ACTIVE");
  });

  it("repairStuckMove skips payloads that are not stuck", async () => {
    const h = setup();
    const p = await committed(h, "RAM");
    expect(await repairStuckMove(h.deps, p.id, h.clock.now())).toBe("skipped");
  });

  it("deleting a payload stuck mid-move frees the partial region too", async () => {
    const h = setup();
    const p = await committed(h, "RAM");
    dieMidCopy(h);
    void move(h, p, "DISK");
    await flush();
    await deletePayload(h.deps, h.ctx, { id: p.id, force: true });
    await sweep(h.deps);
    expect(await peek(h, p.id)).toBeUndefined();
    expect(h.allocator.has(p.id, "DISK")).toBe(false);
    expect(h.allocator.has(p.id, "RAM")).toBe(false);
  });
});
