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
import {
  type StreamEntry,
  type StreamInfo,
  type StreamKey,
  type StreamRecord,
  streamKeyString,
} from "../model/stream.ts";
import { STORAGE_TIERS, type StorageTier } from "../model/tier.ts";
import type {
  CatalogTx,
  ListMetadataEventsQuery,
  ListPayloadsQuery,
  ListStreamsQuery,
  NewStream,
  PayloadListItem,
  ReadStreamQuery,
  RetiredRegion,
} from "../ports/catalog.ts";
import { TransactionOnlyCatalog } from "../ports/lease-steps.ts";

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
  /** Streams by surrogate id, and the id of each key. */
  streams: Map<number, StreamRecord>;
  streamIds: Map<string, number>;
  /** Entries of each stream in offset order; arrays are replaced, never mutated, on write. */
  streamEntries: Map<number, readonly StreamEntry[]>;
  /** Checkpoints by `<stream id>|<consumer group>`. */
  streamCommits: Map<string, number>;
  streamSeq: number;
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
  streams: new Map(s.streams),
  streamIds: new Map(s.streamIds),
  streamEntries: new Map(s.streamEntries),
  streamCommits: new Map(s.streamCommits),
  streamSeq: s.streamSeq,
});

const commitKey = (streamId: number, group: string) => `${streamId}|${group}`;

const edgeKey = (e: LineageEdge) => `${e.parent}|${e.child}|${e.operation}|${e.role}`;

/**
 * The catalog in process memory. Transactions run one at a time and roll back on error, so it
 * keeps the same guarantees as the SQL adapters for one process; nothing survives a restart.
 * Records are immutable and replaced on update, which makes a snapshot a cheap map copy.
 */
export class MemoryCatalog extends TransactionOnlyCatalog {
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
    streams: new Map(),
    streamIds: new Map(),
    streamEntries: new Map(),
    streamCommits: new Map(),
    streamSeq: 0,
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
  async updatePayloadIf(p: Payload, expected: Pick<Payload, "version" | "state" | "updatedAt">) {
    const now = this.s.payloads.get(p.id);
    if (
      !now ||
      now.version !== expected.version ||
      now.state !== expected.state ||
      now.updatedAt !== expected.updatedAt
    ) {
      return false;
    }
    this.s.payloads.set(p.id, p);
    return true;
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
    if (this.s.leases.has(l.id)) this.s.leases.set(l.id, l);
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

  async findStuckMoves(updatedBefore: number, limit: number) {
    return [...this.s.payloads.values()]
      .filter((p) => p.state === "SPILLING" && p.updatedAt <= updatedBefore)
      .sort((a, b) => a.updatedAt - b.updatedAt)
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

  async createStream(n: NewStream) {
    const k = streamKeyString(n.key);
    if (this.s.streamIds.has(k)) return undefined;
    this.s.streamSeq += 1;
    const record: StreamRecord = {
      id: this.s.streamSeq,
      key: { ...n.key },
      retentionMaxEntries: n.retentionMaxEntries,
      retentionMaxAgeSec: n.retentionMaxAgeSec,
      createdAt: n.createdAt,
      nextOffset: 0,
    };
    this.s.streams.set(record.id, record);
    this.s.streamIds.set(k, record.id);
    this.s.streamEntries.set(record.id, []);
    return record;
  }
  async getStream(key: StreamKey) {
    const id = this.s.streamIds.get(streamKeyString(key));
    return id === undefined ? undefined : this.s.streams.get(id);
  }
  async lockStream(key: StreamKey) {
    return this.getStream(key);
  }
  async deleteStream(key: StreamKey) {
    const k = streamKeyString(key);
    const id = this.s.streamIds.get(k);
    if (id === undefined) return false;
    this.s.streamIds.delete(k);
    this.s.streams.delete(id);
    this.s.streamEntries.delete(id);
    const prefix = `${id}|`;
    for (const c of this.s.streamCommits.keys()) if (c.startsWith(prefix)) this.s.streamCommits.delete(c);
    return true;
  }
  async appendStreamEntries(streamId: number, entries: readonly StreamEntry[]) {
    const stream = this.s.streams.get(streamId);
    if (!stream) throw new Error(`append to missing stream ${streamId}`);
    const first = entries[0];
    if (!first) return;
    if (first.offset !== stream.nextOffset || entries.some((e, i) => e.offset !== first.offset + i)) {
      throw new Error(
        `append to stream ${streamId} must continue at offset ${stream.nextOffset}; lock the stream first`,
      );
    }
    this.s.streamEntries.set(streamId, [...(this.s.streamEntries.get(streamId) ?? []), ...entries]);
    this.s.streams.set(streamId, { ...stream, nextOffset: first.offset + entries.length });
  }
  async readStreamEntries(q: ReadStreamQuery) {
    return (this.s.streamEntries.get(q.streamId) ?? [])
      .filter(
        (e) =>
          e.offset >= q.fromOffset &&
          (q.toOffset === undefined || e.offset <= q.toOffset) &&
          (q.appendedSince === undefined || e.appendTime >= q.appendedSince),
      )
      .slice(0, q.limit);
  }
  async firstStreamOffsetSince(streamId: number, appendedSince: number) {
    return (this.s.streamEntries.get(streamId) ?? []).find((e) => e.appendTime >= appendedSince)?.offset;
  }
  async trimStream(streamId: number, belowOffset: number) {
    const entries = this.s.streamEntries.get(streamId) ?? [];
    const kept = entries.filter((e) => e.offset >= belowOffset);
    if (kept.length !== entries.length) this.s.streamEntries.set(streamId, kept);
    return entries.length - kept.length;
  }
  async putStreamCommit(streamId: number, consumerGroup: string, offset: number) {
    if (!this.s.streams.has(streamId)) throw new Error(`commit on missing stream ${streamId}`);
    this.s.streamCommits.set(commitKey(streamId, consumerGroup), offset);
  }
  async getStreamCommit(streamId: number, consumerGroup: string) {
    return this.s.streamCommits.get(commitKey(streamId, consumerGroup));
  }
  async listStreams(q: ListStreamsQuery): Promise<StreamInfo[]> {
    return [...this.s.streams.values()]
      .filter(
        (s) =>
          s.key.tenant === q.tenant &&
          (q.namespace === undefined || s.key.namespace === q.namespace) &&
          s.id > q.afterId,
      )
      .sort((a, b) => a.id - b.id)
      .slice(0, q.limit)
      .map((stream) => {
        const entries = this.s.streamEntries.get(stream.id) ?? [];
        const first = entries[0];
        const last = entries[entries.length - 1];
        return {
          stream,
          firstOffset: first?.offset ?? 0,
          lastOffset: last?.offset ?? 0,
          entryCount: entries.length,
        };
      });
  }
  async streamsWithRetention(afterId: number, limit: number) {
    return [...this.s.streams.values()]
      .filter((s) => s.id > afterId && (s.retentionMaxEntries > 0 || s.retentionMaxAgeSec > 0))
      .sort((a, b) => a.id - b.id)
      .slice(0, limit);
  }
}
