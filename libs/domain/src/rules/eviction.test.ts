import { describe, expect, it } from "vitest";
import type { TierUsage } from "../model/catalog-records.ts";
import { asPayloadId } from "../model/ids.ts";
import { DEFAULT_EVICTION_POLICY, type EvictionPolicy, type Payload } from "../model/payload.ts";
import type { Placement } from "../model/placement.ts";
import type { StorageTier } from "../model/tier.ts";
import { type EvictionCandidate, evictionBlocker, selectEvictions, spillTargetOf } from "./eviction.ts";

let n = 0;
function payload(
  overrides: Partial<Omit<Payload, "evictionPolicy">> & {
    tier?: StorageTier;
    policy?: Partial<EvictionPolicy>;
  } = {},
): Payload {
  n += 1;
  const { tier = "RAM", policy = {}, ...rest } = overrides;
  const placement: Placement = {
    tier,
    agentId: "agent-1",
    host: "host-1",
    location: { kind: "ram", shmName: `/pm-${n}` },
    lengthBytes: 100,
  };
  return {
    id: asPayloadId(`00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`),
    namespace: "ns",
    sizeBytes: 100,
    state: tier === "DISK" || tier === "OBJECT" ? "DURABLE" : "ACTIVE",
    version: 2,
    placement,
    pendingPlacement: undefined,
    createdAt: 0,
    updatedAt: 0,
    expiresAt: undefined,
    lastAccessAt: 0,
    noEvict: false,
    evictionPolicy: { ...DEFAULT_EVICTION_POLICY, ...policy },
    checksum: undefined,
    ...rest,
  };
}

const c = (p: Payload, extra: Partial<EvictionCandidate> = {}): EvictionCandidate => ({
  payload: p,
  liveLeases: 0,
  pinned: false,
  ...extra,
});

// 1000-byte RAM tier, evict above 900, stop at 700.
function usage(usedBytes: number, tier: StorageTier = "RAM"): TierUsage {
  return { tier, capacityBytes: 1000, usedBytes, highWatermark: 0.9, lowWatermark: 0.7 };
}

describe("spillTargetOf", () => {
  it("uses the payload's own spill target", () => {
    expect(spillTargetOf(payload({ tier: "GPU", policy: { spillTarget: "DISK" } }))).toBe("DISK");
    expect(spillTargetOf(payload({ tier: "RAM", policy: { spillTarget: "VOID" } }))).toBe("VOID");
  });

  it.each<[StorageTier, string]>([
    ["GPU", "RAM"],
    ["RAM", "DISK"],
    ["DISK", "OBJECT"],
    ["OBJECT", "VOID"],
  ])("defaults from %s to the next slower tier %s", (tier, next) => {
    expect(spillTargetOf(payload({ tier }))).toBe(next);
  });

  it("falls back to the next slower tier once the payload already sits on its spill target", () => {
    // Allocated on GPU with spill target DISK, then displaced to DISK: DISK is no longer a way down.
    expect(spillTargetOf(payload({ tier: "DISK", policy: { spillTarget: "DISK" } }))).toBe("OBJECT");
    expect(spillTargetOf(payload({ tier: "OBJECT", policy: { spillTarget: "DISK" } }))).toBe("VOID");
  });
});

describe("evictionBlocker", () => {
  it("lets an ordinary committed payload go", () => {
    expect(evictionBlocker(c(payload()))).toBeUndefined();
  });

  it.each<[string, EvictionCandidate]>([
    ["no-evict", c(payload({ noEvict: true }))],
    ["no-evict", c(payload({ policy: { priority: "NEVER" } }))],
    ["pinned", c(payload(), { pinned: true })],
    ["leased", c(payload(), { liveLeases: 1 })],
    ["state SPILLING", c(payload({ state: "SPILLING" }))],
    ["state ALLOCATED", c(payload({ state: "ALLOCATED" }))],
    ["state DELETING", c(payload({ state: "DELETING" }))],
    ["min-residency", c(payload({ tier: "RAM", policy: { minResidencyTier: "RAM" } }))],
    ["require-durable", c(payload({ tier: "RAM", policy: { spillTarget: "VOID", requireDurable: true } }))],
  ])("blocks with %s", (reason, cand) => {
    expect(evictionBlocker(cand)).toBe(reason);
  });

  it("allows a move that stays within the min residency floor", () => {
    expect(evictionBlocker(c(payload({ tier: "GPU", policy: { minResidencyTier: "RAM" } })))).toBeUndefined();
  });
});

describe("selectEvictions", () => {
  it("evicts nothing at or under the high watermark", () => {
    const all = [c(payload()), c(payload())];
    expect(selectEvictions(usage(900), all)).toEqual([]);
    expect(selectEvictions(usage(500), all)).toEqual([]);
  });

  it("orders by priority first, then least recently accessed", () => {
    const highOld = payload({ lastAccessAt: 1, policy: { priority: "HIGH" } });
    const normalNew = payload({ lastAccessAt: 50 });
    const normalOld = payload({ lastAccessAt: 10 });
    const lowNewest = payload({ lastAccessAt: 99, policy: { priority: "LOW" } });
    const picked = selectEvictions(
      usage(1000),
      [highOld, normalNew, normalOld, lowNewest].map((p) => c(p)),
    );
    // 1000 → 900 → 800 → 700 (= low watermark): three go, the HIGH one stays.
    expect(picked.map((p) => p.id)).toEqual([lowNewest.id, normalOld.id, normalNew.id]);
  });

  it("stops as soon as usage falls to the low watermark", () => {
    const cands = [1, 2, 3, 4, 5].map((t) => c(payload({ lastAccessAt: t })));
    expect(selectEvictions(usage(950), cands)).toHaveLength(3); // 950 → 650
    expect(selectEvictions(usage(901), cands)).toHaveLength(3); // 901 → 601
    expect(selectEvictions(usage(910, "RAM"), cands.slice(0, 2))).toHaveLength(2); // not enough: all it can
  });

  it("skips pinned, leased and no-evict payloads even when they are the oldest", () => {
    const pinned = payload({ lastAccessAt: 1 });
    const leased = payload({ lastAccessAt: 2 });
    const noEvict = payload({ lastAccessAt: 3, noEvict: true });
    const free1 = payload({ lastAccessAt: 4 });
    const free2 = payload({ lastAccessAt: 5 });
    const picked = selectEvictions(usage(1000), [
      c(pinned, { pinned: true }),
      c(leased, { liveLeases: 2 }),
      c(noEvict),
      c(free1),
      c(free2),
    ]);
    expect(picked.map((p) => p.id)).toEqual([free1.id, free2.id]);
  });

  it("only considers payloads on the pressured tier", () => {
    const onDisk = payload({ tier: "DISK", lastAccessAt: 0 });
    const onRam = payload({ tier: "RAM", lastAccessAt: 5 });
    expect(selectEvictions(usage(1000), [c(onDisk), c(onRam)]).map((p) => p.id)).toEqual([onRam.id]);
  });

  it("still picks a payload that sits on its own spill target (it can go one tier further)", () => {
    const atTarget = payload({ tier: "DISK", lastAccessAt: 1, policy: { spillTarget: "DISK" } });
    const picked = selectEvictions(usage(1000, "DISK"), [c(atTarget)]);
    expect(picked.map((p) => p.id)).toEqual([atTarget.id]);
    expect(spillTargetOf(atTarget)).toBe("OBJECT");
  });
});
