import {
  type AgentRecord,
  type CatalogTx,
  type Lease,
  type LeaseId,
  type LineageEdge,
  type ListMetadataEventsQuery,
  type ListPayloadsQuery,
  type ListStreamsQuery,
  type MetadataEvent,
  type NewStream,
  type Payload,
  type PayloadId,
  type PayloadListItem,
  type PayloadMetadata,
  type Pin,
  type ReadStreamQuery,
  type RetiredRegion,
  STORAGE_TIERS,
  type StorageTier,
  type StreamEntry,
  type StreamInfo,
  type StreamKey,
  type StreamRecord,
  type TierStats,
} from "@pm/domain";
import {
  AGENT_COLUMNS,
  agentFrom,
  agentValues,
  type BindStyle,
  bindBytes,
  EVENT_COLUMNS,
  edgeFrom,
  eventFrom,
  LEASE_COLUMNS,
  leaseFrom,
  leaseValues,
  metadataFrom,
  num,
  PAYLOAD_COLUMNS,
  payloadFrom,
  payloadValues,
  pinFrom,
  RETIRED_COLUMNS,
  type Row,
  retiredFrom,
  retiredValues,
} from "./rows.ts";

/**
 * Runs SQL written with `?` placeholders inside one open transaction. Each adapter provides one
 * per transaction; it maps driver faults to DomainError UNAVAILABLE and refuses to run once its
 * transaction has ended (a stray call must never land in somebody else's transaction).
 */
export interface SqlExecutor {
  all(sql: string, params: readonly unknown[]): Promise<Row[]>;
  /** Returns the number of rows changed. */
  run(sql: string, params: readonly unknown[]): Promise<number>;
}

/** The few places where SQLite and Postgres SQL differ. */
export interface SqlDialect {
  readonly bind: BindStyle;
  /** Appended to a SELECT that must lock its row ("" where the transaction already serialises). */
  readonly forUpdate: string;
  /** Appended to a sub-SELECT of rows to delete in batches, so concurrent sweepers skip each other. */
  readonly skipLocked: string;
  /** A condition `column IN <the list>` bound to the single parameter `listParam(values)`. */
  inList(column: string): string;
  listParam(values: readonly string[]): unknown;
}

const cols = (c: readonly string[]) => c.join(", ");
const marks = (n: number) => Array.from({ length: n }, () => "?").join(", ");

const PAYLOAD_SELECT = `SELECT ${cols(PAYLOAD_COLUMNS)} FROM payloads`;
const PAYLOAD_INSERT = `INSERT INTO payloads (${cols(PAYLOAD_COLUMNS)}) VALUES (${marks(PAYLOAD_COLUMNS.length)})`;
const PAYLOAD_UPDATE = `UPDATE payloads SET ${PAYLOAD_COLUMNS.slice(1)
  .map((c) => `${c} = ?`)
  .join(", ")} WHERE id = ?`;
const LEASE_SELECT = `SELECT ${cols(LEASE_COLUMNS)} FROM leases`;
const LEASE_INSERT = `INSERT INTO leases (${cols(LEASE_COLUMNS)}) VALUES (${marks(LEASE_COLUMNS.length)})`;
const LEASE_UPDATE = `UPDATE leases SET ${LEASE_COLUMNS.slice(1)
  .map((c) => `${c} = ?`)
  .join(", ")} WHERE id = ?`;
const RETIRED_INSERT = `INSERT INTO retired_regions (${cols(RETIRED_COLUMNS)}) VALUES (${marks(RETIRED_COLUMNS.length)})`;

// ---- stream rows -------------------------------------------------------------------------------
//
// The 0001 schema keys streams by (namespace, name). A stream is scoped by (tenant,
// StreamID.namespace, name), so the `namespace` column holds the scope "<tenant>/<namespace>":
// tenant names never contain "/" (config: [a-z0-9][a-z0-9_-]*), which keeps the split unambiguous,
// and the UNIQUE (namespace, name) constraint then means exactly "one stream per key".

const STREAM_COLUMNS =
  "id, namespace, name, retention_max_entries, retention_max_age_sec, created_at, next_offset";
const STREAM_SELECT = `SELECT ${STREAM_COLUMNS} FROM streams`;
const ENTRY_COLUMNS = '"offset", payload_id, event_time, append_time, duration_ns, tags';

function streamScope(key: StreamKey): string {
  if (key.tenant.includes("/")) {
    throw new Error(
      `tenant namespace ${JSON.stringify(key.tenant)} contains "/", which stream scopes reserve`,
    );
  }
  return `${key.tenant}/${key.namespace}`;
}

function streamFrom(r: Row): StreamRecord {
  const scope = String(r.namespace);
  const cut = scope.indexOf("/");
  if (cut < 0) throw new Error(`catalog row of stream ${String(r.id)} has no tenant in its scope`);
  return {
    id: num(r.id),
    key: { tenant: scope.slice(0, cut), namespace: scope.slice(cut + 1), name: String(r.name) },
    retentionMaxEntries: r.retention_max_entries === null ? 0 : num(r.retention_max_entries),
    retentionMaxAgeSec: r.retention_max_age_sec === null ? 0 : num(r.retention_max_age_sec),
    createdAt: num(r.created_at),
    nextOffset: num(r.next_offset),
  };
}

function tagsFrom(v: unknown): Record<string, string> {
  const parsed: unknown = typeof v === "string" ? JSON.parse(v) : v;
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error("catalog row holds stream tags that are not a JSON object");
  }
  const out: Record<string, string> = {};
  for (const [k, value] of Object.entries(parsed)) out[k] = String(value);
  return out;
}

function entryFrom(r: Row): StreamEntry {
  return {
    offset: num(r.offset),
    payloadId: String(r.payload_id) as PayloadId,
    eventTime: r.event_time === null || r.event_time === undefined ? undefined : num(r.event_time),
    appendTime: num(r.append_time),
    durationNs: num(r.duration_ns),
    tags: tagsFrom(r.tags),
  };
}

/**
 * The catalog's transaction operations in SQL, shared by the SQLite and Postgres adapters. Every
 * statement text comes from a small fixed set, so the adapters can cache prepared statements by text.
 */
export class SqlCatalogTx implements CatalogTx {
  constructor(
    private readonly db: SqlExecutor,
    private readonly dialect: SqlDialect,
  ) {}

  private async one(sql: string, params: readonly unknown[]): Promise<Row | undefined> {
    return (await this.db.all(sql, params))[0];
  }

  // ---- payloads --------------------------------------------------------------------------------

  async getPayload(id: PayloadId): Promise<Payload | undefined> {
    const r = await this.one(`${PAYLOAD_SELECT} WHERE id = ?`, [id]);
    return r && payloadFrom(r);
  }

  async lockPayload(id: PayloadId): Promise<Payload | undefined> {
    const r = await this.one(`${PAYLOAD_SELECT} WHERE id = ?${this.dialect.forUpdate}`, [id]);
    return r && payloadFrom(r);
  }

  async insertPayload(p: Payload): Promise<void> {
    await this.db.run(PAYLOAD_INSERT, payloadValues(p, this.dialect.bind));
  }

  async updatePayload(p: Payload): Promise<void> {
    const [id, ...rest] = payloadValues(p, this.dialect.bind);
    const changed = await this.db.run(PAYLOAD_UPDATE, [...rest, id]);
    if (changed === 0) throw new Error(`update of missing payload ${p.id}`);
  }

  async updatePayloadIf(
    p: Payload,
    expected: Pick<Payload, "version" | "state" | "updatedAt">,
  ): Promise<boolean> {
    const [id, ...rest] = payloadValues(p, this.dialect.bind);
    const changed = await this.db.run(`${PAYLOAD_UPDATE} AND version = ? AND state = ? AND updated_at = ?`, [
      ...rest,
      id,
      expected.version,
      expected.state,
      expected.updatedAt,
    ]);
    return changed === 1;
  }

  async deletePayload(id: PayloadId): Promise<void> {
    // Leases, pins, metadata, events and lineage edges go with it (ON DELETE CASCADE).
    await this.db.run("DELETE FROM payloads WHERE id = ?", [id]);
  }

  async listPayloads(q: ListPayloadsQuery): Promise<{ items: PayloadListItem[]; total: number }> {
    const where = ["namespace = ?"];
    const params: unknown[] = [q.namespace];
    if (q.tier !== undefined) {
      where.push("tier = ?");
      params.push(q.tier);
    }
    if (q.state !== undefined) {
      where.push("state = ?");
      params.push(q.state);
    }
    const filter = where.join(" AND ");
    const total = await this.one(`SELECT COUNT(*) AS n FROM payloads WHERE ${filter}`, params);
    const pageWhere = q.after ? `${filter} AND (created_at, id) < (?, ?)` : filter;
    const pageParams = q.after ? [...params, q.after.createdAt, q.after.id] : params;
    const rows = await this.db.all(
      `SELECT ${cols(PAYLOAD_COLUMNS)},
         (SELECT COUNT(*) FROM leases l WHERE l.payload_id = payloads.id AND l.expires_at > ?) AS live_leases
       FROM payloads WHERE ${pageWhere}
       ORDER BY created_at DESC, id DESC LIMIT ?`,
      [q.now, ...pageParams, q.limit],
    );
    return {
      items: rows.map((r) => ({ payload: payloadFrom(r), liveLeases: num(r.live_leases) })),
      total: total ? num(total.n) : 0,
    };
  }

  // ---- leases ----------------------------------------------------------------------------------

  async insertLease(l: Lease): Promise<void> {
    await this.db.run(LEASE_INSERT, leaseValues(l, this.dialect.bind));
  }

  async getLease(id: LeaseId): Promise<Lease | undefined> {
    const r = await this.one(`${LEASE_SELECT} WHERE id = ?`, [id]);
    return r && leaseFrom(r);
  }

  async updateLease(l: Lease): Promise<void> {
    // A plain UPDATE: a lease released meanwhile stays released rather than coming back.
    const [id, ...rest] = leaseValues(l, this.dialect.bind);
    await this.db.run(LEASE_UPDATE, [...rest, id]);
  }

  async deleteLease(id: LeaseId): Promise<boolean> {
    return (await this.db.run("DELETE FROM leases WHERE id = ?", [id])) > 0;
  }

  async liveLeases(payloadId: PayloadId, now: number): Promise<Lease[]> {
    const rows = await this.db.all(
      `${LEASE_SELECT} WHERE payload_id = ? AND expires_at > ? ORDER BY created_at, id`,
      [payloadId, now],
    );
    return rows.map(leaseFrom);
  }

  async deleteExpiredLeases(now: number, limit: number): Promise<number> {
    return this.db.run(
      `DELETE FROM leases WHERE id IN (
         SELECT id FROM leases WHERE expires_at <= ? ORDER BY expires_at LIMIT ?${this.dialect.skipLocked})`,
      [now, limit],
    );
  }

  // ---- pins ------------------------------------------------------------------------------------

  async getPin(payloadId: PayloadId): Promise<Pin | undefined> {
    const r = await this.one("SELECT payload_id, expires_at FROM pins WHERE payload_id = ?", [payloadId]);
    return r && pinFrom(r);
  }

  async putPin(pin: Pin): Promise<void> {
    await this.db.run(
      `INSERT INTO pins (payload_id, expires_at) VALUES (?, ?)
       ON CONFLICT (payload_id) DO UPDATE SET expires_at = excluded.expires_at`,
      [pin.payloadId, pin.expiresAt ?? null],
    );
  }

  async deletePin(payloadId: PayloadId): Promise<void> {
    await this.db.run("DELETE FROM pins WHERE payload_id = ?", [payloadId]);
  }

  // ---- metadata --------------------------------------------------------------------------------

  async getMetadata(payloadId: PayloadId): Promise<PayloadMetadata | undefined> {
    const r = await this.one(
      "SELECT payload_id, data, schema, updated_at FROM payload_metadata WHERE payload_id = ?",
      [payloadId],
    );
    return r && metadataFrom(r);
  }

  async putMetadata(m: PayloadMetadata): Promise<void> {
    await this.db.run(
      `INSERT INTO payload_metadata (payload_id, data, schema, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (payload_id) DO UPDATE
         SET data = excluded.data, schema = excluded.schema, updated_at = excluded.updated_at`,
      [m.payloadId, bindBytes(m.data), m.schema, m.updatedAt],
    );
  }

  async appendMetadataEvent(e: Omit<MetadataEvent, "seq">): Promise<MetadataEvent> {
    const r = await this.one(
      `INSERT INTO metadata_events (payload_id, ts, data, schema, source, version)
       VALUES (?, ?, ?, ?, ?, ?) RETURNING seq`,
      [e.payloadId, e.ts, bindBytes(e.data), e.schema, e.source, e.version],
    );
    if (!r) throw new Error("INSERT … RETURNING seq returned no row");
    return {
      payloadId: e.payloadId,
      seq: num(r.seq),
      ts: e.ts,
      data: e.data,
      schema: e.schema,
      source: e.source,
      version: e.version,
    };
  }

  async listMetadataEvents(q: ListMetadataEventsQuery): Promise<MetadataEvent[]> {
    const where = ["payload_id = ?"];
    const params: unknown[] = [q.payloadId];
    if (q.beforeSeq !== undefined) {
      where.push("seq < ?");
      params.push(q.beforeSeq);
    }
    if (q.since !== undefined) {
      where.push("ts >= ?");
      params.push(q.since);
    }
    if (q.until !== undefined) {
      where.push("ts < ?");
      params.push(q.until);
    }
    const rows = await this.db.all(
      `SELECT ${EVENT_COLUMNS} FROM metadata_events WHERE ${where.join(" AND ")} ORDER BY seq DESC LIMIT ?`,
      [...params, q.limit],
    );
    return rows.map(eventFrom);
  }

  // ---- lineage ---------------------------------------------------------------------------------

  async addLineage(edges: readonly LineageEdge[]): Promise<void> {
    for (const e of edges) {
      await this.db.run(
        `INSERT INTO lineage_edges (parent, child, operation, role, parameters) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (parent, child, operation, role) DO NOTHING`,
        [e.parent, e.child, e.operation, e.role, bindBytes(e.parameters)],
      );
    }
  }

  async lineageEdges(ids: readonly PayloadId[], upstream: boolean): Promise<LineageEdge[]> {
    if (ids.length === 0) return [];
    const rows = await this.db.all(
      `SELECT parent, child, operation, role, parameters FROM lineage_edges
       WHERE ${this.dialect.inList(upstream ? "child" : "parent")} ORDER BY id`,
      [this.dialect.listParam(ids)],
    );
    return rows.map(edgeFrom);
  }

  // ---- agents ----------------------------------------------------------------------------------

  async upsertAgent(a: AgentRecord): Promise<void> {
    await this.db.run(
      `INSERT INTO agents (${AGENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (agent_id) DO UPDATE SET host = excluded.host, endpoint = excluded.endpoint,
         tiers = excluded.tiers, last_heartbeat_at = excluded.last_heartbeat_at,
         registered_at = excluded.registered_at`,
      agentValues(a),
    );
  }

  async getAgent(agentId: string): Promise<AgentRecord | undefined> {
    const r = await this.one(`SELECT ${AGENT_COLUMNS} FROM agents WHERE agent_id = ?`, [agentId]);
    return r && agentFrom(r);
  }

  async listAgents(): Promise<AgentRecord[]> {
    return (await this.db.all(`SELECT ${AGENT_COLUMNS} FROM agents ORDER BY agent_id`, [])).map(agentFrom);
  }

  async placementsOnAgent(agentId: string): Promise<{ payloadId: PayloadId; tier: StorageTier }[]> {
    const rows = await this.db.all(
      `SELECT id AS payload_id, tier FROM payloads WHERE agent_id = ?
       UNION ALL
       SELECT id AS payload_id, pending_tier AS tier FROM payloads WHERE pending_agent_id = ?
       UNION ALL
       SELECT payload_id, tier FROM retired_regions WHERE agent_id = ?`,
      [agentId, agentId, agentId],
    );
    return rows.map((r) => ({ payloadId: r.payload_id as PayloadId, tier: r.tier as StorageTier }));
  }

  // ---- stats and sweeps ------------------------------------------------------------------------

  async tierStats(namespace: string | undefined): Promise<TierStats[]> {
    const rows = await this.db.all(
      `SELECT tier, COUNT(*) AS payloads, COALESCE(SUM(size_bytes), 0) AS bytes FROM payloads
       WHERE state <> 'DELETING'${namespace === undefined ? "" : " AND namespace = ?"} GROUP BY tier`,
      namespace === undefined ? [] : [namespace],
    );
    const byTier = new Map(rows.map((r) => [r.tier as StorageTier, r]));
    return STORAGE_TIERS.map((tier) => {
      const r = byTier.get(tier);
      return { tier, payloads: r ? num(r.payloads) : 0, bytes: r ? num(r.bytes) : 0 };
    });
  }

  async findExpired(now: number, limit: number): Promise<PayloadId[]> {
    return this.ids(
      `SELECT id FROM payloads
       WHERE expires_at IS NOT NULL AND expires_at <= ? AND state NOT IN ('DELETING', 'EXPIRED')
       ORDER BY expires_at, id LIMIT ?`,
      [now, limit],
    );
  }

  async findAbandoned(createdBefore: number, limit: number): Promise<PayloadId[]> {
    return this.ids(
      `SELECT id FROM payloads WHERE state = 'ALLOCATED' AND created_at <= ?
       ORDER BY created_at, id LIMIT ?`,
      [createdBefore, limit],
    );
  }

  async findDeleting(limit: number): Promise<PayloadId[]> {
    return this.ids(
      `SELECT id FROM payloads WHERE state IN ('DELETING', 'EXPIRED') ORDER BY updated_at, id LIMIT ?`,
      [limit],
    );
  }

  async findStuckMoves(updatedBefore: number, limit: number): Promise<PayloadId[]> {
    return this.ids(
      `SELECT id FROM payloads WHERE state = 'SPILLING' AND updated_at <= ? ORDER BY updated_at, id LIMIT ?`,
      [updatedBefore, limit],
    );
  }

  private async ids(sql: string, params: readonly unknown[]): Promise<PayloadId[]> {
    return (await this.db.all(sql, params)).map((r) => r.id as PayloadId);
  }

  // ---- retired regions -------------------------------------------------------------------------

  async addRetiredRegion(r: RetiredRegion): Promise<void> {
    await this.db.run(RETIRED_INSERT, retiredValues(r));
  }

  async listRetiredRegions(limit: number): Promise<RetiredRegion[]> {
    const rows = await this.db.all(
      `SELECT ${cols(RETIRED_COLUMNS)} FROM retired_regions ORDER BY retired_at, id LIMIT ?`,
      [limit],
    );
    return rows.map(retiredFrom);
  }

  async deleteRetiredRegion(id: string): Promise<void> {
    await this.db.run("DELETE FROM retired_regions WHERE id = ?", [id]);
  }

  // ---- streams ---------------------------------------------------------------------------------

  async createStream(n: NewStream): Promise<StreamRecord | undefined> {
    const r = await this.one(
      `INSERT INTO streams (namespace, name, retention_max_entries, retention_max_age_sec, created_at, next_offset)
       VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (namespace, name) DO NOTHING RETURNING id`,
      [streamScope(n.key), n.key.name, n.retentionMaxEntries, n.retentionMaxAgeSec, n.createdAt],
    );
    if (!r) return undefined;
    return {
      id: num(r.id),
      key: { ...n.key },
      retentionMaxEntries: n.retentionMaxEntries,
      retentionMaxAgeSec: n.retentionMaxAgeSec,
      createdAt: n.createdAt,
      nextOffset: 0,
    };
  }

  async getStream(key: StreamKey): Promise<StreamRecord | undefined> {
    const r = await this.one(`${STREAM_SELECT} WHERE namespace = ? AND name = ?`, [
      streamScope(key),
      key.name,
    ]);
    return r && streamFrom(r);
  }

  async lockStream(key: StreamKey): Promise<StreamRecord | undefined> {
    const r = await this.one(`${STREAM_SELECT} WHERE namespace = ? AND name = ?${this.dialect.forUpdate}`, [
      streamScope(key),
      key.name,
    ]);
    return r && streamFrom(r);
  }

  async deleteStream(key: StreamKey): Promise<boolean> {
    // Entries and commits go with it (ON DELETE CASCADE).
    return (
      (await this.db.run("DELETE FROM streams WHERE namespace = ? AND name = ?", [
        streamScope(key),
        key.name,
      ])) > 0
    );
  }

  async appendStreamEntries(streamId: number, entries: readonly StreamEntry[]): Promise<void> {
    const first = entries[0];
    if (!first) return;
    // Compare-and-set: an append that does not continue at next_offset (no lock held) fails
    // loudly instead of leaving a gap or colliding on the primary key later.
    const moved = await this.db.run("UPDATE streams SET next_offset = ? WHERE id = ? AND next_offset = ?", [
      first.offset + entries.length,
      streamId,
      first.offset,
    ]);
    if (moved === 0) {
      throw new Error(
        `append to stream ${streamId} must continue at its next_offset, not ${first.offset}; lock the stream first`,
      );
    }
    for (const [i, e] of entries.entries()) {
      if (e.offset !== first.offset + i) throw new Error(`stream entries must have contiguous offsets`);
      await this.db.run(
        `INSERT INTO stream_entries (stream, ${ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`,
        [
          streamId,
          e.offset,
          e.payloadId,
          e.eventTime ?? null,
          e.appendTime,
          e.durationNs,
          JSON.stringify(e.tags),
        ],
      );
    }
  }

  async readStreamEntries(q: ReadStreamQuery): Promise<StreamEntry[]> {
    const where = ["stream = ?", '"offset" >= ?'];
    const params: unknown[] = [q.streamId, q.fromOffset];
    if (q.toOffset !== undefined) {
      where.push('"offset" <= ?');
      params.push(q.toOffset);
    }
    if (q.appendedSince !== undefined) {
      where.push("append_time >= ?");
      params.push(q.appendedSince);
    }
    const rows = await this.db.all(
      `SELECT ${ENTRY_COLUMNS} FROM stream_entries WHERE ${where.join(" AND ")} ORDER BY "offset" LIMIT ?`,
      [...params, q.limit],
    );
    return rows.map(entryFrom);
  }

  async firstStreamOffsetSince(streamId: number, appendedSince: number): Promise<number | undefined> {
    // Walks the primary key from the oldest entry: retention at append finds its cut in a few rows.
    const r = await this.one(
      `SELECT "offset" FROM stream_entries WHERE stream = ? AND append_time >= ? ORDER BY "offset" LIMIT 1`,
      [streamId, appendedSince],
    );
    return r ? num(r.offset) : undefined;
  }

  async trimStream(streamId: number, belowOffset: number): Promise<number> {
    return this.db.run('DELETE FROM stream_entries WHERE stream = ? AND "offset" < ?', [
      streamId,
      belowOffset,
    ]);
  }

  async putStreamCommit(streamId: number, consumerGroup: string, offset: number): Promise<void> {
    await this.db.run(
      `INSERT INTO stream_commits (stream, consumer_group, "offset") VALUES (?, ?, ?)
       ON CONFLICT (stream, consumer_group) DO UPDATE SET "offset" = excluded."offset"`,
      [streamId, consumerGroup, offset],
    );
  }

  async getStreamCommit(streamId: number, consumerGroup: string): Promise<number | undefined> {
    const r = await this.one('SELECT "offset" FROM stream_commits WHERE stream = ? AND consumer_group = ?', [
      streamId,
      consumerGroup,
    ]);
    return r ? num(r.offset) : undefined;
  }

  async listStreams(q: ListStreamsQuery): Promise<StreamInfo[]> {
    // Exact scope for one namespace; otherwise every scope that starts with "<tenant>/" (substr,
    // not LIKE: tenant names may contain "_", a LIKE wildcard).
    const prefix = streamScope({ tenant: q.tenant, namespace: "", name: "" });
    const scope =
      q.namespace === undefined
        ? { sql: "substr(s.namespace, 1, ?) = ?", params: [prefix.length, prefix] }
        : {
            sql: "s.namespace = ?",
            params: [streamScope({ tenant: q.tenant, namespace: q.namespace, name: "" })],
          };
    // Retention drops only a prefix and appends only extend the end, so the retained entries are
    // exactly MIN(offset)..next_offset-1: one index probe per stream instead of a COUNT.
    const rows = await this.db.all(
      `SELECT ${STREAM_COLUMNS.split(", ")
        .map((c) => `s.${c}`)
        .join(", ")},
         (SELECT MIN(e."offset") FROM stream_entries e WHERE e.stream = s.id) AS first_offset
       FROM streams s WHERE ${scope.sql} AND s.id > ? ORDER BY s.id LIMIT ?`,
      [...scope.params, q.afterId, q.limit],
    );
    return rows.map((r) => {
      const stream = streamFrom(r);
      if (r.first_offset === null || r.first_offset === undefined) {
        return { stream, firstOffset: 0, lastOffset: 0, entryCount: 0 };
      }
      const firstOffset = num(r.first_offset);
      return {
        stream,
        firstOffset,
        lastOffset: stream.nextOffset - 1,
        entryCount: stream.nextOffset - firstOffset,
      };
    });
  }

  async streamsWithRetention(afterId: number, limit: number): Promise<StreamRecord[]> {
    const rows = await this.db.all(
      `${STREAM_SELECT} WHERE id > ? AND (retention_max_entries > 0 OR retention_max_age_sec > 0)
       ORDER BY id LIMIT ?`,
      [afterId, limit],
    );
    return rows.map(streamFrom);
  }
}
