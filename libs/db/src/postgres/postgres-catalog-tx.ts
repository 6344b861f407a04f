import {
  type ListPayloadsQuery,
  type Payload,
  type PayloadId,
  type PayloadListItem,
  STORAGE_TIERS,
  type StorageTier,
  type TierStats,
} from "@pm/domain";
import { num, PAYLOAD_COLUMNS, POSTGRES_BIND, payloadFrom } from "../sql/rows.ts";
import { SqlCatalogTx, type SqlDialect, type SqlExecutor } from "../sql/sql-catalog-tx.ts";

const PAGE_COLUMNS = PAYLOAD_COLUMNS.join(", ");

/** Where the shared SQL says something Postgres-specific. */
export const POSTGRES_DIALECT: SqlDialect = {
  bind: POSTGRES_BIND,
  forUpdate: " FOR UPDATE",
  skipLocked: " FOR UPDATE SKIP LOCKED",
  inList: (column) => `${column} = ANY(?::text[])`,
  listParam: (values) => [...values],
};

/**
 * The shared SQL transaction with the queries that must stay fast at millions of rows done the
 * Postgres way: totals and tier statistics come from the trigger-maintained `payload_counts`
 * (migration 0002) instead of counting rows, and expired leases are deleted through their index.
 */
export class PostgresCatalogTx extends SqlCatalogTx {
  constructor(
    private readonly sql: SqlExecutor,
    dialect: SqlDialect,
  ) {
    super(sql, dialect);
  }

  override async listPayloads(q: ListPayloadsQuery): Promise<{ items: PayloadListItem[]; total: number }> {
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
    const [total] = await this.sql.all(
      `SELECT COALESCE(SUM(payloads), 0)::bigint AS n FROM payload_counts WHERE ${filter}`,
      params,
    );
    // The row comparison is an index condition on (namespace[, tier|state], created_at, id), so
    // a deep page starts where the cursor points instead of skipping the rows before it.
    const pageWhere = q.after ? `${filter} AND (created_at, id) < (?, ?)` : filter;
    const pageParams = q.after ? [...params, q.after.createdAt, q.after.id] : params;
    const rows = await this.sql.all(
      `SELECT ${PAGE_COLUMNS},
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

  override async tierStats(namespace: string | undefined): Promise<TierStats[]> {
    const rows = await this.sql.all(
      `SELECT tier, COALESCE(SUM(payloads), 0)::bigint AS payloads, COALESCE(SUM(bytes), 0)::bigint AS bytes
       FROM payload_counts WHERE state <> 'DELETING'${namespace === undefined ? "" : " AND namespace = ?"}
       GROUP BY tier`,
      namespace === undefined ? [] : [namespace],
    );
    const byTier = new Map(rows.map((r) => [r.tier as StorageTier, r]));
    return STORAGE_TIERS.map((tier) => {
      const r = byTier.get(tier);
      return { tier, payloads: r ? num(r.payloads) : 0, bytes: r ? num(r.bytes) : 0 };
    });
  }

  override async deleteExpiredLeases(now: number, limit: number): Promise<number> {
    // `id IN (subquery)` lets the planner hash-join the subquery against a sequential scan of all
    // leases; an array of ids is probed through the primary key.
    return this.sql.run(
      `DELETE FROM leases WHERE id = ANY(ARRAY(
         SELECT id FROM leases WHERE expires_at <= ? ORDER BY expires_at LIMIT ? FOR UPDATE SKIP LOCKED))`,
      [now, limit],
    );
  }
}

/** Where an autocommit session sends the statements that join group-commit batches. */
export interface BatchedStatements {
  getPayload(id: PayloadId): Promise<Payload | undefined>;
  insertPayload(p: Payload): Promise<void>;
  updatePayloadIf(p: Payload, expected: Pick<Payload, "version" | "state" | "updatedAt">): Promise<boolean>;
}

/**
 * An autocommit session (each statement its own transaction) whose hot single statements join
 * the batches of concurrent calls: the outcome is the same as running them alone, only the
 * statement and its commit are shared. Everything else runs on the session's own connection.
 */
export class BatchedAutocommitTx extends PostgresCatalogTx {
  constructor(
    sql: SqlExecutor,
    dialect: SqlDialect,
    private readonly batches: BatchedStatements,
  ) {
    super(sql, dialect);
  }

  override getPayload(id: PayloadId): Promise<Payload | undefined> {
    return this.batches.getPayload(id);
  }

  override insertPayload(p: Payload): Promise<void> {
    return this.batches.insertPayload(p);
  }

  override updatePayloadIf(
    p: Payload,
    expected: Pick<Payload, "version" | "state" | "updatedAt">,
  ): Promise<boolean> {
    return this.batches.updatePayloadIf(p, expected);
  }
}
