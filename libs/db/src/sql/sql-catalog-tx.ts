import {
  type AgentRecord,
  type CatalogTx,
  type Lease,
  type LeaseId,
  type LineageEdge,
  type ListMetadataEventsQuery,
  type ListPayloadsQuery,
  type MetadataEvent,
  type Payload,
  type PayloadId,
  type PayloadListItem,
  type PayloadMetadata,
  type Pin,
  type RetiredRegion,
  STORAGE_TIERS,
  type StorageTier,
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
}
