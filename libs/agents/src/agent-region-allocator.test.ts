import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { type AgentRecord, asPayloadId, uuidFromBytes } from "@pm/domain";
import { FakeClock, MemoryCatalog } from "@pm/domain/testing";
import { TierAgentService } from "@pm/rpc";
import { describe, expect, it } from "vitest";
import { AgentRegionAllocator } from "./agent-region-allocator.ts";
import { regionOf, tierOfPb } from "./region-mapping.ts";

type Behaviour = "ok" | "full" | "down";

/** A tier agent at the Connect port: records calls, answers per its scripted behaviour. */
function fakeAgent(name: string, behaviour: { current: Behaviour }, calls: string[]) {
  return createRouterTransport(({ service }) =>
    service(TierAgentService, {
      createRegion(req) {
        calls.push(`${name}:create`);
        if (behaviour.current === "full") throw new ConnectError("full", Code.ResourceExhausted);
        if (behaviour.current === "down") throw new ConnectError("down", Code.Unavailable);
        const id = uuidFromBytes(req.payloadId!.value);
        return regionOf(req.payloadId!.value, tierOfPb(req.tier), Number(req.sizeBytes), {
          kind: "ram",
          shmName: `/${name}-${id}`,
        });
      },
      freeRegion() {
        calls.push(`${name}:free`);
        return {};
      },
      statRegion() {
        throw new ConnectError("nope", Code.NotFound);
      },
      listRegions: () => ({ regions: [] }),
      copyRegion() {
        throw new ConnectError("no", Code.FailedPrecondition);
      },
      checksumRegion: () => ({ checksum: "" }),
    }),
  );
}

async function setup(
  agents: { id: string; free: number; behaviour: Behaviour; ageMs?: number; host?: string }[],
) {
  const clock = new FakeClock();
  const catalog = new MemoryCatalog();
  const calls: string[] = [];
  const behaviours = new Map<string, { current: Behaviour }>();
  for (const a of agents) {
    behaviours.set(a.id, { current: a.behaviour });
    const rec: AgentRecord = {
      agentId: a.id,
      host: a.host ?? `${a.id}-host`,
      endpoint: `http://${a.id}`,
      tiers: [
        {
          tier: "RAM",
          capacityBytes: 1000,
          usedBytes: 1000 - a.free,
          highWatermark: 0.9,
          lowWatermark: 0.75,
        },
      ],
      lastHeartbeatAt: clock.now() - (a.ageMs ?? 0),
      registeredAt: clock.now(),
    };
    await catalog.transaction((tx) => tx.upsertAgent(rec));
  }
  const alloc = new AgentRegionAllocator({
    catalog,
    clock,
    agentTtlMs: 15_000,
    transportFor: (endpoint) => {
      const id = endpoint.replace("http://", "");
      return fakeAgent(id, behaviours.get(id)!, calls);
    },
  });
  return { alloc, calls, behaviours };
}

const req = (size: number, preferredHost?: string) => ({
  payloadId: asPayloadId("00000000-0000-4000-8000-000000000001"),
  tier: "RAM" as const,
  sizeBytes: size,
  preferredHost,
});

describe("AgentRegionAllocator", () => {
  it("places on the agent with the most room, or on the hinted host", async () => {
    const { alloc, calls } = await setup([
      { id: "a", free: 300, behaviour: "ok" },
      { id: "b", free: 900, behaviour: "ok" },
    ]);
    const p = await alloc.allocate(req(100));
    expect(p).toMatchObject({ agentId: "b", host: "b-host", tier: "RAM", lengthBytes: 100 });
    expect(await alloc.allocate(req(100, "a-host"))).toMatchObject({ agentId: "a" });
    expect(calls).toEqual(["b:create", "a:create"]);
  });

  it("skips dead agents and falls back to the next candidate when one is unreachable", async () => {
    const { alloc, calls } = await setup([
      { id: "dead", free: 1000, behaviour: "ok", ageMs: 60_000 },
      { id: "flaky", free: 900, behaviour: "down" },
      { id: "ok", free: 500, behaviour: "ok" },
    ]);
    expect(await alloc.allocate(req(100))).toMatchObject({ agentId: "ok" });
    expect(calls).toEqual(["flaky:create", "ok:create"]);
  });

  it("asks agents anyway when heartbeats report no room (usage lags frees), and says TIER_FULL if all refuse", async () => {
    const { alloc, calls, behaviours } = await setup([{ id: "a", free: 50, behaviour: "ok" }]);
    expect(await alloc.allocate(req(100))).toMatchObject({ agentId: "a" });
    behaviours.get("a")!.current = "full";
    await expect(alloc.allocate(req(100))).rejects.toMatchObject({ code: "TIER_FULL" });
    expect(calls).toEqual(["a:create", "a:create"]);
  });

  it("distinguishes a tier nobody serves (TIER_UNAVAILABLE) from agents that are all down (NO_AGENT)", async () => {
    const none = await setup([]);
    await expect(none.alloc.allocate(req(10))).rejects.toMatchObject({ code: "TIER_UNAVAILABLE" });
    const dead = await setup([{ id: "a", free: 1000, behaviour: "ok", ageMs: 60_000 }]);
    await expect(dead.alloc.allocate(req(10))).rejects.toMatchObject({ code: "NO_AGENT" });
    const down = await setup([{ id: "a", free: 1000, behaviour: "down" }]);
    await expect(down.alloc.allocate(req(10))).rejects.toMatchObject({ code: "NO_AGENT" });
  });

  it("frees on the agent that owns the region, and reports an unknown owner as UNAVAILABLE", async () => {
    const { alloc, calls } = await setup([{ id: "a", free: 1000, behaviour: "ok" }]);
    const p = await alloc.allocate(req(10));
    await alloc.free(asPayloadId("00000000-0000-4000-8000-000000000001"), p);
    expect(calls).toEqual(["a:create", "a:free"]);
    await expect(
      alloc.free(asPayloadId("00000000-0000-4000-8000-000000000001"), { ...p, agentId: "gone" }),
    ).rejects.toMatchObject({
      code: "UNAVAILABLE",
    });
  });
});
