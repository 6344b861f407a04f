import { describe, expect, it } from "vitest";
import type { AgentRecord } from "../model/catalog-records.ts";
import type { StorageTier } from "../model/tier.ts";
import { chooseAgents, isAgentLive, type PlacementRequest } from "./placement.ts";

const NOW = 1_000_000;
const TTL = 15_000;

function agent(
  agentId: string,
  host: string,
  tiers: Partial<Record<StorageTier, [capacity: number, used: number]>>,
  lastHeartbeatAt = NOW,
): AgentRecord {
  return {
    agentId,
    host,
    endpoint: `http://${host}:7000`,
    tiers: Object.entries(tiers).map(([tier, [capacityBytes, usedBytes]]) => ({
      tier: tier as StorageTier,
      capacityBytes,
      usedBytes,
      highWatermark: 0.9,
      lowWatermark: 0.7,
    })),
    lastHeartbeatAt,
    registeredAt: 0,
  };
}

function req(overrides: Partial<PlacementRequest> = {}): PlacementRequest {
  return { tier: "RAM", sizeBytes: 100, preferredHost: undefined, now: NOW, agentTtlMs: TTL, ...overrides };
}

const ids = (d: ReturnType<typeof chooseAgents>) => (d.ok ? d.agents.map((a) => a.agentId) : d.reason);

describe("isAgentLive", () => {
  it("is live up to exactly the TTL since the last heartbeat, dead after", () => {
    expect(isAgentLive(agent("a", "h", {}, NOW - TTL), NOW, TTL)).toBe(true);
    expect(isAgentLive(agent("a", "h", {}, NOW - TTL - 1), NOW, TTL)).toBe(false);
  });
});

describe("chooseAgents", () => {
  it("orders fitting agents by most free bytes", () => {
    const d = chooseAgents(
      [agent("small", "h1", { RAM: [1000, 800] }), agent("big", "h2", { RAM: [1000, 100] })],
      req(),
    );
    expect(ids(d)).toEqual(["big", "small"]);
  });

  it("puts the hinted host first even with less free space", () => {
    const d = chooseAgents(
      [agent("small", "h1", { RAM: [1000, 800] }), agent("big", "h2", { RAM: [1000, 100] })],
      req({ preferredHost: "h1" }),
    );
    expect(ids(d)).toEqual(["small", "big"]);
  });

  it("skips an agent whose heartbeat is older than the TTL", () => {
    const d = chooseAgents(
      [agent("dead", "h1", { RAM: [1000, 0] }, NOW - TTL - 1), agent("live", "h2", { RAM: [1000, 500] })],
      req({ preferredHost: "h1" }),
    );
    expect(ids(d)).toEqual(["live"]);
  });

  it("skips agents without room and breaks ties by agent id", () => {
    const d = chooseAgents(
      [
        agent("c", "h3", { RAM: [1000, 950] }),
        agent("b", "h2", { RAM: [1000, 500] }),
        agent("a", "h1", { RAM: [1000, 500] }),
      ],
      req(),
    );
    expect(ids(d)).toEqual(["a", "b"]);
  });

  it("accepts an agent with exactly enough free bytes", () => {
    expect(ids(chooseAgents([agent("a", "h", { RAM: [1000, 900] })], req({ sizeBytes: 100 })))).toEqual([
      "a",
    ]);
  });

  it("reports NO_AGENT when no live agent offers the tier, saying to start one", () => {
    const d = chooseAgents(
      [agent("disk-only", "h1", { DISK: [1000, 0] }), agent("dead", "h2", { RAM: [1000, 0] }, 0)],
      req(),
    );
    expect(d.ok).toBe(false);
    if (d.ok) return;
    expect(d.reason).toBe("NO_AGENT");
    expect(d.message).toContain("RAM");
    expect(d.message).toContain("start a tier agent");
  });

  it("reports NO_CAPACITY with the largest free space when agents exist but none fits", () => {
    const d = chooseAgents(
      [agent("a", "h1", { RAM: [1000, 990] }), agent("b", "h2", { RAM: [1000, 950] })],
      req({ sizeBytes: 100 }),
    );
    expect(d.ok).toBe(false);
    if (d.ok) return;
    expect(d.reason).toBe("NO_CAPACITY");
    expect(d.message).toContain("largest free: 50 bytes");
    expect(d.message).toContain("spill payloads");
  });

  it("does not report negative free space for an over-full agent", () => {
    const d = chooseAgents([agent("a", "h1", { RAM: [1000, 1200] })], req());
    expect(d.ok).toBe(false);
    if (!d.ok) expect(d.message).toContain("largest free: 0 bytes");
  });
});
