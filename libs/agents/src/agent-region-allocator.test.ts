import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { type AgentRecord, asPayloadId, DomainError, uuidFromBytes } from "@pm/domain";
import { FakeClock, MemoryCatalog } from "@pm/domain/testing";
import { type CreateRegionRequest, TierAgentService } from "@pm/rpc";
import { describe, expect, it } from "vitest";
import { AgentRegionAllocator } from "./agent-region-allocator.ts";
import { regionOf, tierOfPb } from "./region-mapping.ts";

type Behaviour = "ok" | "full" | "down" | "locked";

/** How a fake agent behaves; `refuseSizes`: regions of these sizes are refused as full even when "ok". */
interface AgentState {
  current: Behaviour;
  refuseSizes?: number[] | undefined;
}

/**
 * A tier agent at the Connect port: records calls, answers per its scripted behaviour. Without
 * `batches` it is an agent older than CreateRegions (that call answers UNIMPLEMENTED); with it,
 * CreateRegions is recorded as `<name>:creates(<sizes>)` and refuses regions one by one as
 * CreateRegion would.
 */
function fakeAgent(name: string, behaviour: AgentState, calls: string[], batches = false) {
  const create = (req: CreateRegionRequest) => {
    if (behaviour.current === "full" || behaviour.refuseSizes?.includes(Number(req.sizeBytes)))
      throw new ConnectError("full", Code.ResourceExhausted);
    if (behaviour.current === "down") throw new ConnectError("down", Code.Unavailable);
    if (behaviour.current === "locked") throw new ConnectError("missing agent token", Code.Unauthenticated);
    const id = uuidFromBytes(req.payloadId!.value);
    return regionOf(req.payloadId!.value, tierOfPb(req.tier), Number(req.sizeBytes), {
      kind: "ram",
      shmName: `/${name}-${id}`,
    });
  };
  return createRouterTransport(({ service }) =>
    service(TierAgentService, {
      createRegion(req) {
        calls.push(`${name}:create`);
        return create(req);
      },
      ...(batches && {
        createRegions(req) {
          calls.push(`${name}:creates(${req.regions.map((r) => r.sizeBytes).join(",")})`);
          if (behaviour.current === "down") throw new ConnectError("down", Code.Unavailable);
          if (behaviour.current === "locked")
            throw new ConnectError("missing agent token", Code.Unauthenticated);
          return {
            results: req.regions.map((r) => {
              try {
                return { result: { case: "region" as const, value: create(r) } };
              } catch (e) {
                const err = ConnectError.from(e);
                return {
                  result: { case: "error" as const, value: { code: err.code, message: err.rawMessage } },
                };
              }
            }),
          };
        },
      }),
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
  agents: {
    id: string;
    free: number;
    behaviour: Behaviour;
    ageMs?: number;
    host?: string;
    batches?: boolean;
    refuseSizes?: number[];
  }[],
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
  const behaviours = new Map<string, AgentState>();
  const batched = new Set(agents.filter((a) => a.batches).map((a) => a.id));
  const createBatches: number[] = [];
  for (const a of agents) {
    behaviours.set(a.id, { current: a.behaviour, refuseSizes: a.refuseSizes });
    await catalog.transaction((tx) => tx.upsertAgent(agentRecord(clock, a)));
  }
  const alloc = new AgentRegionAllocator({
    catalog: counting,
    clock,
    agentsCacheMs,
    agentTtlMs: 15_000,
    transportFor: (endpoint) => {
      const id = endpoint.replace("http://", "");
      return fakeAgent(id, behaviours.get(id)!, calls, batched.has(id));
    },
    onCreateBatch: (n) => createBatches.push(n),
  });
  return {
    alloc,
    calls,
    behaviours,
    catalog,
    clock,
    catalogState,
    createBatches,
    listReads: () => listReads,
  };
}

const req = (size: number, preferredHost?: string) => ({
  payloadId: asPayloadId("00000000-0000-4000-8000-000000000001"),
  tier: "RAM" as const,
  sizeBytes: size,
  preferredHost,
});

/** Allocation `n` of a test: its own payload id. */
const reqOf = (n: number, size: number) => ({
  payloadId: asPayloadId(`00000000-0000-4000-8000-${n.toString().padStart(12, "0")}`),
  tier: "RAM" as const,
  sizeBytes: size,
  preferredHost: undefined,
});

/** The sizes of the regions in every CreateRegions call recorded, per call. */
const batchesIn = (calls: readonly string[]) =>
  calls
    .map((c) => /^(\w+):creates\((.*)\)$/.exec(c))
    .filter((m) => m !== null)
    .map((m) => ({ agent: m[1]!, sizes: m[2]!.split(",").map(Number) }));

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

  it("reports an agent that refuses the control plane (agent token) as UNAVAILABLE, naming the agent and why", async () => {
    for (const batches of [false, true]) {
      const { alloc } = await setup([{ id: "a", free: 1000, behaviour: "locked", batches }]);
      const e = await alloc.allocate(req(10)).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(DomainError);
      expect(e).toMatchObject({ code: "UNAVAILABLE" });
      expect((e as DomainError).message).toMatch(
        /tier agent a .* refused the control plane: missing agent token/,
      );
    }
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

  describe("with agents that take CreateRegions", () => {
    it("sends concurrent allocations on one agent as a few CreateRegions calls, and reports their sizes", async () => {
      const s = await setup([{ id: "a", free: 900, behaviour: "ok", batches: true }]);
      const sizes = Array.from({ length: 10 }, (_, i) => 11 + i);
      const placements = await Promise.all(sizes.map((size, i) => s.alloc.allocate(reqOf(i + 1, size))));
      for (const [i, p] of placements.entries()) {
        expect(p).toMatchObject({ agentId: "a", tier: "RAM", lengthBytes: sizes[i] });
        expect(p.location).toEqual({ kind: "ram", shmName: `/a-${reqOf(i + 1, 0).payloadId}` });
      }
      const batches = batchesIn(s.calls);
      // Every call was a CreateRegions (no single CreateRegion), fewer calls than allocations.
      expect(batches).toHaveLength(s.calls.length);
      expect(batches.length).toBeLessThan(10);
      expect(batches.flatMap((b) => b.sizes).sort((x, y) => x - y)).toEqual(sizes);
      expect(s.createBatches).toEqual(batches.map((b) => b.sizes.length));
    });

    it("places an allocation that the agent refused as full inside a batch on the next agent; the others stay", async () => {
      const s = await setup([
        { id: "a", free: 900, behaviour: "ok", batches: true, refuseSizes: [13] },
        { id: "b", free: 500, behaviour: "ok", batches: true },
      ]);
      const sizes = [11, 12, 13, 14, 15];
      const placements = await Promise.all(sizes.map((size, i) => s.alloc.allocate(reqOf(i + 1, size))));
      expect(placements.map((p) => p.agentId)).toEqual(["a", "a", "b", "a", "a"]);
      expect(placements.map((p) => p.lengthBytes)).toEqual(sizes);
      expect(placements[2]!.location).toEqual({ kind: "ram", shmName: `/b-${reqOf(3, 0).payloadId}` });
      const batches = batchesIn(s.calls);
      expect(batches).toHaveLength(s.calls.length);
      // The refused region was asked of a together with others, then of b alone.
      expect(batches.some((b) => b.agent === "a" && b.sizes.includes(13) && b.sizes.length > 1)).toBe(true);
      expect(batches.filter((b) => b.agent === "b")).toEqual([{ agent: "b", sizes: [13] }]);
      expect(s.createBatches.reduce((x, y) => x + y, 0)).toBe(6);
    });

    it("says TIER_FULL for every allocation of a batch when every agent is full", async () => {
      const s = await setup([
        { id: "a", free: 900, behaviour: "full", batches: true },
        { id: "b", free: 500, behaviour: "full", batches: true },
      ]);
      const settled = await Promise.allSettled([1, 2, 3].map((n) => s.alloc.allocate(reqOf(n, 10 + n))));
      for (const r of settled) {
        expect(r.status).toBe("rejected");
        const e = (r as PromiseRejectedResult).reason;
        expect(e).toBeInstanceOf(DomainError);
        expect(e).toMatchObject({ code: "TIER_FULL" });
      }
      const batches = batchesIn(s.calls);
      expect(batches).toHaveLength(s.calls.length);
      for (const agent of ["a", "b"]) {
        const sizes = batches.filter((b) => b.agent === agent).flatMap((b) => b.sizes);
        expect(sizes.sort((x, y) => x - y)).toEqual([11, 12, 13]);
      }
    });

    it("an agent that is down fails the whole batch over to the next agent", async () => {
      const s = await setup([
        { id: "a", free: 900, behaviour: "down", batches: true },
        { id: "b", free: 500, behaviour: "ok", batches: true },
      ]);
      const placements = await Promise.all([1, 2, 3].map((n) => s.alloc.allocate(reqOf(n, 10 + n))));
      expect(placements.map((p) => p.agentId)).toEqual(["b", "b", "b"]);
      expect(s.calls.every((c) => c.includes(":creates("))).toBe(true);
    });
  });

  it("concurrent allocations on an agent without CreateRegions go as single CreateRegion calls", async () => {
    const s = await setup([{ id: "a", free: 900, behaviour: "ok" }]);
    const placements = await Promise.all([1, 2, 3].map((n) => s.alloc.allocate(reqOf(n, 10 + n))));
    expect(placements.map((p) => [p.agentId, p.lengthBytes])).toEqual([
      ["a", 11],
      ["a", 12],
      ["a", 13],
    ]);
    expect(s.calls).toEqual(["a:create", "a:create", "a:create"]);
  });
});
