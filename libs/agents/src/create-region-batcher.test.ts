import {
  Code,
  ConnectError,
  createClient,
  createRouterTransport,
  type ServiceImpl,
} from "@connectrpc/connect";
import { uuidFromBytes, uuidToBytes } from "@pm/domain";
import {
  type CreateRegionRequest,
  type CreateRegionsRequest,
  type Region,
  Tier,
  TierAgentService,
} from "@pm/rpc";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { AgentClient } from "./agent-region-allocator.ts";
import { CreateRegionBatcher, SINGLES_FOR_MS } from "./create-region-batcher.ts";
import { regionOf } from "./region-mapping.ts";

/** The payload id of call `n` (every call of a test has its own). */
const uuid = (n: number) => `00000000-0000-4000-8000-${n.toString().padStart(12, "0")}`;

/** The request of call `n`: its size is `n` bytes, so the fake's answers say whose region they are. */
const req = (n: number) => ({
  payloadId: { value: uuidToBytes(uuid(n)) },
  tier: Tier.RAM,
  sizeBytes: BigInt(n),
});

/** The region a fake agent creates for a request. */
const regionFor = (r: CreateRegionRequest): Region =>
  regionOf(r.payloadId!.value, "RAM", Number(r.sizeBytes), { kind: "ram", shmName: `/r-${r.sizeBytes}` });

/** Call `n` got its own region. */
function expectRegionOf(n: number, region: Region): void {
  expect(uuidFromBytes(region.payloadId!.value)).toBe(uuid(n));
  expect(region.sizeBytes).toBe(BigInt(n));
  expect(region.location).toMatchObject({ case: "ram", value: { shmName: `/r-${n}` } });
}

/** Calls `from`, `from + 1`, … got their own regions, in that order. */
function expectRegionsFrom(from: number, regions: readonly Region[]): void {
  for (const [i, r] of regions.entries()) expectRegionOf(from + i, r);
}

/**
 * A tier agent at the Connect port with the given handlers (a missing one answers UNIMPLEMENTED,
 * as an older agent would). `sent` records every call the client makes, in order: "batch 1,2"
 * for a CreateRegions of calls 1 and 2, "single 3" for a CreateRegion of call 3.
 */
function fakeAgent(impl: Partial<ServiceImpl<typeof TierAgentService>>, sent: string[]): AgentClient {
  const transport = createRouterTransport(({ service }) => service(TierAgentService, impl), {
    transport: {
      interceptors: [
        (next) => (call) => {
          if (!call.stream) {
            const m = call.message as { regions?: CreateRegionRequest[]; sizeBytes?: bigint };
            if (call.method.name === "CreateRegions")
              sent.push(`batch ${(m.regions ?? []).map((r) => r.sizeBytes).join(",")}`);
            else if (call.method.name === "CreateRegion") sent.push(`single ${m.sizeBytes}`);
          }
          return next(call);
        },
      ],
    },
  });
  return createClient(TierAgentService, transport);
}

/** A CreateRegions answer that creates every region asked for. */
const createAll = (r: CreateRegionsRequest) => ({
  results: r.regions.map((x) => ({ result: { case: "region" as const, value: regionFor(x) } })),
});

/** Handlers that create every region asked for. */
const creating = {
  createRegion: (r: CreateRegionRequest) => regionFor(r),
  createRegions: createAll,
} satisfies Partial<ServiceImpl<typeof TierAgentService>>;

/**
 * CreateRegions handlers that hold every call until the test releases it (`held[i]` is the i-th
 * call received), then create every region asked for.
 */
function holding() {
  const held: { sizes: number[]; release: () => void }[] = [];
  const createRegions: ServiceImpl<typeof TierAgentService>["createRegions"] = async (r) => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    held.push({ sizes: r.regions.map((x) => Number(x.sizeBytes)), release });
    await released;
    return createAll(r);
  };
  return { held, createRegions };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const macrotask = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The ConnectError a settled call was rejected with (fails the test if it was not). */
function rejection(s: PromiseSettledResult<Region>): ConnectError {
  expect(s.status).toBe("rejected");
  const reason = (s as PromiseRejectedResult).reason;
  expect(reason).toBeInstanceOf(ConnectError);
  return reason as ConnectError;
}

afterEach(() => {
  vi.useRealTimers();
});

describe("CreateRegionBatcher", () => {
  it("sends a lone call at once, and the calls made while it is in flight as one CreateRegions after it", async () => {
    const sent: string[] = [];
    const { held, createRegions } = holding();
    const batches: number[] = [];
    const batcher = new CreateRegionBatcher(fakeAgent({ ...creating, createRegions }, sent), {
      timeoutMs: 10_000,
      onBatch: (n) => batches.push(n),
    });

    const first = batcher.create(req(1));
    // Nothing else is asked: the lone call reaches the agent anyway, as a CreateRegions of 1.
    await vi.waitFor(() => expect(held).toHaveLength(1));
    expect(held[0]!.sizes).toEqual([1]);

    // Twenty calls over several turns of the event loop while the first is held: they wait.
    const rest: Promise<Region>[] = [];
    for (const n of range(2, 11)) rest.push(batcher.create(req(n)));
    await macrotask();
    for (const n of range(12, 21)) rest.push(batcher.create(req(n)));
    await macrotask();
    expect(held).toHaveLength(1);

    held[0]!.release();
    expectRegionOf(1, await first);
    await vi.waitFor(() => expect(held).toHaveLength(2));
    expect(held[1]!.sizes).toEqual(range(2, 21));
    held[1]!.release();
    const regions = await Promise.all(rest);
    expectRegionsFrom(2, regions);

    expect(sent).toEqual(["batch 1", `batch ${range(2, 21).join(",")}`]);
    expect(batches).toEqual([1, 20]);
  });

  it("calls made in the same tick go out together", async () => {
    const sent: string[] = [];
    const batcher = new CreateRegionBatcher(fakeAgent(creating, sent), { timeoutMs: 10_000 });
    const regions = await Promise.all(range(1, 5).map((n) => batcher.create(req(n))));
    expectRegionsFrom(1, regions);
    expect(sent).toEqual(["batch 1,2,3,4,5"]);
  });

  it("with two lanes, has two CreateRegions in flight at once and queues the rest behind them", async () => {
    const sent: string[] = [];
    const { held, createRegions } = holding();
    const batches: number[] = [];
    const batcher = new CreateRegionBatcher(fakeAgent({ ...creating, createRegions }, sent), {
      timeoutMs: 10_000,
      lanes: 2,
      onBatch: (n) => batches.push(n),
    });
    const a = batcher.create(req(1));
    await vi.waitFor(() => expect(held).toHaveLength(1));
    // The second lane is free: this one goes while the first is still held.
    const b = batcher.create(req(2));
    await vi.waitFor(() => expect(held).toHaveLength(2));
    expect(held.map((h) => h.sizes)).toEqual([[1], [2]]);

    // Both lanes busy: these queue, and go together when a lane frees.
    const c = batcher.create(req(3));
    await macrotask();
    const d = batcher.create(req(4));
    await macrotask();
    expect(held).toHaveLength(2);
    held[1]!.release();
    expectRegionOf(2, await b);
    await vi.waitFor(() => expect(held).toHaveLength(3));
    expect(held[2]!.sizes).toEqual([3, 4]);
    held[0]!.release();
    held[2]!.release();
    expectRegionOf(1, await a);
    expectRegionOf(3, await c);
    expectRegionOf(4, await d);
    expect(batches).toEqual([1, 1, 2]);
  });

  it("fails only the calls whose region the agent refused, each with the agent's code and message", async () => {
    const sent: string[] = [];
    const refusals: Record<number, { code: number; message: string }> = {
      2: { code: 8, message: "RAM tier has 1 of 10 bytes free" },
      3: { code: 6, message: "a RAM region already exists" },
      5: { code: 99, message: "a code from the future" },
    };
    const batcher = new CreateRegionBatcher(
      fakeAgent(
        {
          ...creating,
          createRegions: (r) => ({
            results: r.regions.map((x) => {
              const refusal = refusals[Number(x.sizeBytes)];
              return refusal
                ? { result: { case: "error" as const, value: refusal } }
                : { result: { case: "region" as const, value: regionFor(x) } };
            }),
          }),
        },
        sent,
      ),
      { timeoutMs: 10_000 },
    );
    const settled = await Promise.allSettled(range(1, 6).map((n) => batcher.create(req(n))));
    expect(sent).toEqual(["batch 1,2,3,4,5,6"]);

    for (const n of [1, 4, 6]) {
      const s = settled[n - 1]!;
      expect(s.status).toBe("fulfilled");
      expectRegionOf(n, (s as PromiseFulfilledResult<Region>).value);
    }
    const full = rejection(settled[1]!);
    expect(full.code).toBe(Code.ResourceExhausted);
    expect(full.rawMessage).toBe("RAM tier has 1 of 10 bytes free");
    const exists = rejection(settled[2]!);
    expect(exists.code).toBe(Code.AlreadyExists);
    expect(exists.rawMessage).toBe("a RAM region already exists");
    const unknown = rejection(settled[4]!);
    expect(unknown.code).toBe(Code.Unknown);
    expect(unknown.rawMessage).toBe("a code from the future");
    // Refusals are answers, not failures of the call: nothing was sent again one by one.
    expect(sent).toEqual(["batch 1,2,3,4,5,6"]);
  });

  it("fails the calls the agent answered no result for with INTERNAL, and gives the others their regions", async () => {
    const sent: string[] = [];
    const batcher = new CreateRegionBatcher(
      fakeAgent(
        {
          ...creating,
          createRegions: (r) => ({
            results: r.regions
              .slice(0, 2)
              .map((x) => ({ result: { case: "region" as const, value: regionFor(x) } })),
          }),
        },
        sent,
      ),
      { timeoutMs: 10_000 },
    );
    const settled = await Promise.allSettled(range(1, 4).map((n) => batcher.create(req(n))));
    expect(sent).toEqual(["batch 1,2,3,4"]);
    for (const n of [1, 2]) {
      const s = settled[n - 1]!;
      expect(s.status).toBe("fulfilled");
      expectRegionOf(n, (s as PromiseFulfilledResult<Region>).value);
    }
    for (const n of [3, 4]) expect(rejection(settled[n - 1]!).code).toBe(Code.Internal);
  });

  it("fails every call of a CreateRegions that failed (agent unavailable), and keeps batching after", async () => {
    const sent: string[] = [];
    const state = { down: true };
    const batcher = new CreateRegionBatcher(
      fakeAgent(
        {
          ...creating,
          createRegions: (r) => {
            if (state.down) throw new ConnectError("agent is restarting", Code.Unavailable);
            return createAll(r);
          },
        },
        sent,
      ),
      { timeoutMs: 10_000 },
    );
    const settled = await Promise.allSettled(range(1, 3).map((n) => batcher.create(req(n))));
    for (const s of settled) {
      const err = rejection(s);
      expect(err.code).toBe(Code.Unavailable);
      expect(err.rawMessage).toBe("agent is restarting");
    }
    // Not resent one by one: the agent's createRegion would have created them.
    expect(sent).toEqual(["batch 1,2,3"]);

    state.down = false;
    expectRegionOf(4, await batcher.create(req(4)));
    expect(sent).toEqual(["batch 1,2,3", "batch 4"]);
  });

  it("sends single CreateRegion calls to an agent without CreateRegions, for SINGLES_FOR_MS, then tries batches again", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const t0 = new Date("2030-01-01T00:00:00Z").getTime();
    vi.setSystemTime(t0);
    const sent: string[] = [];
    const batches: number[] = [];
    const old = fakeAgent({ createRegion: creating.createRegion }, sent);
    const upgraded = fakeAgent(creating, sent);
    // The batcher's client: the old agent's now, the upgraded agent's once the test swaps them.
    const client: AgentClient = { ...old };
    const batcher = new CreateRegionBatcher(client, { timeoutMs: 10_000, onBatch: (n) => batches.push(n) });

    // The batch is refused as UNIMPLEMENTED and resent as single calls; every caller gets its region.
    const first = await Promise.all(range(1, 3).map((n) => batcher.create(req(n))));
    expectRegionsFrom(1, first);
    expect(sent[0]).toBe("batch 1,2,3");
    expect(sent.slice(1).sort()).toEqual(["single 1", "single 2", "single 3"]);
    expect(batches).toEqual([3]);

    // Within SINGLES_FOR_MS, calls go straight to CreateRegion (even once the agent knows batches).
    Object.assign(client, upgraded);
    vi.setSystemTime(t0 + SINGLES_FOR_MS - 1);
    sent.length = 0;
    const within = await Promise.all(range(4, 5).map((n) => batcher.create(req(n))));
    expectRegionsFrom(4, within);
    expect(sent.sort()).toEqual(["single 4", "single 5"]);
    expect(batches).toEqual([3]);

    // Past it, batches are tried again, and used now that the agent has them.
    vi.setSystemTime(t0 + SINGLES_FOR_MS + 1);
    sent.length = 0;
    const after = await Promise.all(range(6, 8).map((n) => batcher.create(req(n))));
    expectRegionsFrom(6, after);
    expect(sent).toEqual(["batch 6,7,8"]);
    expect(batches).toEqual([3, 3]);
  });

  it("an agent still without CreateRegions after SINGLES_FOR_MS is asked once more, then gets singles again", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const t0 = new Date("2030-01-01T00:00:00Z").getTime();
    vi.setSystemTime(t0);
    const sent: string[] = [];
    const batcher = new CreateRegionBatcher(fakeAgent({ createRegion: creating.createRegion }, sent), {
      timeoutMs: 10_000,
    });
    expectRegionOf(1, await batcher.create(req(1)));
    expect(sent).toEqual(["batch 1", "single 1"]);

    const t1 = t0 + SINGLES_FOR_MS + 1;
    vi.setSystemTime(t1);
    expectRegionOf(2, await batcher.create(req(2)));
    expect(sent).toEqual(["batch 1", "single 1", "batch 2", "single 2"]);

    // The second refusal starts a new period of single calls, from when it came.
    vi.setSystemTime(t1 + SINGLES_FOR_MS - 1);
    expectRegionOf(3, await batcher.create(req(3)));
    expect(sent.slice(4)).toEqual(["single 3"]);
  });

  it("a single call's failure after the fallback fails only that call, with the agent's code", async () => {
    const sent: string[] = [];
    const batcher = new CreateRegionBatcher(
      fakeAgent(
        {
          createRegion: (r) => {
            if (r.sizeBytes === 2n) throw new ConnectError("full", Code.ResourceExhausted);
            return regionFor(r);
          },
        },
        sent,
      ),
      { timeoutMs: 10_000 },
    );
    const settled = await Promise.allSettled(range(1, 3).map((n) => batcher.create(req(n))));
    expectRegionOf(1, (settled[0] as PromiseFulfilledResult<Region>).value);
    expect(rejection(settled[1]!).code).toBe(Code.ResourceExhausted);
    expectRegionOf(3, (settled[2] as PromiseFulfilledResult<Region>).value);
  });

  it("fails a batch the agent does not answer in time with DEADLINE_EXCEEDED, and tells the agent the deadline", async () => {
    const headers: (string | null)[] = [];
    const transport = createRouterTransport(
      ({ service }) =>
        service(TierAgentService, {
          createRegions: () => new Promise<never>(() => undefined), // never answers
        }),
      {
        transport: {
          interceptors: [
            (next) => (call) => {
              headers.push(call.header.get("connect-timeout-ms"));
              return next(call);
            },
          ],
        },
      },
    );
    const b = new CreateRegionBatcher(createClient(TierAgentService, transport), { timeoutMs: 50 });
    const settled = await Promise.allSettled([b.create(req(1)), b.create(req(2))]);
    for (const s of settled) {
      expect(s.status).toBe("rejected");
      const e = ConnectError.from((s as PromiseRejectedResult).reason);
      expect(e.code).toBe(Code.DeadlineExceeded);
      expect(e.rawMessage).toMatch(/timed out/);
    }
    // The agent learns the deadline too (its fast path passes it on as the call's signal).
    expect(headers).toEqual(["50"]);
  });
});
