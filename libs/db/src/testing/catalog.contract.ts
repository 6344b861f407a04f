import {
  type AgentRecord,
  asLeaseId,
  asPayloadId,
  type Catalog,
  type CatalogTx,
  DEFAULT_EVICTION_POLICY,
  DomainError,
  type Lease,
  type LeaseGrantRequest,
  type LeaseGrantResult,
  type LeaseReleaseResult,
  type LineageEdge,
  type MetadataEvent,
  type Payload,
  type PayloadId,
  type Placement,
  type RetiredRegion,
  STORAGE_TIERS,
  type StreamEntry,
  type StreamKey,
} from "@pm/domain";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

/** A fresh, empty catalog for one test, and how to dispose of it. */
export interface CatalogFixture {
  readonly catalog: Catalog;
  cleanup(): Promise<void>;
}

const GiB = 1024 ** 3;
const NOW = Date.UTC(2026, 0, 1);

const id = (n: number): PayloadId =>
  asPayloadId(`00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`);
const leaseId = (n: number) => asLeaseId(`11111111-0000-4000-8000-${n.toString(16).padStart(12, "0")}`);

/** 64 bytes covering 0x00, 0xff and everything between, so no byte value is mangled unnoticed. */
const ipcHandle = (seed: number) => Uint8Array.from({ length: 64 }, (_, i) => (i * 61 + seed) % 256);

const placements = {
  gpu: (agentId = "agent-1"): Placement => ({
    tier: "GPU",
    agentId,
    host: "host-1",
    lengthBytes: 5 * GiB,
    location: { kind: "gpu", deviceId: 3, ipcHandle: ipcHandle(7) },
  }),
  ram: (agentId = "agent-1"): Placement => ({
    tier: "RAM",
    agentId,
    host: "host-1",
    lengthBytes: 4096,
    location: { kind: "ram", shmName: "/pm-ram-region" },
  }),
  disk: (agentId = "agent-1"): Placement => ({
    tier: "DISK",
    agentId,
    host: "host-2",
    lengthBytes: 128 * GiB,
    location: { kind: "disk", path: "/data/regions/ä ü.bin", offsetBytes: 6 * GiB + 17 },
  }),
  object: (): Placement => ({
    tier: "OBJECT",
    agentId: "",
    host: "",
    lengthBytes: 3 * GiB,
    location: { kind: "object", bucket: "payloads", key: "ns-a/2026/01/01/x y+z.bin" },
  }),
};

function payload(n: number, over: Partial<Payload> = {}): Payload {
  return {
    id: id(n),
    namespace: "ns-a",
    sizeBytes: 128 * GiB,
    state: "ACTIVE",
    version: 1,
    placement: placements.ram(),
    pendingPlacement: undefined,
    createdAt: NOW,
    updatedAt: NOW,
    expiresAt: undefined,
    lastAccessAt: NOW,
    noEvict: false,
    evictionPolicy: DEFAULT_EVICTION_POLICY,
    checksum: undefined,
    ...over,
  };
}

function lease(n: number, payloadId: PayloadId, over: Partial<Lease> = {}): Lease {
  return {
    id: leaseId(n),
    payloadId,
    namespace: "ns-a",
    version: 1,
    createdAt: NOW,
    expiresAt: NOW + 20_000,
    revoked: false,
    ...over,
  };
}

function agent(agentId: string, over: Partial<AgentRecord> = {}): AgentRecord {
  return {
    agentId,
    host: `${agentId}.hosts.test`,
    endpoint: `http://${agentId}.hosts.test:7070`,
    tiers: [
      { tier: "GPU", capacityBytes: 80 * GiB, usedBytes: 12 * GiB, highWatermark: 0.9, lowWatermark: 0.75 },
      { tier: "RAM", capacityBytes: 512 * GiB, usedBytes: 0, highWatermark: 0.85, lowWatermark: 0.7 },
    ],
    lastHeartbeatAt: NOW + 5,
    registeredAt: NOW,
    ...over,
  };
}

const edge = (parent: PayloadId, child: PayloadId, operation: string, role: string, p = [1, 2, 3]) =>
  ({ parent, child, operation, role, parameters: Uint8Array.from(p) }) satisfies LineageEdge;

const edgeKey = (e: LineageEdge) => `${e.parent}|${e.child}|${e.operation}|${e.role}`;
const byKey = (edges: readonly LineageEdge[]) =>
  [...edges].sort((a, b) => edgeKey(a).localeCompare(edgeKey(b)));
const sorted = <T>(xs: readonly T[]) => [...xs].sort();
const isPlainBytes = (b: Uint8Array) => Object.getPrototypeOf(b) === Uint8Array.prototype;
const tick = () => new Promise<void>((r) => setImmediate(r));

const streamKey = (name: string, namespace = "", tenant = "ns-a"): StreamKey => ({ tenant, namespace, name });
const newStream = (key: StreamKey, retentionMaxEntries = 0, retentionMaxAgeSec = 0) => ({
  key,
  retentionMaxEntries,
  retentionMaxAgeSec,
  createdAt: NOW,
});
/** Entries numbered from `from`, appended at NOW + offset ms unless told otherwise. */
const entries = (from: number, n: number, over: (o: number) => Partial<StreamEntry> = () => ({})) =>
  Array.from(
    { length: n },
    (_, i): StreamEntry => ({
      offset: from + i,
      payloadId: id(100 + from + i),
      eventTime: undefined,
      appendTime: NOW + from + i,
      durationNs: 0,
      tags: {},
      ...over(from + i),
    }),
  );

/**
 * The behaviour every Catalog adapter must have, as one vitest suite. `makeCatalog` is called
 * before each test and must return an empty catalog; `cleanup` runs after it.
 */
export function catalogContract(name: string, makeCatalog: () => Promise<CatalogFixture>): void {
  describe(`Catalog contract: ${name}`, () => {
    let fixture: CatalogFixture;
    let catalog: Catalog;
    const tx = <T>(fn: (t: CatalogTx) => Promise<T>) => catalog.transaction(fn);
    const seed = (...ps: Payload[]) =>
      tx(async (t) => {
        for (const p of ps) await t.insertPayload(p);
      });

    beforeEach(async () => {
      fixture = await makeCatalog();
      catalog = fixture.catalog;
    });
    afterEach(async () => {
      await fixture.cleanup();
    });

    it("answers ping", async () => {
      await expect(catalog.ping()).resolves.toBeUndefined();
    });

    describe("payloads", () => {
      it.each([
        ["gpu", placements.gpu(), placements.ram()],
        ["ram", placements.ram(), placements.disk()],
        ["disk", placements.disk(), placements.object()],
        ["object", placements.object(), placements.gpu("agent-9")],
      ] as const)("round-trips every field with a %s placement", async (_kind, placement, pending) => {
        const p = payload(1, {
          namespace: "tenant/ü",
          sizeBytes: 128 * GiB,
          state: "SPILLING",
          version: 7,
          placement,
          pendingPlacement: pending,
          createdAt: NOW - 1,
          updatedAt: NOW + 2,
          expiresAt: NOW + 3_600_000,
          lastAccessAt: NOW + 3,
          noEvict: true,
          evictionPolicy: {
            priority: "HIGH",
            requireDurable: true,
            spillTarget: "VOID",
            minResidencyTier: "DISK",
          },
          checksum: "sha256:00ff",
        });
        await seed(p);
        const got = await tx((t) => t.getPayload(p.id));
        expect(got).toStrictEqual(p);
        expect(await tx((t) => t.lockPayload(p.id))).toStrictEqual(p);
        for (const pl of [got!.placement, got!.pendingPlacement!]) {
          if (pl.location.kind === "gpu") {
            expect(isPlainBytes(pl.location.ipcHandle)).toBe(true);
            expect([...pl.location.ipcHandle]).toEqual([...ipcHandle(7)]);
          }
        }
      });

      it("keeps unset optional fields undefined", async () => {
        const p = payload(1, {
          evictionPolicy: {
            priority: "LOW",
            requireDurable: false,
            spillTarget: undefined,
            minResidencyTier: undefined,
          },
        });
        await seed(p);
        const got = await tx((t) => t.getPayload(p.id));
        expect(got).toStrictEqual(p);
        expect(got!.pendingPlacement).toBeUndefined();
        expect(got!.expiresAt).toBeUndefined();
        expect(got!.checksum).toBeUndefined();
        expect(got!.evictionPolicy.spillTarget).toBeUndefined();
        expect(got!.evictionPolicy.minResidencyTier).toBeUndefined();
      });

      it("answers undefined for an unknown id", async () => {
        expect(await tx((t) => t.getPayload(id(404)))).toBeUndefined();
        expect(await tx((t) => t.lockPayload(id(404)))).toBeUndefined();
      });

      it("refuses a duplicate insert", async () => {
        await seed(payload(1));
        await expect(seed(payload(1, { namespace: "other" }))).rejects.toThrow();
        expect((await tx((t) => t.getPayload(id(1))))!.namespace).toBe("ns-a");
      });

      it("updates every field, including clearing optional ones", async () => {
        const before = payload(1, {
          placement: placements.gpu(),
          pendingPlacement: placements.ram(),
          expiresAt: NOW + 10,
          checksum: "crc32c:1234",
        });
        await seed(before);
        const after = payload(1, {
          namespace: "ns-a",
          state: "DURABLE",
          version: 3,
          sizeBytes: before.sizeBytes,
          placement: placements.disk(),
          pendingPlacement: undefined,
          updatedAt: NOW + 50,
          expiresAt: undefined,
          lastAccessAt: NOW + 40,
          noEvict: true,
          evictionPolicy: {
            priority: "NEVER",
            requireDurable: true,
            spillTarget: "OBJECT",
            minResidencyTier: "RAM",
          },
          checksum: undefined,
        });
        await tx((t) => t.updatePayload(after));
        expect(await tx((t) => t.getPayload(id(1)))).toStrictEqual(after);
      });

      it("compare-and-sets a payload on version, state and updatedAt", async () => {
        await seed(payload(1, { version: 2, updatedAt: NOW + 10 }));
        const expected = { version: 2, state: "ACTIVE" as const, updatedAt: NOW + 10 };
        const next = payload(1, { version: 3, state: "DURABLE", updatedAt: NOW + 20 });
        for (const stale of [
          { ...expected, version: 1 },
          { ...expected, state: "ALLOCATED" as const },
          { ...expected, updatedAt: NOW + 11 },
        ]) {
          expect(await tx((t) => t.updatePayloadIf(next, stale))).toBe(false);
        }
        expect(await tx((t) => t.getPayload(id(1)))).toStrictEqual(
          payload(1, { version: 2, updatedAt: NOW + 10 }),
        );
        expect(await tx((t) => t.updatePayloadIf(next, expected))).toBe(true);
        expect(await tx((t) => t.getPayload(id(1)))).toStrictEqual(next);
        expect(await tx((t) => t.updatePayloadIf(next, expected))).toBe(false);
        expect(await tx((t) => t.updatePayloadIf(payload(2), expected))).toBe(false);
      });

      it("refuses to update a payload that does not exist", async () => {
        await expect(tx((t) => t.updatePayload(payload(1)))).rejects.toThrow();
        expect(await tx((t) => t.getPayload(id(1)))).toBeUndefined();
      });

      it("deletes a payload with its leases, pin, metadata, events and lineage, and nothing else", async () => {
        await seed(payload(1), payload(2), payload(3));
        await tx(async (t) => {
          await t.insertLease(lease(1, id(1)));
          await t.insertLease(lease(2, id(2)));
          await t.putPin({ payloadId: id(1), expiresAt: undefined });
          await t.putPin({ payloadId: id(2), expiresAt: undefined });
          await t.putMetadata({ payloadId: id(1), data: Uint8Array.of(1), schema: "s", updatedAt: NOW });
          await t.putMetadata({ payloadId: id(2), data: Uint8Array.of(2), schema: "s", updatedAt: NOW });
          for (const p of [id(1), id(2)]) {
            await t.appendMetadataEvent({
              payloadId: p,
              ts: NOW,
              data: Uint8Array.of(9),
              schema: "s",
              source: "test",
              version: "1",
            });
          }
          await t.addLineage([
            edge(id(1), id(2), "op", "in"),
            edge(id(3), id(1), "op", "in"),
            edge(id(3), id(2), "op", "in"),
          ]);
          await t.addRetiredRegion({
            id: "retired-1",
            payloadId: id(1),
            version: 1,
            placement: placements.ram(),
            retiredAt: NOW,
          });
        });

        await tx((t) => t.deletePayload(id(1)));

        await tx(async (t) => {
          expect(await t.getPayload(id(1))).toBeUndefined();
          expect(await t.getLease(leaseId(1))).toBeUndefined();
          expect(await t.getPin(id(1))).toBeUndefined();
          expect(await t.getMetadata(id(1))).toBeUndefined();
          const q = { limit: 10, beforeSeq: undefined, since: undefined, until: undefined };
          expect(await t.listMetadataEvents({ ...q, payloadId: id(1) })).toEqual([]);
          expect(await t.lineageEdges([id(1)], true)).toEqual([]);
          expect(await t.lineageEdges([id(1)], false)).toEqual([]);
          // The neighbours keep theirs.
          expect(await t.getPayload(id(2))).toBeDefined();
          expect(await t.getLease(leaseId(2))).toBeDefined();
          expect(await t.getPin(id(2))).toBeDefined();
          expect(await t.getMetadata(id(2))).toBeDefined();
          expect(await t.listMetadataEvents({ ...q, payloadId: id(2) })).toHaveLength(1);
          expect(await t.lineageEdges([id(2)], true)).toStrictEqual([edge(id(3), id(2), "op", "in")]);
          // A retired region outlives its payload: its bytes still have to be freed.
          expect((await t.listRetiredRegions(10)).map((r) => r.id)).toEqual(["retired-1"]);
        });
      });

      it("treats deleting an unknown payload as a no-op", async () => {
        await seed(payload(1));
        await tx((t) => t.deletePayload(id(404)));
        expect(await tx((t) => t.getPayload(id(1)))).toBeDefined();
      });
    });

    describe("listPayloads", () => {
      const q = {
        namespace: "ns-a",
        tier: undefined,
        state: undefined,
        limit: 100,
        after: undefined,
        now: NOW,
      } as const;
      const list = (over: Partial<typeof q> | Record<string, unknown> = {}) =>
        tx((t) => t.listPayloads({ ...q, ...over }));
      const ids = (r: { items: { payload: Payload }[] }) => r.items.map((i) => i.payload.id);

      it("lists only the namespace's payloads, newest first, ties broken by id descending", async () => {
        await seed(
          payload(1, { createdAt: NOW + 10 }),
          payload(2, { createdAt: NOW + 30 }),
          payload(3, { createdAt: NOW + 20 }),
          payload(4, { createdAt: NOW + 20 }),
          payload(5, { createdAt: NOW + 20 }),
          payload(6, { createdAt: NOW + 99, namespace: "ns-b" }),
          payload(0x10, { createdAt: NOW + 20 }),
        );
        const all = await list();
        expect(ids(all)).toEqual([id(2), id(0x10), id(5), id(4), id(3), id(1)]);
        expect(all.total).toBe(6);
        expect(all.items[0]!.payload).toStrictEqual(payload(2, { createdAt: NOW + 30 }));
        const other = await list({ namespace: "ns-b" });
        expect(ids(other)).toEqual([id(6)]);
        expect(other.total).toBe(1);
        expect(await list({ namespace: "ns-none" })).toEqual({ items: [], total: 0 });
      });

      it("filters by tier and state, and counts the total under the filter", async () => {
        await seed(
          payload(1, { placement: placements.gpu(), state: "ACTIVE", createdAt: NOW + 1 }),
          payload(2, { placement: placements.gpu(), state: "ALLOCATED", createdAt: NOW + 2 }),
          payload(3, { placement: placements.disk(), state: "DURABLE", createdAt: NOW + 3 }),
          payload(4, { placement: placements.ram(), state: "ACTIVE", createdAt: NOW + 4 }),
          payload(5, { placement: placements.gpu(), state: "ACTIVE", createdAt: NOW + 5, namespace: "ns-b" }),
        );
        const gpu = await list({ tier: "GPU" });
        expect(ids(gpu)).toEqual([id(2), id(1)]);
        expect(gpu.total).toBe(2);
        const active = await list({ state: "ACTIVE" });
        expect(ids(active)).toEqual([id(4), id(1)]);
        expect(active.total).toBe(2);
        const both = await list({ tier: "GPU", state: "ACTIVE" });
        expect(ids(both)).toEqual([id(1)]);
        expect(both.total).toBe(1);
        expect((await list({ tier: "OBJECT" })).total).toBe(0);
      });

      it("pages with the keyset cursor and keeps the total of the whole listing", async () => {
        const created = [5, 5, 5, 4, 4, 3, 2, 2, 1];
        await seed(...created.map((c, i) => payload(i + 1, { createdAt: NOW + c })));
        const everything = ids(await list());
        expect(everything).toHaveLength(created.length);

        const paged: PayloadId[] = [];
        let after: { createdAt: number; id: string } | undefined;
        for (let page = 0; page < 10; page++) {
          const r = await list({ limit: 2, after });
          expect(r.total).toBe(created.length);
          expect(r.items.length).toBeLessThanOrEqual(2);
          if (r.items.length === 0) break;
          paged.push(...ids(r));
          const last = r.items[r.items.length - 1]!.payload;
          after = { createdAt: last.createdAt, id: last.id };
        }
        expect(paged).toEqual(everything);

        // A cursor in the middle of a tie continues with the smaller ids of the same instant.
        const r = await list({ after: { createdAt: NOW + 5, id: id(2) } });
        expect(ids(r)).toEqual(everything.slice(everything.indexOf(id(2)) + 1));
        expect(ids(r)[0]).toBe(id(1));
      });

      it("counts only the leases that are live at `now` (revoked ones included)", async () => {
        await seed(payload(1, { createdAt: NOW + 2 }), payload(2, { createdAt: NOW + 1 }));
        await tx(async (t) => {
          await t.insertLease(lease(1, id(1), { expiresAt: NOW + 1 }));
          await t.insertLease(lease(2, id(1), { expiresAt: NOW + 1, revoked: true }));
          await t.insertLease(lease(3, id(1), { expiresAt: NOW }));
          await t.insertLease(lease(4, id(1), { expiresAt: NOW - 100 }));
          await t.insertLease(lease(5, id(2), { expiresAt: NOW - 1 }));
        });
        const r = await list();
        expect(r.items.map((i) => [i.payload.id, i.liveLeases])).toEqual([
          [id(1), 2],
          [id(2), 0],
        ]);
        const later = await list({ now: NOW + 1 });
        expect(later.items.map((i) => i.liveLeases)).toEqual([0, 0]);
      });
    });

    describe("leases", () => {
      it("round-trips, updates and deletes a lease", async () => {
        await seed(payload(1));
        const l = lease(1, id(1), { version: 4, createdAt: NOW + 1, expiresAt: NOW + 120_000 });
        await tx((t) => t.insertLease(l));
        expect(await tx((t) => t.getLease(l.id))).toStrictEqual(l);
        const renewed = { ...l, expiresAt: NOW + 240_000, revoked: true };
        await tx((t) => t.updateLease(renewed));
        expect(await tx((t) => t.getLease(l.id))).toStrictEqual(renewed);
        expect(await tx((t) => t.deleteLease(l.id))).toBe(true);
        expect(await tx((t) => t.deleteLease(l.id))).toBe(false);
        expect(await tx((t) => t.getLease(l.id))).toBeUndefined();
        // A lease released concurrently stays released: updating it does not bring it back.
        await tx((t) => t.updateLease(renewed));
        expect(await tx((t) => t.getLease(l.id))).toBeUndefined();
      });

      it("lists the payload's unexpired leases, revoked ones included", async () => {
        await seed(payload(1), payload(2));
        const live = lease(1, id(1), { expiresAt: NOW + 1 });
        const revoked = lease(2, id(1), { expiresAt: NOW + 50, revoked: true, createdAt: NOW + 1 });
        await tx(async (t) => {
          await t.insertLease(live);
          await t.insertLease(revoked);
          await t.insertLease(lease(3, id(1), { expiresAt: NOW }));
          await t.insertLease(lease(4, id(2), { expiresAt: NOW + 100 }));
        });
        const got = await tx((t) => t.liveLeases(id(1), NOW));
        expect(got.sort((a, b) => a.id.localeCompare(b.id))).toStrictEqual([live, revoked]);
        expect(await tx((t) => t.liveLeases(id(1), NOW + 1))).toStrictEqual([revoked]);
        expect(await tx((t) => t.liveLeases(id(404), NOW))).toEqual([]);
      });

      it("sweeps expired leases in batches of at most `limit`", async () => {
        await seed(payload(1));
        await tx(async (t) => {
          for (let i = 1; i <= 5; i++) await t.insertLease(lease(i, id(1), { expiresAt: NOW - i }));
          await t.insertLease(lease(6, id(1), { expiresAt: NOW }));
          await t.insertLease(lease(7, id(1), { expiresAt: NOW + 1 }));
        });
        expect(await tx((t) => t.deleteExpiredLeases(NOW, 4))).toBe(4);
        expect(await tx((t) => t.deleteExpiredLeases(NOW, 4))).toBe(2);
        expect(await tx((t) => t.deleteExpiredLeases(NOW, 4))).toBe(0);
        expect(await tx((t) => t.getLease(leaseId(7)))).toBeDefined();
        for (let i = 1; i <= 6; i++) expect(await tx((t) => t.getLease(leaseId(i)))).toBeUndefined();
      });
    });

    describe("grantLease / releaseLease (the lease hot path)", () => {
      const READABLE = ["ACTIVE", "SPILLING", "DURABLE"] as const;
      const grant = (n: number, payloadId: PayloadId, over: Partial<LeaseGrantRequest> = {}) =>
        catalog.grantLease({
          leaseId: leaseId(n),
          payloadId,
          namespace: "ns-a",
          now: NOW + 5_000,
          expiresAt: NOW + 25_000,
          states: READABLE,
          tiers: STORAGE_TIERS,
          touchIfAccessedAtOrBefore: NOW + 4_000,
          ...over,
        });

      it("grants a lease at the payload's version, stores it and bumps a stale access time", async () => {
        await seed(payload(1, { version: 7 }));
        const got = await grant(1, id(1));
        const expected = lease(1, id(1), { version: 7, createdAt: NOW + 5_000, expiresAt: NOW + 25_000 });
        expect(got.lease).toStrictEqual(expected);
        expect(got.payload).toStrictEqual(payload(1, { version: 7, lastAccessAt: NOW + 5_000 }));
        expect(await tx((t) => t.getLease(leaseId(1)))).toStrictEqual(expected);
        expect((await tx((t) => t.getPayload(id(1))))!.lastAccessAt).toBe(NOW + 5_000);
      });

      it("leaves a recent access time alone", async () => {
        await seed(payload(1, { lastAccessAt: NOW + 4_500 }));
        const got = await grant(1, id(1));
        expect(got.lease).toBeDefined();
        expect(got.payload!.lastAccessAt).toBe(NOW + 4_500);
        expect((await tx((t) => t.getPayload(id(1))))!.lastAccessAt).toBe(NOW + 4_500);
      });

      it("reports an unknown payload, or one of another namespace, as absent and stores nothing", async () => {
        await seed(payload(1, { namespace: "ns-b" }));
        expect(await grant(1, id(1))).toStrictEqual({ payload: undefined, lease: undefined });
        expect(await grant(2, id(404))).toStrictEqual({ payload: undefined, lease: undefined });
        expect(await tx((t) => t.liveLeases(id(1), NOW))).toEqual([]);
        expect((await tx((t) => t.getPayload(id(1))))!.lastAccessAt).toBe(NOW);
      });

      it("refuses a state or a tier outside the request's lists, returning the payload as it is", async () => {
        await seed(payload(1, { state: "ALLOCATED" }), payload(2, { placement: placements.disk() }));
        expect(await grant(1, id(1))).toStrictEqual({
          payload: payload(1, { state: "ALLOCATED" }),
          lease: undefined,
        });
        const slow = await grant(2, id(2), { tiers: ["GPU", "RAM"] });
        expect(slow).toStrictEqual({
          payload: payload(2, { placement: placements.disk() }),
          lease: undefined,
        });
        expect(await tx((t) => t.getLease(leaseId(1)))).toBeUndefined();
        expect(await tx((t) => t.getLease(leaseId(2)))).toBeUndefined();
        expect((await tx((t) => t.getPayload(id(2))))!.lastAccessAt).toBe(NOW);
      });

      it("gives each of many concurrent calls its own outcome", async () => {
        await seed(payload(1), payload(2, { version: 3 }), payload(3, { state: "DELETING" }));
        const targets = Array.from({ length: 60 }, (_, i) => [id(1), id(2), id(3), id(404)][i % 4]!);
        const got = await Promise.all(targets.map((p, i) => grant(i + 1, p)));
        got.forEach((g, i) => {
          const p = targets[i]!;
          if (p === id(404)) expect(g.payload).toBeUndefined();
          else expect(g.payload!.id).toBe(p);
          expect(g.lease?.id).toBe(p === id(1) || p === id(2) ? leaseId(i + 1) : undefined);
          if (g.lease) expect(g.lease.version).toBe(p === id(2) ? 3 : 1);
        });
        expect(await tx((t) => t.liveLeases(id(1), NOW))).toHaveLength(15);
        expect(await tx((t) => t.liveLeases(id(2), NOW))).toHaveLength(15);
        expect(await tx((t) => t.liveLeases(id(3), NOW))).toHaveLength(0);
        // Concurrent releases, each told what it removed; a second release finds nothing.
        const released = await Promise.all(got.map((_, i) => catalog.releaseLease(leaseId(i + 1), "ns-a")));
        released.forEach((r, i) => {
          const p = targets[i]!;
          expect(r).toStrictEqual(
            p === id(1) || p === id(2) ? { payloadId: p, payloadState: "ACTIVE" } : undefined,
          );
        });
        expect(await tx((t) => t.liveLeases(id(1), NOW))).toEqual([]);
        expect(await catalog.releaseLease(leaseId(1), "ns-a")).toBeUndefined();
      });

      it("decides on the payload as a concurrent locked transaction leaves it", async () => {
        await seed(payload(1));
        let granted: Promise<LeaseGrantResult> | undefined;
        await tx(async (t) => {
          const p = await t.lockPayload(id(1));
          granted = grant(1, id(1)); // must wait for this transaction, then see DELETING
          await new Promise((r) => setTimeout(r, 50));
          await t.updatePayload({ ...p!, state: "DELETING", version: 2 });
        });
        const got = await granted!;
        expect(got.lease).toBeUndefined();
        expect(got.payload!.state).toBe("DELETING");
        expect(await tx((t) => t.liveLeases(id(1), NOW))).toEqual([]);
      });

      it("reports the payload's state as a concurrent transaction revoking the lease leaves it", async () => {
        await seed(payload(1));
        await tx((t) => t.insertLease(lease(1, id(1))));
        let released: Promise<LeaseReleaseResult | undefined> | undefined;
        await tx(async (t) => {
          const p = await t.lockPayload(id(1));
          await t.updateLease({ ...lease(1, id(1)), revoked: true }); // as a forced delete does
          released = catalog.releaseLease(leaseId(1), "ns-a");
          await new Promise((r) => setTimeout(r, 50));
          await t.updatePayload({ ...p!, state: "DELETING", version: 2 });
        });
        expect(await released!).toStrictEqual({ payloadId: id(1), payloadState: "DELETING" });
        expect(await tx((t) => t.getLease(leaseId(1)))).toBeUndefined();
      });

      it("releases only in the lease's own namespace and reports the payload's state", async () => {
        await seed(payload(1, { state: "DELETING" }));
        await tx((t) => t.insertLease(lease(1, id(1))));
        expect(await catalog.releaseLease(leaseId(1), "ns-b")).toBeUndefined();
        expect(await tx((t) => t.getLease(leaseId(1)))).toBeDefined();
        expect(await catalog.releaseLease(leaseId(1), "ns-a")).toStrictEqual({
          payloadId: id(1),
          payloadState: "DELETING",
        });
        expect(await tx((t) => t.getLease(leaseId(1)))).toBeUndefined();
      });
    });

    describe("pins", () => {
      it("puts, replaces and deletes a pin", async () => {
        await seed(payload(1));
        expect(await tx((t) => t.getPin(id(1)))).toBeUndefined();
        await tx((t) => t.putPin({ payloadId: id(1), expiresAt: undefined }));
        expect(await tx((t) => t.getPin(id(1)))).toStrictEqual({ payloadId: id(1), expiresAt: undefined });
        await tx((t) => t.putPin({ payloadId: id(1), expiresAt: NOW + 60_000 }));
        expect(await tx((t) => t.getPin(id(1)))).toStrictEqual({ payloadId: id(1), expiresAt: NOW + 60_000 });
        await tx((t) => t.deletePin(id(1)));
        expect(await tx((t) => t.getPin(id(1)))).toBeUndefined();
        await tx((t) => t.deletePin(id(1)));
      });
    });

    describe("metadata", () => {
      it("puts and replaces metadata with exact bytes", async () => {
        await seed(payload(1));
        expect(await tx((t) => t.getMetadata(id(1)))).toBeUndefined();
        const m = {
          payloadId: id(1),
          data: Uint8Array.of(0, 255, 10, 13, 0),
          schema: "pkg.Msg",
          updatedAt: NOW,
        };
        await tx((t) => t.putMetadata(m));
        const got = await tx((t) => t.getMetadata(id(1)));
        expect(got).toStrictEqual(m);
        expect(isPlainBytes(got!.data)).toBe(true);
        const empty = { payloadId: id(1), data: new Uint8Array(), schema: "", updatedAt: NOW + 1 };
        await tx((t) => t.putMetadata(empty));
        expect(await tx((t) => t.getMetadata(id(1)))).toStrictEqual(empty);
      });

      it("numbers events monotonically and lists them newest first with beforeSeq, since and until", async () => {
        await seed(payload(1), payload(2));
        const appended: MetadataEvent[] = [];
        const at = [NOW, NOW, NOW + 10, NOW + 20];
        for (const [i, ts] of at.entries()) {
          appended.push(
            await tx((t) =>
              t.appendMetadataEvent({
                payloadId: id(1),
                ts,
                data: Uint8Array.of(i, 0, 255),
                schema: "pkg.Event",
                source: `src-${i}`,
                version: `v${i}`,
              }),
            ),
          );
          // Another payload's event between them takes a seq too.
          await tx((t) =>
            t.appendMetadataEvent({
              payloadId: id(2),
              ts,
              data: new Uint8Array(),
              schema: "",
              source: "",
              version: "",
            }),
          );
        }
        const seqs = appended.map((e) => e.seq);
        expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
        expect(new Set(seqs).size).toBe(4);
        const [e0, e1, e2, e3] = appended as [MetadataEvent, MetadataEvent, MetadataEvent, MetadataEvent];
        expect(e0).toMatchObject({
          payloadId: id(1),
          ts: NOW,
          schema: "pkg.Event",
          source: "src-0",
          version: "v0",
        });

        const list = (over: Record<string, number | undefined>) =>
          tx((t) =>
            t.listMetadataEvents({
              payloadId: id(1),
              limit: 10,
              beforeSeq: undefined,
              since: undefined,
              until: undefined,
              ...over,
            }),
          );
        expect(await list({})).toStrictEqual([e3, e2, e1, e0]);
        expect(await list({ limit: 2 })).toStrictEqual([e3, e2]);
        expect(await list({ beforeSeq: e2.seq })).toStrictEqual([e1, e0]);
        expect(await list({ since: NOW + 10 })).toStrictEqual([e3, e2]);
        expect(await list({ until: NOW + 20 })).toStrictEqual([e2, e1, e0]);
        expect(await list({ since: NOW, until: NOW + 10 })).toStrictEqual([e1, e0]);
        expect(await list({ beforeSeq: e3.seq, since: NOW + 1, limit: 1 })).toStrictEqual([e2]);
        expect(isPlainBytes((await list({}))[0]!.data)).toBe(true);
      });
    });

    describe("lineage", () => {
      it("keeps each (parent, child, operation, role) once and walks both directions", async () => {
        await seed(payload(1), payload(2), payload(3), payload(4));
        const a = edge(id(1), id(3), "train", "input", [0, 255]);
        const b = edge(id(2), id(3), "train", "input");
        const c = edge(id(1), id(3), "train", "config");
        const d = edge(id(3), id(4), "eval", "input", []);
        await tx((t) => t.addLineage([a, b, { ...a, parameters: Uint8Array.of(9) }]));
        await tx((t) => t.addLineage([c, d, b]));
        await tx((t) => t.addLineage([]));

        expect(byKey(await tx((t) => t.lineageEdges([id(3)], true)))).toStrictEqual(byKey([a, b, c]));
        expect(byKey(await tx((t) => t.lineageEdges([id(1)], false)))).toStrictEqual(byKey([a, c]));
        expect(byKey(await tx((t) => t.lineageEdges([id(3)], false)))).toStrictEqual([d]);
        expect(byKey(await tx((t) => t.lineageEdges([id(3), id(4)], true)))).toStrictEqual(
          byKey([a, b, c, d]),
        );
        expect(byKey(await tx((t) => t.lineageEdges([id(1), id(2)], false)))).toStrictEqual(byKey([a, b, c]));
        expect(await tx((t) => t.lineageEdges([id(4)], false))).toEqual([]);
        expect(await tx((t) => t.lineageEdges([], true))).toEqual([]);
        // The first copy of a duplicate edge wins.
        const kept = (await tx((t) => t.lineageEdges([id(1)], false))).find((e) => e.role === "input")!;
        expect([...kept.parameters]).toEqual([0, 255]);
        expect(isPlainBytes(kept.parameters)).toBe(true);
      });
    });

    describe("agents", () => {
      it("upserts, reads and lists agents by id", async () => {
        expect(await tx((t) => t.getAgent("agent-b"))).toBeUndefined();
        await tx(async (t) => {
          await t.upsertAgent(agent("agent-b"));
          await t.upsertAgent(agent("agent-a", { tiers: [] }));
          await t.upsertAgent(agent("agent-c"));
        });
        expect(await tx((t) => t.getAgent("agent-b"))).toStrictEqual(agent("agent-b"));
        const updated = agent("agent-b", {
          endpoint: "http://10.0.0.2:7070",
          tiers: [
            { tier: "DISK", capacityBytes: 4096 * GiB, usedBytes: 1, highWatermark: 0.95, lowWatermark: 0.8 },
          ],
          lastHeartbeatAt: NOW + 99,
        });
        await tx((t) => t.upsertAgent(updated));
        expect(await tx((t) => t.getAgent("agent-b"))).toStrictEqual(updated);
        expect(await tx((t) => t.listAgents())).toStrictEqual([
          agent("agent-a", { tiers: [] }),
          updated,
          agent("agent-c"),
        ]);
      });

      it("reports placements, pending placements and retired regions on an agent", async () => {
        await seed(
          payload(1, { placement: placements.ram("agent-1") }),
          payload(2, { placement: placements.gpu("agent-2"), pendingPlacement: placements.disk("agent-1") }),
          payload(3, { placement: placements.object(), pendingPlacement: placements.gpu("agent-2") }),
          payload(4, { placement: placements.gpu("agent-1"), pendingPlacement: placements.ram("agent-1") }),
        );
        await tx((t) =>
          t.addRetiredRegion({
            id: "r-1",
            payloadId: id(5),
            version: 2,
            placement: placements.gpu("agent-1"),
            retiredAt: NOW,
          }),
        );
        const on = async (agentId: string) =>
          sorted((await tx((t) => t.placementsOnAgent(agentId))).map((x) => `${x.payloadId}@${x.tier}`));
        expect(await on("agent-1")).toEqual(
          sorted([`${id(1)}@RAM`, `${id(2)}@DISK`, `${id(4)}@GPU`, `${id(4)}@RAM`, `${id(5)}@GPU`]),
        );
        expect(await on("agent-2")).toEqual(sorted([`${id(2)}@GPU`, `${id(3)}@GPU`]));
        expect(await on("agent-404")).toEqual([]);
      });
    });

    describe("tierStats", () => {
      it("counts payloads and bytes per tier, per namespace or overall, without DELETING ones", async () => {
        await seed(
          payload(1, { placement: placements.gpu(), sizeBytes: 3 * GiB }),
          payload(2, { placement: placements.gpu(), sizeBytes: 5 * GiB, state: "ALLOCATED" }),
          payload(3, { placement: placements.gpu(), sizeBytes: 7 * GiB, state: "DELETING" }),
          payload(4, { placement: placements.disk(), sizeBytes: 100 * GiB, state: "EXPIRED" }),
          payload(5, { placement: placements.disk(), sizeBytes: 11, namespace: "ns-b" }),
          payload(6, { placement: placements.ram(), sizeBytes: 13, namespace: "ns-b", state: "SPILLING" }),
        );
        expect(await tx((t) => t.tierStats("ns-a"))).toStrictEqual([
          { tier: "GPU", payloads: 2, bytes: 8 * GiB },
          { tier: "RAM", payloads: 0, bytes: 0 },
          { tier: "DISK", payloads: 1, bytes: 100 * GiB },
          { tier: "OBJECT", payloads: 0, bytes: 0 },
        ]);
        expect(await tx((t) => t.tierStats(undefined))).toStrictEqual([
          { tier: "GPU", payloads: 2, bytes: 8 * GiB },
          { tier: "RAM", payloads: 1, bytes: 13 },
          { tier: "DISK", payloads: 2, bytes: 100 * GiB + 11 },
          { tier: "OBJECT", payloads: 0, bytes: 0 },
        ]);
        expect((await tx((t) => t.tierStats("ns-none"))).map((s) => s.tier)).toEqual(STORAGE_TIERS);
      });
    });

    describe("sweep queries", () => {
      it("finds payloads whose TTL passed and that are not being deleted yet", async () => {
        await seed(
          payload(1, { expiresAt: NOW - 10 }),
          payload(2, { expiresAt: NOW }),
          payload(3, { expiresAt: NOW + 1 }),
          payload(4, { expiresAt: undefined }),
          payload(5, { expiresAt: NOW - 5, state: "DELETING" }),
          payload(6, { expiresAt: NOW - 5, state: "EXPIRED" }),
          payload(7, { expiresAt: NOW - 5, state: "ALLOCATED", namespace: "ns-b" }),
        );
        expect(sorted(await tx((t) => t.findExpired(NOW, 100)))).toEqual([id(1), id(2), id(7)]);
        const two = await tx((t) => t.findExpired(NOW, 2));
        expect(two).toHaveLength(2);
        for (const x of two) expect([id(1), id(2), id(7)]).toContain(x);
      });

      it("finds never-committed allocations created at or before the cutoff", async () => {
        await seed(
          payload(1, { state: "ALLOCATED", createdAt: NOW - 10 }),
          payload(2, { state: "ALLOCATED", createdAt: NOW }),
          payload(3, { state: "ALLOCATED", createdAt: NOW + 1 }),
          payload(4, { state: "ACTIVE", createdAt: NOW - 10 }),
          payload(5, { state: "DELETING", createdAt: NOW - 10 }),
        );
        // The boundary follows the reference adapter (MemoryCatalog): createdAt <= createdBefore.
        expect(sorted(await tx((t) => t.findAbandoned(NOW, 100)))).toEqual([id(1), id(2)]);
        expect(await tx((t) => t.findAbandoned(NOW, 1))).toHaveLength(1);
      });

      it("finds payloads waiting for their bytes to be freed", async () => {
        await seed(
          payload(1, { state: "DELETING" }),
          payload(2, { state: "EXPIRED" }),
          payload(3, { state: "ACTIVE" }),
          payload(4, { state: "SPILLING" }),
        );
        expect(sorted(await tx((t) => t.findDeleting(100)))).toEqual([id(1), id(2)]);
        expect(await tx((t) => t.findDeleting(1))).toHaveLength(1);
      });

      it("finds moves stuck SPILLING since at or before the cutoff, oldest first", async () => {
        await seed(
          payload(1, { state: "SPILLING", updatedAt: NOW - 5, pendingPlacement: placements.disk() }),
          payload(2, { state: "SPILLING", updatedAt: NOW - 10 }),
          payload(3, { state: "SPILLING", updatedAt: NOW }),
          payload(4, { state: "SPILLING", updatedAt: NOW + 1 }),
          payload(5, { state: "ACTIVE", updatedAt: NOW - 10 }),
          payload(6, { state: "DELETING", updatedAt: NOW - 10 }),
        );
        expect(await tx((t) => t.findStuckMoves(NOW, 100))).toEqual([id(2), id(1), id(3)]);
        expect(await tx((t) => t.findStuckMoves(NOW, 1))).toEqual([id(2)]);
      });
    });

    describe("retired regions", () => {
      it("adds, lists (oldest first, bounded) and deletes retired regions", async () => {
        const regions: RetiredRegion[] = [
          { id: "r-1", payloadId: id(1), version: 3, placement: placements.gpu(), retiredAt: NOW },
          { id: "r-2", payloadId: id(1), version: 5, placement: placements.disk(), retiredAt: NOW + 1 },
          { id: "r-3", payloadId: id(2), version: 1, placement: placements.object(), retiredAt: NOW + 2 },
        ];
        await tx(async (t) => {
          for (const r of regions) await t.addRetiredRegion(r);
        });
        const all = await tx((t) => t.listRetiredRegions(10));
        expect(all).toStrictEqual(regions);
        const gpu = all[0]!.placement.location;
        expect(gpu.kind === "gpu" && isPlainBytes(gpu.ipcHandle)).toBe(true);
        expect(await tx((t) => t.listRetiredRegions(2))).toStrictEqual(regions.slice(0, 2));
        await tx((t) => t.deleteRetiredRegion("r-1"));
        await tx((t) => t.deleteRetiredRegion("r-404"));
        expect((await tx((t) => t.listRetiredRegions(10))).map((r) => r.id)).toEqual(["r-2", "r-3"]);
      });
    });

    describe("streams", () => {
      const create = (key: StreamKey, maxEntries = 0, maxAgeSec = 0) =>
        tx((t) => t.createStream(newStream(key, maxEntries, maxAgeSec)));
      const append = (key: StreamKey, n: number, over?: (o: number) => Partial<StreamEntry>) =>
        tx(async (t) => {
          const s = await t.lockStream(key);
          await t.appendStreamEntries(s!.id, entries(s!.nextOffset, n, over));
        });
      const readAll = (streamId: number) =>
        tx((t) =>
          t.readStreamEntries({
            streamId,
            fromOffset: 0,
            toOffset: undefined,
            appendedSince: undefined,
            limit: 100_000,
          }),
        );

      it("creates a stream once per (tenant, namespace, name) and reads it back", async () => {
        const key = streamKey("cams/front", "");
        const s = await create(key, 10, 3600);
        expect(s).toEqual({
          id: expect.any(Number),
          key,
          retentionMaxEntries: 10,
          retentionMaxAgeSec: 3600,
          createdAt: NOW,
          nextOffset: 0,
        });
        expect(await tx((t) => t.getStream(key))).toEqual(s);
        expect(await tx((t) => t.lockStream(key))).toEqual(s);
        expect(await create(key)).toBeUndefined();
        // The same name in another namespace or another tenant is another stream.
        const others = [streamKey("cams/front", "prod"), streamKey("cams/front", "", "ns-b")];
        for (const k of others) expect((await create(k))?.key).toEqual(k);
        expect(await tx((t) => t.getStream(streamKey("cams/front", "", "ns-c")))).toBeUndefined();
        expect(await tx((t) => t.getStream(streamKey("cams/back")))).toBeUndefined();
        const ids = await Promise.all([key, ...others].map((k) => tx((t) => t.getStream(k))));
        expect(new Set(ids.map((x) => x!.id)).size).toBe(3);
      });

      it("keeps names with unicode, slashes and quotes intact", async () => {
        const key = streamKey(`a/b "c" ä ü 🎥 '; --`, "env/x_y", "t_1-2");
        await create(key);
        expect((await tx((t) => t.getStream(key)))?.key).toEqual(key);
        expect(
          (
            await tx((t) => t.listStreams({ tenant: "t_1-2", namespace: undefined, afterId: 0, limit: 10 }))
          ).map((i) => i.stream.key),
        ).toEqual([key]);
      });

      it("appends entries with every field round-tripped and advances nextOffset", async () => {
        const key = streamKey("s");
        const s = (await create(key))!;
        const first = entries(0, 3, (o) => ({
          eventTime: o === 1 ? undefined : NOW - 5_000 + o,
          durationNs: o === 2 ? Number.MAX_SAFE_INTEGER : 33_333_333,
          tags: o === 0 ? {} : { camera: "front", "ä ü": '🎥 "x"', n: String(o) },
        }));
        await tx(async (t) => {
          await t.lockStream(key);
          await t.appendStreamEntries(s.id, first);
        });
        expect((await tx((t) => t.getStream(key)))!.nextOffset).toBe(3);
        expect(await readAll(s.id)).toStrictEqual(first);
        await append(key, 2);
        expect((await readAll(s.id)).map((e) => e.offset)).toEqual([0, 1, 2, 3, 4]);
        expect((await tx((t) => t.getStream(key)))!.nextOffset).toBe(5);
      });

      it("refuses entries that do not continue at nextOffset, changing nothing", async () => {
        const key = streamKey("s");
        const s = (await create(key))!;
        await append(key, 2);
        for (const bad of [entries(1, 2), entries(3, 1), entries(0, 1)]) {
          await expect(tx((t) => t.appendStreamEntries(s.id, bad))).rejects.toThrow();
        }
        expect((await readAll(s.id)).map((e) => e.offset)).toEqual([0, 1]);
        expect((await tx((t) => t.getStream(key)))!.nextOffset).toBe(2);
      });

      it("reads from an offset, up to an inclusive end, with a limit and an append-time filter", async () => {
        const key = streamKey("s");
        const s = (await create(key))!;
        await append(key, 10);
        const read = (fromOffset: number, toOffset?: number, appendedSince?: number, limit = 100) =>
          tx((t) => t.readStreamEntries({ streamId: s.id, fromOffset, toOffset, appendedSince, limit })).then(
            (es) => es.map((e) => e.offset),
          );
        expect(await read(0)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        expect(await read(7)).toEqual([7, 8, 9]);
        expect(await read(10)).toEqual([]);
        expect(await read(2, 4)).toEqual([2, 3, 4]);
        expect(await read(4, 4)).toEqual([4]);
        expect(await read(0, undefined, undefined, 3)).toEqual([0, 1, 2]);
        expect(await read(0, undefined, NOW + 6)).toEqual([6, 7, 8, 9]);
        expect(await read(0, 8, NOW + 6, 2)).toEqual([6, 7]);
        const other = (await create(streamKey("other")))!;
        expect(
          await tx((t) =>
            t.readStreamEntries({
              streamId: other.id,
              fromOffset: 0,
              toOffset: undefined,
              appendedSince: undefined,
              limit: 10,
            }),
          ),
        ).toEqual([]);
      });

      it("trims the oldest entries and finds the first entry appended since an instant", async () => {
        const key = streamKey("s");
        const s = (await create(key))!;
        await append(key, 6);
        expect(await tx((t) => t.firstStreamOffsetSince(s.id, NOW + 3))).toBe(3);
        expect(await tx((t) => t.firstStreamOffsetSince(s.id, 0))).toBe(0);
        expect(await tx((t) => t.firstStreamOffsetSince(s.id, NOW + 6))).toBeUndefined();
        expect(await tx((t) => t.trimStream(s.id, 4))).toBe(4);
        expect(await tx((t) => t.trimStream(s.id, 4))).toBe(0);
        expect((await readAll(s.id)).map((e) => e.offset)).toEqual([4, 5]);
        expect(await tx((t) => t.firstStreamOffsetSince(s.id, 0))).toBe(4);
        // Offsets are never reused: the next append continues after the trimmed ones.
        await append(key, 1);
        expect((await readAll(s.id)).map((e) => e.offset)).toEqual([4, 5, 6]);
      });

      it("stores, replaces and reads consumer-group checkpoints per stream", async () => {
        const a = (await create(streamKey("a")))!;
        const b = (await create(streamKey("b")))!;
        expect(await tx((t) => t.getStreamCommit(a.id, "g"))).toBeUndefined();
        await tx((t) => t.putStreamCommit(a.id, "g", 5));
        await tx((t) => t.putStreamCommit(a.id, "h ä", 0));
        expect(await tx((t) => t.getStreamCommit(a.id, "g"))).toBe(5);
        await tx((t) => t.putStreamCommit(a.id, "g", 2));
        expect(await tx((t) => t.getStreamCommit(a.id, "g"))).toBe(2);
        expect(await tx((t) => t.getStreamCommit(a.id, "h ä"))).toBe(0);
        expect(await tx((t) => t.getStreamCommit(b.id, "g"))).toBeUndefined();
      });

      it("deletes a stream with its entries and checkpoints; a re-created one starts clean", async () => {
        const key = streamKey("s");
        const old = (await create(key))!;
        await append(key, 3);
        await tx((t) => t.putStreamCommit(old.id, "g", 1));
        const kept = (await create(streamKey("kept")))!;
        await append(streamKey("kept"), 2);
        expect(await tx((t) => t.deleteStream(key))).toBe(true);
        expect(await tx((t) => t.deleteStream(key))).toBe(false);
        expect(await tx((t) => t.getStream(key))).toBeUndefined();
        expect(await readAll(old.id)).toEqual([]);
        expect(await tx((t) => t.getStreamCommit(old.id, "g"))).toBeUndefined();
        const again = (await create(key))!;
        expect(again.id).not.toBe(old.id);
        expect(again.nextOffset).toBe(0);
        expect(await readAll(again.id)).toEqual([]);
        expect(await tx((t) => t.getStreamCommit(again.id, "g"))).toBeUndefined();
        expect((await readAll(kept.id)).map((e) => e.offset)).toEqual([0, 1]);
      });

      it("lists a tenant's streams in creation order with extents, by namespace, in pages", async () => {
        const names = ["a", "b", "c", "d"];
        for (const n of names) await create(streamKey(n, n === "c" ? "prod" : ""));
        await create(streamKey("x", "", "ns-b"));
        await create(streamKey("y", "", "ns-a_")); // a tenant whose name extends ns-a's
        await append(streamKey("b"), 5);
        await append(streamKey("d"), 3);
        const d = (await tx((t) => t.getStream(streamKey("d"))))!;
        await tx((t) => t.trimStream(d.id, 3)); // everything retention-trimmed
        const b = (await tx((t) => t.getStream(streamKey("b"))))!;
        await tx((t) => t.trimStream(b.id, 2));
        const list = (namespace: string | undefined, afterId = 0, limit = 10, tenant = "ns-a") =>
          tx((t) => t.listStreams({ tenant, namespace, afterId, limit }));

        const all = await list(undefined);
        expect(all.map((i) => i.stream.key.name)).toEqual(names);
        expect(all.map((i) => [i.firstOffset, i.lastOffset, i.entryCount])).toEqual([
          [0, 0, 0],
          [2, 4, 3],
          [0, 0, 0],
          [0, 0, 0],
        ]);
        expect(all[1]!.stream.nextOffset).toBe(5);
        expect(all[3]!.stream.nextOffset).toBe(3);
        expect((await list("")).map((i) => i.stream.key.name)).toEqual(["a", "b", "d"]);
        expect((await list("prod")).map((i) => i.stream.key.name)).toEqual(["c"]);
        expect(await list("nope")).toEqual([]);
        expect((await list(undefined, 0, 10, "ns-b")).map((i) => i.stream.key.name)).toEqual(["x"]);
        expect(await list(undefined, 0, 10, "ns-z")).toEqual([]);

        const page1 = await list(undefined, 0, 2);
        const page2 = await list(undefined, page1[1]!.stream.id, 2);
        const page3 = await list(undefined, page2[1]!.stream.id, 2);
        expect([...page1, ...page2].map((i) => i.stream.key.name)).toEqual(names);
        expect(page3).toEqual([]);
      });

      it("finds the streams that have a retention limit, in pages", async () => {
        await create(streamKey("none"));
        const e = (await create(streamKey("entries"), 5))!;
        const a = (await create(streamKey("age", "", "ns-b"), 0, 60))!;
        const both = (await create(streamKey("both"), 1, 1))!;
        expect((await tx((t) => t.streamsWithRetention(0, 10))).map((s) => s.id)).toEqual([
          e.id,
          a.id,
          both.id,
        ]);
        expect((await tx((t) => t.streamsWithRetention(e.id, 1))).map((s) => s.key)).toEqual([a.key]);
        expect(await tx((t) => t.streamsWithRetention(both.id, 10))).toEqual([]);
      });

      it("rolls back an append together with the rest of its transaction", async () => {
        const key = streamKey("s");
        const s = (await create(key))!;
        await append(key, 1);
        await expect(
          tx(async (t) => {
            await t.lockStream(key);
            await t.appendStreamEntries(s.id, entries(1, 2));
            await t.putStreamCommit(s.id, "g", 2);
            throw new Error("boom");
          }),
        ).rejects.toThrow("boom");
        expect((await tx((t) => t.getStream(key)))!.nextOffset).toBe(1);
        expect((await readAll(s.id)).map((e) => e.offset)).toEqual([0]);
        expect(await tx((t) => t.getStreamCommit(s.id, "g"))).toBeUndefined();
      });

      it("gives 8 concurrent appenders x 50 appends of 1-3 items offsets 0..N-1, each exactly once", async () => {
        const key = streamKey("hot");
        const s = (await create(key))!;
        const appenders = 8;
        const rounds = 50;
        const sizeOf = (w: number, r: number) => ((w * 7 + r) % 3) + 1;
        // Each item's payload id says who appended it (appender, round, item) so order can be checked.
        const tag = (w: number, r: number, i: number) => id(1_000_000 + w * 10_000 + r * 10 + i);
        const results = await Promise.all(
          Array.from({ length: appenders }, async (_, w) => {
            const got: number[] = [];
            for (let r = 0; r < rounds; r++) {
              const n = sizeOf(w, r);
              got.push(
                await tx(async (t) => {
                  const locked = await t.lockStream(key);
                  await tick(); // let every other appender reach its lock here
                  const from = locked!.nextOffset;
                  await t.appendStreamEntries(
                    locked!.id,
                    entries(from, n, (o) => ({ payloadId: tag(w, r, o - from) })),
                  );
                  return from;
                }),
              );
            }
            return got;
          }),
        );
        const total = Array.from({ length: appenders }, (_, w) =>
          Array.from({ length: rounds }, (_, r) => sizeOf(w, r)).reduce((a, b) => a + b, 0),
        ).reduce((a, b) => a + b, 0);
        const all = await readAll(s.id);
        expect(all.map((e) => e.offset)).toEqual(Array.from({ length: total }, (_, i) => i));
        expect((await tx((t) => t.getStream(key)))!.nextOffset).toBe(total);
        // Each append's items sit together, in order, at the offsets that append was given.
        const byOffset = new Map(all.map((e) => [e.offset, e.payloadId]));
        results.forEach((froms, w) => {
          froms.forEach((from, r) => {
            for (let i = 0; i < sizeOf(w, r); i++) expect(byOffset.get(from + i)).toBe(tag(w, r, i));
          });
        });
        expect(new Set(results.flat()).size).toBe(appenders * rounds);
      });
    });

    describe("transactions", () => {
      it("returns the callback's value and lets it read its own writes", async () => {
        const out = await tx(async (t) => {
          await t.insertPayload(payload(1));
          return (await t.getPayload(id(1)))?.id;
        });
        expect(out).toBe(id(1));
      });

      it("rolls back every write when the callback throws, and rethrows that error", async () => {
        await seed(payload(1), payload(2));
        await tx((t) => t.insertLease(lease(1, id(2))));
        const boom = new DomainError("LEASE_CONFLICT", "boom");
        const attempt = tx(async (t) => {
          await t.insertPayload(payload(3));
          await t.updatePayload(payload(1, { version: 99, state: "DELETING" }));
          await t.deletePayload(id(2));
          await t.insertLease(lease(2, id(1)));
          await t.putPin({ payloadId: id(1), expiresAt: undefined });
          await t.putMetadata({ payloadId: id(1), data: Uint8Array.of(1), schema: "s", updatedAt: NOW });
          await t.appendMetadataEvent({
            payloadId: id(1),
            ts: NOW,
            data: Uint8Array.of(1),
            schema: "s",
            source: "",
            version: "",
          });
          await t.addLineage([edge(id(1), id(3), "op", "in")]);
          await t.upsertAgent(agent("agent-1"));
          await t.addRetiredRegion({
            id: "r-1",
            payloadId: id(1),
            version: 1,
            placement: placements.ram(),
            retiredAt: NOW,
          });
          expect(await t.getPayload(id(3))).toBeDefined();
          throw boom;
        });
        await expect(attempt).rejects.toBe(boom);

        await tx(async (t) => {
          expect(await t.getPayload(id(3))).toBeUndefined();
          expect(await t.getPayload(id(1))).toStrictEqual(payload(1));
          expect(await t.getPayload(id(2))).toStrictEqual(payload(2));
          expect(await t.getLease(leaseId(1))).toBeDefined();
          expect(await t.getLease(leaseId(2))).toBeUndefined();
          expect(await t.getPin(id(1))).toBeUndefined();
          expect(await t.getMetadata(id(1))).toBeUndefined();
          expect(
            await t.listMetadataEvents({
              payloadId: id(1),
              limit: 10,
              beforeSeq: undefined,
              since: undefined,
              until: undefined,
            }),
          ).toEqual([]);
          expect(await t.lineageEdges([id(1)], false)).toEqual([]);
          expect(await t.listAgents()).toEqual([]);
          expect(await t.listRetiredRegions(10)).toEqual([]);
        });
      });

      it("runs single reads and writes with autocommit", async () => {
        await catalog.autocommit((t) => t.insertPayload(payload(1)));
        expect(await catalog.autocommit((t) => t.getPayload(id(1)))).toStrictEqual(payload(1));
        await expect(catalog.autocommit((t) => t.insertPayload(payload(1)))).rejects.toThrow();
        expect(await tx((t) => t.getPayload(id(1)))).toStrictEqual(payload(1));
      });

      it("serialises concurrent read-modify-write of one payload through lockPayload", async () => {
        await seed(payload(1));
        const n = 50;
        await Promise.all(
          Array.from({ length: n }, () =>
            tx(async (t) => {
              const p = await t.lockPayload(id(1));
              await tick(); // give every other transaction the chance to interleave here
              await t.updatePayload({ ...p!, version: p!.version + 1 });
            }),
          ),
        );
        expect((await tx((t) => t.getPayload(id(1))))!.version).toBe(1 + n);
      });

      it("keeps concurrent transactions independent when some of them fail", async () => {
        await seed(payload(1));
        const results = await Promise.allSettled(
          Array.from({ length: 20 }, (_, i) =>
            tx(async (t) => {
              const p = await t.lockPayload(id(1));
              await t.updatePayload({ ...p!, version: p!.version + 1 });
              await tick();
              if (i % 5 === 4) throw new Error(`fail ${i}`);
            }),
          ),
        );
        expect(results.filter((r) => r.status === "rejected")).toHaveLength(4);
        expect((await tx((t) => t.getPayload(id(1))))!.version).toBe(1 + 16);
      });
    });
  });
}
