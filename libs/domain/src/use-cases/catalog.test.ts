import { describe, expect, it } from "vitest";
import type { TierUsage } from "../model/catalog-records.ts";
import type { PayloadId } from "../model/ids.ts";
import {
  addLineage,
  agentHeartbeat,
  appendMetadataEvent,
  DEFAULT_PAGE_SIZE,
  decodePageToken,
  encodePageToken,
  getLineage,
  getMetadata,
  type ListPayloadsRequest,
  listMetadataEvents,
  listPayloads,
  MAX_PAGE_SIZE,
  pageSizeOf,
  registerAgent,
  stats,
  updateMetadata,
} from "./catalog.ts";
import { deletePayload } from "./lifecycle.ts";
import {
  allocated,
  committed,
  domainError,
  type Harness,
  harness,
  leased,
  MiB,
  unknownId,
} from "./test-harness.ts";

const bytes = (...b: number[]) => new Uint8Array(b);

function list(h: Harness, req: Partial<ListPayloadsRequest> = {}, ctx = h.ctx) {
  return listPayloads(h.deps, ctx, { tier: undefined, state: undefined, pageSize: 0, pageToken: "", ...req });
}

async function many(h: Harness, n: number): Promise<PayloadId[]> {
  const ids: PayloadId[] = [];
  for (let i = 0; i < n; i++) ids.push((await allocated(h, "RAM", { sizeBytes: 1 })).id);
  return ids;
}

describe("listPayloads", () => {
  it("lists newest first with the total count", async () => {
    const h = harness();
    const a = await allocated(h);
    h.clock.advance(1);
    const b = await committed(h, "DISK");
    h.clock.advance(1);
    const c = await allocated(h);
    const page = await list(h);
    expect(page.items.map((i) => i.payload.id)).toEqual([c.id, b.id, a.id]);
    expect(page.total).toBe(3);
    expect(page.nextPageToken).toBe("");
  });

  it("pages 50 by default and walks every payload exactly once", async () => {
    const h = harness();
    const ids = await many(h, DEFAULT_PAGE_SIZE + 1);
    const first = await list(h);
    expect(first.items).toHaveLength(50);
    expect(first.total).toBe(51);
    expect(first.nextPageToken).not.toBe("");
    const second = await list(h, { pageToken: first.nextPageToken });
    expect(second.items).toHaveLength(1);
    expect(second.nextPageToken).toBe("");
    const seen = [...first.items, ...second.items].map((i) => i.payload.id);
    expect(new Set(seen).size).toBe(51);
    expect([...seen].sort()).toEqual([...ids].sort());
  });

  it("pages through payloads created in the same millisecond without skipping or repeating", async () => {
    const h = harness();
    const ids = await many(h, 7);
    const seen: string[] = [];
    let token = "";
    let pages = 0;
    do {
      const page = await list(h, { pageSize: 2, pageToken: token });
      seen.push(...page.items.map((i) => i.payload.id));
      token = page.nextPageToken;
      pages++;
    } while (token !== "" && pages < 10);
    expect(pages).toBe(4);
    expect(seen).toEqual([...ids].reverse());
  });

  it("caps the page size at 500", async () => {
    const h = harness({ capacity: { RAM: 10 * MiB } });
    await many(h, MAX_PAGE_SIZE + 1);
    const page = await list(h, { pageSize: 100_000 });
    expect(page.items).toHaveLength(500);
    expect(page.nextPageToken).not.toBe("");
    expect(pageSizeOf(0)).toBe(50);
    expect(pageSizeOf(-3)).toBe(50);
    expect(pageSizeOf(7)).toBe(7);
  });

  it("hands out opaque URL-safe tokens", async () => {
    const h = harness();
    const ids = await many(h, 3);
    const { nextPageToken } = await list(h, { pageSize: 1 });
    expect(nextPageToken).toMatch(/^[A-Za-z0-9_-]+$/);
    for (const id of ids) expect(nextPageToken).not.toContain(id);
    const cursor = { createdAt: 1767225600000, id: "00000000-0000-4000-8000-0000000000ff" };
    expect(decodePageToken(encodePageToken(cursor))).toEqual(cursor);
  });

  it.each(["!!!", "abc", "Zm9v", btoa("12.not-an-id"), btoa(`x.${"0".repeat(36)}`)])(
    "rejects page token %j with INVALID_ARGUMENT",
    async (pageToken) => {
      const h = harness();
      const e = await domainError(() => list(h, { pageToken }), "INVALID_ARGUMENT");
      expect(e.details.field).toBe("page_token");
      expect(e.message).toContain("next_page_token");
    },
  );

  it("filters by tier and state", async () => {
    const h = harness();
    const ram = await allocated(h, "RAM");
    const disk = await committed(h, "DISK");
    await committed(h, "RAM");
    expect((await list(h, { tier: "DISK" })).items.map((i) => i.payload.id)).toEqual([disk.id]);
    const allocatedOnly = await list(h, { state: "ALLOCATED" });
    expect(allocatedOnly.items.map((i) => i.payload.id)).toEqual([ram.id]);
    expect(allocatedOnly.total).toBe(1);
    expect((await list(h, { tier: "RAM", state: "ACTIVE" })).total).toBe(1);
  });

  it("shows only the caller's namespace", async () => {
    const h = harness();
    await committed(h);
    const theirs = await committed(h, "RAM", {}, h.other);
    const page = await list(h, {}, h.other);
    expect(page.items.map((i) => i.payload.id)).toEqual([theirs.id]);
    expect(page.total).toBe(1);
    expect((await list(h)).total).toBe(1);
  });

  it("counts live leases only", async () => {
    const h = harness();
    const p = await committed(h);
    await leased(h, p.id, 5_000);
    await leased(h, p.id, 60_000);
    expect((await list(h)).items[0]?.liveLeases).toBe(2);
    h.clock.advance(5_000);
    expect((await list(h)).items[0]?.liveLeases).toBe(1);
  });
});

describe("stats", () => {
  it("counts payloads and bytes per tier in the caller's namespace, and reports agent liveness", async () => {
    const h = harness();
    await committed(h, "RAM", { sizeBytes: 100 });
    await committed(h, "RAM", { sizeBytes: 50 });
    await committed(h, "DISK", { sizeBytes: 7 });
    await committed(h, "RAM", { sizeBytes: 1000 }, h.other);
    await registerAgent(h.deps, { agentId: "agent-1", host: "h1", endpoint: "http://h1", tiers: [] });
    const s = await stats(h.deps, h.ctx);
    expect(s.tiers.find((t) => t.tier === "RAM")).toEqual({ tier: "RAM", payloads: 2, bytes: 150 });
    expect(s.tiers.find((t) => t.tier === "DISK")).toEqual({ tier: "DISK", payloads: 1, bytes: 7 });
    expect(s.agents.map((a) => [a.agentId, a.live])).toEqual([["agent-1", true]]);
    h.clock.advance(h.deps.config.agentTtlMs + 1);
    expect((await stats(h.deps, h.ctx)).agents[0]?.live).toBe(false);
  });
});

describe("metadata", () => {
  it("MERGE keeps the stored data and schema where the new ones are empty", async () => {
    const h = harness();
    const p = await committed(h);
    await updateMetadata(h.deps, h.ctx, { id: p.id, mode: "REPLACE", data: bytes(1, 2), schema: "v1" });
    const keptData = await updateMetadata(h.deps, h.ctx, {
      id: p.id,
      mode: "MERGE",
      data: bytes(),
      schema: "v2",
    });
    expect(keptData.data).toEqual(bytes(1, 2));
    expect(keptData.schema).toBe("v2");
    const keptSchema = await updateMetadata(h.deps, h.ctx, {
      id: p.id,
      mode: "MERGE",
      data: bytes(9),
      schema: "",
    });
    expect(keptSchema).toMatchObject({ data: bytes(9), schema: "v2" });
    expect(await getMetadata(h.deps, h.ctx, p.id)).toEqual(keptSchema);
  });

  it("REPLACE overwrites both fields, empty ones included", async () => {
    const h = harness();
    const p = await committed(h);
    await updateMetadata(h.deps, h.ctx, { id: p.id, mode: "REPLACE", data: bytes(1), schema: "v1" });
    h.clock.advance(10);
    const out = await updateMetadata(h.deps, h.ctx, { id: p.id, mode: "REPLACE", data: bytes(), schema: "" });
    expect(out).toEqual({ payloadId: p.id, data: bytes(), schema: "", updatedAt: h.clock.now() });
    expect(await getMetadata(h.deps, h.ctx, p.id)).toEqual(out);
  });

  it("get of a payload without metadata returns empty metadata", async () => {
    const h = harness();
    const p = await committed(h);
    expect(await getMetadata(h.deps, h.ctx, p.id)).toEqual({
      payloadId: p.id,
      data: bytes(),
      schema: "",
      updatedAt: 0,
    });
  });

  it("unknown, foreign and deleting payloads are refused", async () => {
    const h = harness();
    const p = await committed(h);
    const req = { id: p.id, mode: "MERGE" as const, data: bytes(1), schema: "s" };
    await domainError(() => updateMetadata(h.deps, h.ctx, { ...req, id: unknownId }), "PAYLOAD_NOT_FOUND");
    await domainError(() => updateMetadata(h.deps, h.other, req), "PAYLOAD_NOT_FOUND");
    await domainError(() => getMetadata(h.deps, h.other, p.id), "PAYLOAD_NOT_FOUND");
    await leased(h, p.id);
    await deletePayload(h.deps, h.ctx, { id: p.id, force: true });
    const e = await domainError(() => updateMetadata(h.deps, h.ctx, req), "INVALID_TRANSITION");
    expect(e.message).toContain("being deleted");
  });
});

describe("metadata events", () => {
  async function withEvents(h: Harness, n: number) {
    const p = await committed(h);
    for (let i = 0; i < n; i++) {
      await appendMetadataEvent(h.deps, h.ctx, {
        id: p.id,
        data: bytes(i),
        schema: "s",
        source: "src",
        version: "1",
      });
      h.clock.advance(1_000);
    }
    return p;
  }

  it("lists newest first and pages with the seq token", async () => {
    const h = harness();
    const p = await withEvents(h, 5);
    const first = await listMetadataEvents(h.deps, h.ctx, {
      id: p.id,
      pageSize: 2,
      pageToken: "",
      since: undefined,
      until: undefined,
    });
    expect(first.events.map((e) => e.data[0])).toEqual([4, 3]);
    const second = await listMetadataEvents(h.deps, h.ctx, {
      id: p.id,
      pageSize: 2,
      pageToken: first.nextPageToken,
      since: undefined,
      until: undefined,
    });
    expect(second.events.map((e) => e.data[0])).toEqual([2, 1]);
    const third = await listMetadataEvents(h.deps, h.ctx, {
      id: p.id,
      pageSize: 2,
      pageToken: second.nextPageToken,
      since: undefined,
      until: undefined,
    });
    expect(third.events.map((e) => e.data[0])).toEqual([0]);
    expect(third.nextPageToken).toBe("");
  });

  it("stamps each event with the clock and filters by [since, until)", async () => {
    const h = harness();
    const t0 = h.clock.now();
    const p = await withEvents(h, 4);
    const out = await listMetadataEvents(h.deps, h.ctx, {
      id: p.id,
      pageSize: 0,
      pageToken: "",
      since: t0 + 1_000,
      until: t0 + 3_000,
    });
    expect(out.events.map((e) => e.ts)).toEqual([t0 + 2_000, t0 + 1_000]);
    expect(out.events[0]).toMatchObject({ payloadId: p.id, schema: "s", source: "src", version: "1" });
  });

  it.each(["abc", "-1", "1.5", "9".repeat(16)])("rejects page token %j", async (pageToken) => {
    const h = harness();
    const p = await committed(h);
    const e = await domainError(
      () =>
        listMetadataEvents(h.deps, h.ctx, {
          id: p.id,
          pageSize: 0,
          pageToken,
          since: undefined,
          until: undefined,
        }),
      "INVALID_ARGUMENT",
    );
    expect(e.details.field).toBe("page_token");
  });

  it("does not show or accept events for another tenant's payload", async () => {
    const h = harness();
    const p = await withEvents(h, 1);
    await domainError(
      () =>
        listMetadataEvents(h.deps, h.other, {
          id: p.id,
          pageSize: 0,
          pageToken: "",
          since: undefined,
          until: undefined,
        }),
      "PAYLOAD_NOT_FOUND",
    );
    await domainError(
      () =>
        appendMetadataEvent(h.deps, h.other, {
          id: p.id,
          data: bytes(),
          schema: "",
          source: "",
          version: "",
        }),
      "PAYLOAD_NOT_FOUND",
    );
  });
});

describe("lineage", () => {
  const edge = (parent: PayloadId, operation = "op", role = "input") => ({
    parent,
    operation,
    role,
    parameters: bytes(),
  });

  it("records edges with the child id, and collapses duplicates", async () => {
    const h = harness();
    const a = await committed(h);
    const b = await committed(h);
    await addLineage(h.deps, h.ctx, b.id, [edge(a.id), edge(a.id)]);
    await addLineage(h.deps, h.ctx, b.id, [edge(a.id)]);
    const up = await getLineage(h.deps, h.ctx, { id: b.id, upstream: true, maxDepth: 0 });
    expect(up).toEqual([{ parent: a.id, child: b.id, operation: "op", role: "input", parameters: bytes() }]);
    // A different operation or role is a different edge.
    await addLineage(h.deps, h.ctx, b.id, [edge(a.id, "op", "weights")]);
    expect(await getLineage(h.deps, h.ctx, { id: b.id, upstream: true, maxDepth: 0 })).toHaveLength(2);
  });

  it("requires every parent to exist, and adds nothing when one is missing", async () => {
    const h = harness();
    const a = await committed(h);
    const b = await committed(h);
    await domainError(
      () => addLineage(h.deps, h.ctx, b.id, [edge(a.id), edge(unknownId)]),
      "PAYLOAD_NOT_FOUND",
    );
    expect(await getLineage(h.deps, h.ctx, { id: b.id, upstream: true, maxDepth: 0 })).toEqual([]);
  });

  it("refuses a parent from another tenant and an unknown child", async () => {
    const h = harness();
    const mine = await committed(h);
    const theirs = await committed(h, "RAM", {}, h.other);
    await domainError(() => addLineage(h.deps, h.ctx, mine.id, [edge(theirs.id)]), "PAYLOAD_NOT_FOUND");
    await domainError(() => addLineage(h.deps, h.ctx, unknownId, [edge(mine.id)]), "PAYLOAD_NOT_FOUND");
  });

  it("refuses a payload as its own parent, and an empty edge list", async () => {
    const h = harness();
    const a = await committed(h);
    const self = await domainError(() => addLineage(h.deps, h.ctx, a.id, [edge(a.id)]), "INVALID_ARGUMENT");
    expect(self.message).toContain("its own parent");
    const empty = await domainError(() => addLineage(h.deps, h.ctx, a.id, []), "INVALID_ARGUMENT");
    expect(empty.details.field).toBe("parents");
  });

  it("walks upstream and downstream, limited by max depth", async () => {
    const h = harness();
    const [a, b, c, d] = [await committed(h), await committed(h), await committed(h), await committed(h)];
    if (!a || !b || !c || !d) throw new Error("setup");
    // a -> b -> c -> d
    await addLineage(h.deps, h.ctx, b.id, [edge(a.id)]);
    await addLineage(h.deps, h.ctx, c.id, [edge(b.id)]);
    await addLineage(h.deps, h.ctx, d.id, [edge(c.id)]);
    const pairs = (es: { parent: string; child: string }[]) => es.map((e) => `${e.parent}>${e.child}`);

    expect(pairs(await getLineage(h.deps, h.ctx, { id: d.id, upstream: true, maxDepth: 0 }))).toEqual([
      `${c.id}>${d.id}`,
      `${b.id}>${c.id}`,
      `${a.id}>${b.id}`,
    ]);
    expect(pairs(await getLineage(h.deps, h.ctx, { id: d.id, upstream: true, maxDepth: 2 }))).toEqual([
      `${c.id}>${d.id}`,
      `${b.id}>${c.id}`,
    ]);
    expect(pairs(await getLineage(h.deps, h.ctx, { id: a.id, upstream: false, maxDepth: 1 }))).toEqual([
      `${a.id}>${b.id}`,
    ]);
    expect(pairs(await getLineage(h.deps, h.ctx, { id: b.id, upstream: false, maxDepth: 0 }))).toEqual([
      `${b.id}>${c.id}`,
      `${c.id}>${d.id}`,
    ]);
    expect(await getLineage(h.deps, h.ctx, { id: a.id, upstream: true, maxDepth: 0 })).toEqual([]);
  });

  it("terminates on a cycle and returns each edge once", async () => {
    const h = harness();
    const a = await committed(h);
    const b = await committed(h);
    const c = await committed(h);
    // a -> b -> c -> a
    await addLineage(h.deps, h.ctx, b.id, [edge(a.id)]);
    await addLineage(h.deps, h.ctx, c.id, [edge(b.id)]);
    await addLineage(h.deps, h.ctx, a.id, [edge(c.id)]);
    for (const upstream of [true, false]) {
      const es = await getLineage(h.deps, h.ctx, { id: a.id, upstream, maxDepth: 0 });
      expect(es).toHaveLength(3);
      expect(new Set(es.map((e) => `${e.parent}>${e.child}`)).size).toBe(3);
    }
  });

  it("does not reveal another tenant's lineage", async () => {
    const h = harness();
    const a = await committed(h);
    await domainError(
      () => getLineage(h.deps, h.other, { id: a.id, upstream: true, maxDepth: 0 }),
      "PAYLOAD_NOT_FOUND",
    );
  });
});

describe("agents", () => {
  const ram: TierUsage = {
    tier: "RAM",
    capacityBytes: 1000,
    usedBytes: 10,
    highWatermark: 0.9,
    lowWatermark: 0.7,
  };

  it.each(["", "has space", "a/b", "x".repeat(65)])("rejects agent id %j", async (agentId) => {
    const h = harness();
    const e = await domainError(
      () => registerAgent(h.deps, { agentId, host: "h", endpoint: "http://h", tiers: [] }),
      "INVALID_ARGUMENT",
    );
    expect(e.details.field).toBe("agent_id");
  });

  it("returns what the catalog places on the agent, so it can reconcile", async () => {
    const h = harness();
    const p = await committed(h, "RAM");
    const q = await allocated(h, "DISK");
    const placements = await registerAgent(h.deps, {
      agentId: "agent-1",
      host: "host-1",
      endpoint: "http://host-1:7000",
      tiers: [ram],
    });
    expect(placements).toEqual(
      expect.arrayContaining([
        { payloadId: p.id, tier: "RAM" },
        { payloadId: q.id, tier: "DISK" },
      ]),
    );
    expect(placements).toHaveLength(2);
    expect(
      await registerAgent(h.deps, { agentId: "agent-2", host: "h2", endpoint: "http://h2", tiers: [] }),
    ).toEqual([]);
  });

  it("keeps the first registration time across re-registration", async () => {
    const h = harness();
    const t0 = h.clock.now();
    await registerAgent(h.deps, { agentId: "agent-1", host: "h", endpoint: "http://h", tiers: [] });
    h.clock.advance(60_000);
    await registerAgent(h.deps, { agentId: "agent-1", host: "h", endpoint: "http://h:2", tiers: [ram] });
    const agent = await h.catalog.transaction((tx) => tx.getAgent("agent-1"));
    expect(agent).toMatchObject({ registeredAt: t0, lastHeartbeatAt: t0 + 60_000, endpoint: "http://h:2" });
  });

  it("a heartbeat from an unknown agent returns false; from a known one updates usage", async () => {
    const h = harness();
    expect(await agentHeartbeat(h.deps, "ghost", [ram])).toBe(false);
    expect(await h.catalog.transaction((tx) => tx.getAgent("ghost"))).toBeUndefined();
    await registerAgent(h.deps, { agentId: "agent-1", host: "h", endpoint: "http://h", tiers: [] });
    h.clock.advance(5_000);
    expect(await agentHeartbeat(h.deps, "agent-1", [ram])).toBe(true);
    const agent = await h.catalog.transaction((tx) => tx.getAgent("agent-1"));
    expect(agent?.tiers).toEqual([ram]);
    expect(agent?.lastHeartbeatAt).toBe(h.clock.now());
  });
});
