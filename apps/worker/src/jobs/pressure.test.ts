import {
  DEFAULT_EVICTION_POLICY,
  type EvictionPolicy,
  type Payload,
  pin,
  type StorageTier,
  spill,
} from "@pm/domain";
import { afterEach, describe, expect, it } from "vitest";
import { MiB, type WorkerHarness, workerHarness } from "../testing/worker-harness.ts";
import { tierViews } from "./pressure.ts";

let h: WorkerHarness;
afterEach(() => h.close());

const policy = (p: Partial<EvictionPolicy>): EvictionPolicy => ({ ...DEFAULT_EVICTION_POLICY, ...p });

async function tiersOf(ps: readonly Payload[]): Promise<(StorageTier | undefined)[]> {
  return Promise.all(ps.map(async (p) => (await h.peek(p.id))?.placement.tier));
}

describe("pressure job (in-process runner)", () => {
  it("evicts LRU unpinned, unleased payloads, lower priority first, to DISK until under the low watermark", async () => {
    h = workerHarness();
    // Created one second apart, so each was last accessed before the next.
    const make = async (overrides: Parameters<WorkerHarness["committed"]>[1] = {}) => {
      const p = await h.committed("RAM", overrides);
      await h.advance(1_000);
      return p;
    };
    const pinned = await make();
    await pin(h.deps, h.ctx, pinned.id, 0);
    const leased = await make();
    await h.leased(leased.id, 60_000);
    const noEvict = await make({ noEvict: true });
    const high = await make({ evictionPolicy: policy({ priority: "HIGH" }) });
    const normal = [await make(), await make(), await make(), await make(), await make()];
    const low = await make({ evictionPolicy: policy({ priority: "LOW" }) });

    // 10 MiB used of 10: over the 80 % high watermark; the low watermark (50 %) means 5 must go.
    await h.heartbeat({ RAM: { capacity: 10 * MiB, high: 0.8, low: 0.5 } });
    await h.advance(2_000);

    expect(await tiersOf([low, ...normal.slice(0, 4)])).toEqual(["DISK", "DISK", "DISK", "DISK", "DISK"]);
    expect(await tiersOf([pinned, leased, noEvict, high, normal[4]!])).toEqual([
      "RAM",
      "RAM",
      "RAM",
      "RAM",
      "RAM",
    ]);
    expect(h.allocator.used("RAM")).toBe(5 * MiB);
    expect(h.outcomes("move").map(([o]) => o)).toEqual(Array(5).fill("completed"));

    // The agent has not heartbeated since: its report still says 10 MiB. Nothing more is evicted.
    await h.advance(4_000);
    expect(h.allocator.used("RAM")).toBe(5 * MiB);
    await h.heartbeat({ RAM: { capacity: 10 * MiB, high: 0.8, low: 0.5 } });
    await h.advance(4_000);
    expect(h.allocator.used("RAM")).toBe(5 * MiB);
    const queued = h.outcomes("pressure").map(([, c]) => (c as { evictionsQueued: number }).evictionsQueued);
    expect(queued.reduce((a, b) => a + b, 0)).toBe(5);
  });

  it("does nothing at or under the high watermark", async () => {
    h = workerHarness();
    for (let i = 0; i < 8; i++) await h.committed("RAM");
    await h.heartbeat({ RAM: { capacity: 10 * MiB, high: 0.8, low: 0.5 } });
    await h.advance(4_000);
    expect(h.allocator.used("RAM")).toBe(8 * MiB);
    expect(h.outcomes("move")).toEqual([]);
  });

  it("ignores an agent that has stopped heartbeating", async () => {
    h = workerHarness({ config: { agentTtlMs: 15_000 } });
    for (let i = 0; i < 10; i++) await h.committed("RAM");
    await h.heartbeat({ RAM: { capacity: 10 * MiB, high: 0.8, low: 0.5 } }, h.clock.now() - 20_000);
    await h.advance(4_000);
    expect(h.allocator.used("RAM")).toBe(10 * MiB);
  });

  it("evicts to each payload's spill target: VOID deletes", async () => {
    h = workerHarness();
    const ps: Payload[] = [];
    for (let i = 0; i < 4; i++) {
      ps.push(await h.committed("DISK", { evictionPolicy: policy({ spillTarget: "VOID" }) }));
      await h.advance(1_000);
    }
    await h.heartbeat({ DISK: { capacity: 4 * MiB, high: 0.7, low: 0.5 } });
    await h.advance(2_000);
    expect(await tiersOf(ps)).toEqual([undefined, undefined, "DISK", "DISK"]);
    expect(h.allocator.used("DISK")).toBe(2 * MiB);
  });
});

describe("tierViews", () => {
  it("separates bytes that stay from bytes already leaving, and lists settled payloads as candidates", async () => {
    h = workerHarness({ sweepIntervalMs: false, pressureIntervalMs: false });
    const settled = await h.committed("RAM");
    const allocated = await h.allocated("RAM");
    const spilling = await h.committed("RAM");
    await h.catalog.transaction(async (tx) => {
      const p = (await tx.getPayload(spilling.id))!;
      await tx.updatePayload({ ...p, state: "SPILLING", version: p.version + 1 });
    });
    // Moved to DISK while leased: its RAM region is retired until the lease ends.
    const moved = await h.committed("RAM");
    await h.leased(moved.id, 60_000);
    await spill(h.deps, h.ctx, {
      ids: [moved.id],
      policy: "BLOCKING",
      waitForLeases: true,
      fsync: false,
      targetTier: "DISK",
    });
    const agent = {
      agentId: "agent-1",
      host: "host-1",
      endpoint: "",
      tiers: [],
      lastHeartbeatAt: 0,
      registeredAt: 0,
    };
    const views = await tierViews(h.deps, agent, h.clock.now());
    const ram = views.get("RAM")!;
    expect([ram.stayingBytes, ram.leavingBytes]).toEqual([2 * MiB, 2 * MiB]);
    expect(ram.candidates.map((c) => [c.payload.id, c.liveLeases, c.pinned])).toEqual([
      [settled.id, 0, false],
    ]);
    expect(views.get("DISK")).toMatchObject({ stayingBytes: MiB, leavingBytes: 0 });
    expect(views.get("DISK")!.candidates.map((c) => [c.payload.id, c.liveLeases])).toEqual([[moved.id, 1]]);
    expect(allocated.state).toBe("ALLOCATED");
  });
});
