// Copies to and from the object store through agents: which agent is asked, and that the request
// carries the object's bucket and key. Agents are fakes behind the real Connect router.
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { type AgentRecord, DomainError, type PayloadId, type Placement, uuidToBytes } from "@pm/domain";
import { FakeClock, MemoryCatalog } from "@pm/domain/testing";
import { type CopyRegionRequest, TierAgentService } from "@pm/rpc";
import { beforeEach, describe, expect, it } from "vitest";
import { AgentRegionAllocator } from "./agent-region-allocator.ts";
import { regionOf, tierOfPb } from "./region-mapping.ts";

const ID = "0f8fad5b-d9cb-469f-a165-70867728950e" as PayloadId;
const GIB = 1024 ** 3;

interface FakeAgent {
  readonly record: AgentRecord;
  readonly copies: CopyRegionRequest[];
  /** Answer copies with this error instead. */
  fail: ConnectError | undefined;
}

let clock: FakeClock;
let catalog: MemoryCatalog;
let agents: Map<string, FakeAgent>;
let allocator: AgentRegionAllocator;

async function addAgent(agentId: string, host: string, ramFree: number): Promise<FakeAgent> {
  const record: AgentRecord = {
    agentId,
    host,
    endpoint: `http://${agentId}.test`,
    tiers: [
      {
        tier: "RAM",
        capacityBytes: 4 * GIB,
        usedBytes: 4 * GIB - ramFree,
        highWatermark: 0.9,
        lowWatermark: 0.75,
      },
      { tier: "DISK", capacityBytes: 64 * GIB, usedBytes: 0, highWatermark: 0.9, lowWatermark: 0.75 },
    ],
    lastHeartbeatAt: clock.now(),
    registeredAt: clock.now(),
  };
  await catalog.transaction((tx) => tx.upsertAgent(record));
  const a: FakeAgent = { record, copies: [], fail: undefined };
  agents.set(record.endpoint, a);
  return a;
}

function transportFor(endpoint: string) {
  const a = agents.get(endpoint)!;
  return createRouterTransport((r) =>
    r.service(TierAgentService, {
      copyRegion(req) {
        a.copies.push(req);
        if (a.fail) throw a.fail;
        const to = tierOfPb(req.toTier);
        const location =
          to === "OBJECT"
            ? { kind: "object" as const, bucket: req.bucket, key: req.key }
            : { kind: "ram" as const, shmName: `/pm-${ID}.bin` };
        return {
          region: regionOf(uuidToBytes(ID), to, 100, location),
          checksum: "",
          bytesCopied: 100n,
          durationUs: 1n,
        };
      },
    }),
  );
}

beforeEach(() => {
  clock = new FakeClock(Date.now());
  catalog = new MemoryCatalog();
  agents = new Map();
  allocator = new AgentRegionAllocator({ catalog, clock, agentTtlMs: 15_000, transportFor });
});

const diskOn = (a: FakeAgent): Placement => ({
  tier: "DISK",
  agentId: a.record.agentId,
  host: a.record.host,
  location: { kind: "disk", path: `/disk/${ID}.bin`, offsetBytes: 0 },
  lengthBytes: 100,
});
const object = (host = ""): Placement => ({
  tier: "OBJECT",
  agentId: "",
  host,
  location: { kind: "object", bucket: "b", key: `payloads/${ID}` },
  lengthBytes: 100,
});

describe("AgentRegionAllocator copies with the object store", () => {
  it("uploads on the agent holding the source, sending bucket and key; the object belongs to no agent", async () => {
    const a = await addAgent("a", "host-a", GIB);
    const b = await addAgent("b", "host-b", GIB);
    const req = { payloadId: ID, sizeBytes: 100, from: diskOn(a), toTier: "OBJECT" as const, fsync: false };
    const p = await allocator.copyToObject(req, { bucket: "b", key: `payloads/${ID}` });
    expect(b.copies).toHaveLength(0);
    expect(a.copies).toHaveLength(1);
    expect(a.copies[0]).toMatchObject({ bucket: "b", key: `payloads/${ID}` });
    expect(tierOfPb(a.copies[0]!.fromTier)).toBe("DISK");
    expect(tierOfPb(a.copies[0]!.toTier)).toBe("OBJECT");
    expect(p).toEqual(object("host-a"));
  });

  it("downloads on a live agent with room on the target tier, the preferred host first", async () => {
    const a = await addAgent("a", "host-a", GIB);
    const b = await addAgent("b", "host-b", 2 * GIB);
    const req = {
      payloadId: ID,
      sizeBytes: 100,
      from: object("host-a"),
      toTier: "RAM" as const,
      fsync: false,
    };
    const p = await allocator.copy(req);
    expect(a.copies).toHaveLength(1);
    expect(b.copies).toHaveLength(0);
    expect(a.copies[0]).toMatchObject({ bucket: "b", key: `payloads/${ID}` });
    expect(tierOfPb(a.copies[0]!.fromTier)).toBe("OBJECT");
    expect(p).toMatchObject({ tier: "RAM", agentId: "a", host: "host-a" });

    // Without a hint: the agent with the most room.
    const q = await allocator.copyFromObject({ ...req, from: object() }, undefined);
    expect(q.agentId).toBe("b");
  });

  it("falls over to the next agent when one is unreachable, full or has no object store", async () => {
    const a = await addAgent("a", "host-a", 3 * GIB);
    const b = await addAgent("b", "host-b", 2 * GIB);
    const c = await addAgent("c", "host-c", GIB);
    a.fail = new ConnectError("no object store configured", Code.FailedPrecondition);
    b.fail = new ConnectError("down", Code.Unavailable);
    const req = { payloadId: ID, sizeBytes: 100, from: object(), toTier: "RAM" as const, fsync: false };
    const p = await allocator.copy(req);
    expect(p.agentId).toBe("c");
    expect([a.copies.length, b.copies.length, c.copies.length]).toEqual([1, 1, 1]);

    c.fail = new ConnectError("full", Code.ResourceExhausted);
    const err = await allocator.copy(req).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DomainError);
    expect((err as DomainError).message).toMatch(/no tier agent could bring payload/);
    // A missing object is not something another agent can fix.
    a.fail = new ConnectError("no such object", Code.NotFound);
    await expect(allocator.copy(req)).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("asks live agents even when heartbeats report no room (usage lags frees)", async () => {
    const a = await addAgent("a", "host-a", 0);
    const req = { payloadId: ID, sizeBytes: 100, from: object(), toTier: "RAM" as const, fsync: false };
    expect((await allocator.copy(req)).agentId).toBe("a");
    a.fail = new ConnectError("full", Code.ResourceExhausted);
    await expect(allocator.copy(req)).rejects.toMatchObject({ code: "TIER_FULL" });
  });

  it("without an object tier a spill to OBJECT is TIER_UNAVAILABLE, and no agent is asked", async () => {
    const a = await addAgent("a", "host-a", GIB);
    const req = { payloadId: ID, sizeBytes: 100, from: diskOn(a), toTier: "OBJECT" as const, fsync: false };
    await expect(allocator.copy(req)).rejects.toMatchObject({ code: "TIER_UNAVAILABLE" });
    expect(a.copies).toHaveLength(0);
  });

  it("no live agent with the target tier is NO_AGENT", async () => {
    const a = await addAgent("a", "host-a", GIB);
    clock.advance(60_000);
    const req = { payloadId: ID, sizeBytes: 100, from: object(), toTier: "RAM" as const, fsync: false };
    await expect(allocator.copy(req)).rejects.toMatchObject({ code: "NO_AGENT" });
    expect(a.copies).toHaveLength(0);
  });
});
