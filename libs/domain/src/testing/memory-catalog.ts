import type {
  AgentRecord,
  LineageEdge,
  MetadataEvent,
  PayloadMetadata,
  TierStats,
} from "../model/catalog-records.ts";
import type { LeaseId, PayloadId } from "../model/ids.ts";
import type { Lease, Pin } from "../model/lease.ts";
import type { Payload } from "../model/payload.ts";
import { STORAGE_TIERS, type StorageTier } from "../model/tier.ts";
import type {
  Catalog,
  CatalogTx,
  ListMetadataEventsQuery,
  ListPayloadsQuery,
  PayloadListItem,
  RetiredRegion,
} from "../ports/catalog.ts";

interface State {
  payloads: Map<string, Payload>;
  leases: Map<string, Lease>;
  pins: Map<string, Pin>;
  metadata: Map<string, PayloadMetadata>;
  events: MetadataEvent[];
  lineage: Map<string, LineageEdge>;
  agents: Map<string, AgentRecord>;
  retired: Map<string, RetiredRegion>;
  seq: number;
}

const copyState = (s: State): State => ({
  payloads: new Map(s.payloads),
  leases: new Map(s.leases),
  pins: new Map(s.pins),
  metadata: new Map(s.metadata),
  events: [...s.events],
  lineage: new Map(s.lineage),
  agents: new Map(s.agents),
  retired: new Map(s.retired),
  seq: s.seq,
});

const edgeKey = (e: LineageEdge) => `${e.parent}|${e.child}|${e.operation}|${e.role}`;

/**
 * The catalog in process memory. Transactions run one at a time and roll back on error, so it
 * keeps the same guarantees as the SQL adapters for one process; nothing survives a restart.
 * Records are immutable and replaced on update, which makes a snapshot a cheap map copy.
 */
export class MemoryCatalog implements Catalog {
  private state: State = {
    payloads: new Map(),
    leases: new Map(),
    pins: new Map(),
    metadata: new Map(),
    events: [],
    lineage: new Map(),
    agents: new Map(),
    retired: new Map(),
    seq: 0,
  };
  private tail: Promise<unknown> = Promise.resolve();

  transaction<T>(fn: (tx: CatalogTx) => Promise<T>): Promise<T> {
    const run = async () => {
      const working = copyState(this.state);
      const result = await fn(new MemoryTx(working));
      this.state = working;
      return result;
    };
    const p = this.tail.then(run, run);
    this.tail = p.catch(() => undefined);
    return p;
  }

  async ping(): Promise<void> {}
  async close(): Promise<void> {}
}

class MemoryTx implements CatalogTx {
  constructor(private readonly s: State) {}

  async getPayload(id: PayloadId) {
    return this.s.payloads.get(id);
  }
  async lockPayload(id: PayloadId) {
    return this.s.payloads.get(id);
  }
  async insertPayload(p: Payload) {
    if (this.s.payloads.has(p.id)) throw new Error(`duplicate payload id ${p.id}`);
    this.s.payloads.set(p.id, p);
  }
  async updatePayload(p: Payload) {
    if (!this.s.payloads.has(p.id)) throw new Error(`update of missing payload ${p.id}`);
    this.s.payloads.set(p.id, p);
  }
  async deletePayload(id: PayloadId) {
    this.s.payloads.delete(id);
    this.s.pins.delete(id);
    this.s.metadata.delete(id);
    for (const [k, l] of this.s.leases) if (l.payloadId === id) this.s.leases.delete(k);
    this.s.events = this.s.events.filter((e) => e.payloadId !== id);
    for (const [k, e] of this.s.lineage) if (e.parent === id || e.child === id) this.s.lineage.delete(k);
  }
  async listPayloads(q: ListPayloadsQuery): Promise<{ items: PayloadListItem[]; total: number }> {
    const matching = [...this.s.payloads.values()]
      .filter(
        (p) =>
          p.namespace === q.namespace &&
          (q.tier === undefined || p.placement.tier === q.tier) &&
          (q.state === undefined || p.state === q.state),
      )
      .sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
    const after = q.after;
    const rest = after
      ? matching.filter(
          (p) => p.createdAt < after.createdAt || (p.createdAt === after.createdAt && p.id < after.id),
        )
      : matching;
    const now = q.now;
    const items = rest.slice(0, q.limit).map((payload) => ({
      payload,
      liveLeases: [...this.s.leases.values()].filter((l) => l.payloadId === payload.id && l.expiresAt > now)
        .length,
    }));
    return { items, total: matching.length };
  }

  async insertLease(l: Lease) {
    this.s.leases.set(l.id, l);
  }
  async getLease(id: LeaseId) {
    return this.s.leases.get(id);
  }
  async updateLease(l: Lease) {
    this.s.leases.set(l.id, l);
  }
  async deleteLease(id: LeaseId) {
    return this.s.leases.delete(id);
  }
  async liveLeases(payloadId: PayloadId, now: number) {
    return [...this.s.leases.values()].filter((l) => l.payloadId === payloadId && l.expiresAt > now);
  }
  async deleteExpiredLeases(now: number, limit: number) {
    let n = 0;
    for (const [k, l] of this.s.leases) {
      if (n >= limit) break;
      if (l.expiresAt <= now) {
        this.s.leases.delete(k);
        n++;
      }
    }
    return n;
  }

  async getPin(payloadId: PayloadId) {
    return this.s.pins.get(payloadId);
  }
  async putPin(pin: Pin) {
    this.s.pins.set(pin.payloadId, pin);
  }
  async deletePin(payloadId: PayloadId) {
    this.s.pins.delete(payloadId);
  }

  async getMetadata(payloadId: PayloadId) {
    return this.s.metadata.get(payloadId);
  }
  async putMetadata(m: PayloadMetadata) {
    this.s.metadata.set(m.payloadId, m);
  }
  async appendMetadataEvent(e: Omit<MetadataEvent, "seq">) {
    this.s.seq += 1;
    const ev = { ...e, seq: this.s.seq };
    this.s.events.push(ev);
    return ev;
  }
  async listMetadataEvents(q: ListMetadataEventsQuery) {
    return this.s.events
      .filter(
        (e) =>
          e.payloadId === q.payloadId &&
          (q.beforeSeq === undefined || e.seq < q.beforeSeq) &&
          (q.since === undefined || e.ts >= q.since) &&
          (q.until === undefined || e.ts < q.until),
      )
      .sort((a, b) => b.seq - a.seq)
      .slice(0, q.limit);
  }

  async addLineage(edges: readonly LineageEdge[]) {
    for (const e of edges) if (!this.s.lineage.has(edgeKey(e))) this.s.lineage.set(edgeKey(e), e);
  }
  async lineageEdges(ids: readonly PayloadId[], upstream: boolean) {
    const set = new Set<string>(ids);
    return [...this.s.lineage.values()].filter((e) => set.has(upstream ? e.child : e.parent));
  }

  async upsertAgent(a: AgentRecord) {
    this.s.agents.set(a.agentId, a);
  }
  async getAgent(agentId: string) {
    return this.s.agents.get(agentId);
  }
  async listAgents() {
    return [...this.s.agents.values()].sort((a, b) => a.agentId.localeCompare(b.agentId));
  }
  async placementsOnAgent(agentId: string) {
    const out: { payloadId: PayloadId; tier: StorageTier }[] = [];
    for (const p of this.s.payloads.values()) {
      for (const pl of [p.placement, p.pendingPlacement]) {
        if (pl && pl.agentId === agentId) out.push({ payloadId: p.id, tier: pl.tier });
      }
    }
    for (const r of this.s.retired.values()) {
      if (r.placement.agentId === agentId) out.push({ payloadId: r.payloadId, tier: r.placement.tier });
    }
    return out;
  }

  async tierStats(namespace: string | undefined): Promise<TierStats[]> {
    return STORAGE_TIERS.map((tier) => {
      const ps = [...this.s.payloads.values()].filter(
        (p) =>
          p.placement.tier === tier &&
          p.state !== "DELETING" &&
          (namespace === undefined || p.namespace === namespace),
      );
      return { tier, payloads: ps.length, bytes: ps.reduce((n, p) => n + p.sizeBytes, 0) };
    });
  }

  async findExpired(now: number, limit: number) {
    return [...this.s.payloads.values()]
      .filter(
        (p) =>
          p.expiresAt !== undefined && p.expiresAt <= now && p.state !== "DELETING" && p.state !== "EXPIRED",
      )
      .slice(0, limit)
      .map((p) => p.id);
  }
  async findAbandoned(createdBefore: number, limit: number) {
    return [...this.s.payloads.values()]
      .filter((p) => p.state === "ALLOCATED" && p.createdAt <= createdBefore)
      .slice(0, limit)
      .map((p) => p.id);
  }
  async findDeleting(limit: number) {
    return [...this.s.payloads.values()]
      .filter((p) => p.state === "DELETING" || p.state === "EXPIRED")
      .slice(0, limit)
      .map((p) => p.id);
  }

  async addRetiredRegion(r: RetiredRegion) {
    this.s.retired.set(r.id, r);
  }
  async listRetiredRegions(limit: number) {
    return [...this.s.retired.values()].slice(0, limit);
  }
  async deleteRetiredRegion(id: string) {
    this.s.retired.delete(id);
  }
}
