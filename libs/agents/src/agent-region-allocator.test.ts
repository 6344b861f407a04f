import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { type AgentRecord, asPayloadId, DomainError, uuidFromBytes } from "@pm/domain";
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

const agentRecord = (
  clock: FakeClock,
  a: { id: string; free: number; ageMs?: number; host?: string },
): AgentRecord => ({
  agentId: a.id,
  host: a.host ?? `${a.id}-host`,
  endpoint: `http://${a.id}`,
  tiers: [
    { tier: "RAM", capacityBytes: 1000, usedBytes: 1000 - a.free, highWatermark: 0.9, lowWatermark: 0.75 },
  ],
  lastHeartbeatAt: clock.now() - (a.ageMs ?? 0),
  registeredAt: clock.now(),
});

async function setup(
  agents: { id: string; free: number; behaviour: Behaviour; ageMs?: number; host?: string }[],
  agentsCacheMs = 0,
) {
  const clock = new FakeClock();
  const catalog = new MemoryCatalog();
  let listReads = 0;
  const catalogState = { down: false };
  // Counts agent-list reads, whichever way the allocator runs them.
  const counted =
    (run: MemoryCatalog["transaction"]) =>
    <T>(fn: Parameters<MemoryCatalog["transaction"]>[0]) => {
      if (catalogState.down) return Promise.reject(new DomainError("UNAVAILABLE", "the catalog is down"));
      return run((tx) => {
        const listAgents = () => {
          listReads++;
          return tx.listAgents();
        };
        return fn(Object.assign(Object.create(tx), { listAgents }));
      }) as Promise<T>;
    };
  const counting = Object.assign(Object.create(catalog) as MemoryCatalog, {
    transaction: counted((fn) => catalog.transaction(fn)),
    autocommit: counted((fn) => catalog.autocommit(fn)),
  });
  const calls: string[] = [];
  const behaviours = new Map<string, { current: Behaviour }>();
  for (const a of agents) {
    behaviours.set(a.id, { current: a.behaviour });
    await catalog.transaction((tx) => tx.upsertAgent(agentRecord(clock, a)));
  }
  const alloc = new AgentRegionAllocator({
    catalog: counting,
    clock,
    agentsCacheMs,
    agentTtlMs: 15_000,
    transportFor: (endpoint) => {
      const id = endpoint.replace("http://", "");
      return fakeAgent(id, behaviours.get(id)!, calls);
    },
  });
  return { alloc, calls, behaviours, catalog, clock, catalogState, listReads: () => listReads };
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

  it("with agentsCacheMs, places on the cached agent list, and reads it afresh when that list fails", async () => {
    const s = await setup([{ id: "a", free: 900, behaviour: "ok" }], 60_000);
    await s.alloc.allocate(req(100));
    await s.alloc.allocate(req(100));
    expect(s.listReads()).toBe(1);
    // A new agent with room, the cached one now full: the cached list fails, a fresh one places.
    s.behaviours.get("a")!.current = "full";
    s.behaviours.set("b", { current: "ok" });
    await s.catalog.transaction((tx) => tx.upsertAgent(agentRecord(s.clock, { id: "b", free: 500 })));
    expect(await s.alloc.allocate(req(100))).toMatchObject({ agentId: "b" });
    // The fresh list does not ask the agent that just said it was full again.
    expect(s.calls).toEqual(["a:create", "a:create", "a:create", "b:create"]);
    expect(s.listReads()).toBe(2);
    // With nobody new to ask, the cached list's failure stands after one fresh read.
    s.behaviours.get("b")!.current = "full";
    await expect(s.alloc.allocate(req(100))).rejects.toMatchObject({ code: "TIER_FULL" });
    expect(s.calls.slice(4)).toEqual(["a:create", "b:create"]);
    expect(s.listReads()).toBe(3);
  });

  it("frees a region through the last agent list it read while the catalog is unreachable", async () => {
    const s = await setup([{ id: "a", free: 900, behaviour: "ok" }]);
    const p = await s.alloc.allocate(req(100));
    s.catalogState.down = true;
    await s.alloc.free(req(100).payloadId, p);
    expect(s.calls).toEqual(["a:create", "a:free"]);
    // An agent it never saw cannot be found without the catalog: the catalog's error stands.
    await expect(s.alloc.free(req(100).payloadId, { ...p, agentId: "unknown" })).rejects.toMatchObject({
      code: "UNAVAILABLE",
      message: "the catalog is down",
    });
  });

  it("without a cache, reads the agent list for every allocation", async () => {
    const s = await setup([{ id: "a", free: 900, behaviour: "ok" }]);
    await s.alloc.allocate(req(100));
    await s.alloc.allocate(req(100));
    expect(s.listReads()).toBe(2);
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
