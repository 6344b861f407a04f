import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Payload, PayloadId } from "@pm/domain";
import {
  type Catalog,
  type CatalogTx,
  DomainError,
  grantLeaseInTx,
  invalidArgument,
  type LeaseGrantRequest,
  type LeaseGrantResult,
  type LeaseId,
  type LeaseReleaseResult,
  releaseLeaseInTx,
} from "@pm/domain";
import pg from "pg";
import { defaultMigrationsDir, loadMigrations, type MigrationResult } from "../migrations.ts";
import { num, type Row } from "../sql/rows.ts";
import type { SqlExecutor } from "../sql/sql-catalog-tx.ts";
import { GroupCommit } from "./group-commit.ts";
import {
  BUSY,
  LEASE_BATCH_SQL,
  type LeaseOp,
  type LeaseOpResult,
  leaseBatchParams,
  leaseBatchResults,
} from "./lease-batches.ts";
import {
  CAS_BUSY,
  type PayloadWrite,
  READ_BATCH_SQL,
  readBatchParams,
  readBatchResults,
  writeBatchResults,
  writeBatchStatement,
} from "./payload-batches.ts";
import {
  BatchedAutocommitTx,
  type BatchedStatements,
  POSTGRES_DIALECT,
  PostgresCatalogTx,
} from "./postgres-catalog-tx.ts";
import {
  describeUrl,
  isSerializationConflict,
  type PgErrorContext,
  pgCode,
  pgUnavailable,
} from "./postgres-errors.ts";
import { splitPostgresUrl } from "./postgres-url.ts";

export interface PostgresCatalogOptions {
  /**
   * `postgres://user:password@host:port/database`. Query parameters `pool_size`,
   * `statement_timeout` (ms), `connect_timeout_ms`, `idle_timeout_ms`,
   * `idle_in_transaction_timeout_ms`, `max_retries`, `schema`, `prepared_statements` and
   * `group_commit_lanes` set the
   * options of the same meaning that are not given explicitly.
   */
  readonly url: string;
  /**
   * Schema that holds the tables; created by the migrations and set as every connection's
   * search_path. Lowercase letters, digits and `_`. Default: the server's search_path (public).
   */
  readonly schema?: string;
  /** Connections per process (default 10). */
  readonly poolSize?: number;
  /** Server-side limit per statement, in ms (default 30 000; 0 = none). */
  readonly statementTimeoutMs?: number;
  /** Longest wait for a connection, new or pooled, before UNAVAILABLE (default 5000 ms). */
  readonly connectTimeoutMs?: number;
  /** Idle connections are closed after this long (default 30 000 ms). */
  readonly idleTimeoutMs?: number;
  /**
   * The server ends a session that sits inside an open transaction for this long (default
   * 60 000 ms; 0 = never), so a stalled or partitioned replica cannot hold row locks for ever.
   * Catalog transactions never wait on anything outside the database, so this only fires on faults.
   */
  readonly idleInTransactionTimeoutMs?: number;
  /** Apply pending migrations at open (default true); off where `payload-manager migrate` runs them. */
  readonly migrate?: boolean;
  /** Where the NNNN_name.sql files are; default: the ones shipped in libs/db/migrations/postgres. */
  readonly migrationsDir?: string;
  /**
   * Named (server-side prepared) statements for the catalog's fixed queries (default true). Turn
   * off behind a PgBouncer in transaction pooling mode, which cannot keep them per client.
   */
  readonly preparedStatements?: boolean;
  /**
   * Group commit: concurrent AcquireReadLease / ReleaseLease calls of this process, and the
   * autocommit payload reads, and the inserts and compare-and-sets of AllocatePayload /
   * CommitPayload (together), are coalesced into batches of one statement each; this many batches
   * of each kind run at once, each lane on a connection of its own beside the pool (so 3 × lanes connections; default
   * 1, at most the pool size: one lane makes the largest batches and spends the least database
   * CPU per call; more lanes help where statements are slow and the database has cores to spare).
   * 0 turns coalescing off: each call is then its own one-statement transaction.
   */
  readonly groupCommitLanes?: number;
  /**
   * Called with the number of calls in every group-commit statement sent, and which statement it
   * was (for metrics).
   */
  readonly onGroupCommit?: (size: number, statement: GroupCommitStatement) => void;
  /**
   * Seconds a lane's connection lives before it is replaced (default LANE_LIFETIME_S),
   * which makes its plans again from the tables' current sizes.
   */
  readonly laneLifetimeS?: number;
  /** How often a transaction aborted by a serialization failure or deadlock is run again (default 5). */
  readonly maxRetries?: number;
  /** application_name of the connections, as pg_stat_activity shows it (default "payload-manager"). */
  readonly applicationName?: string;
  /**
   * Faults of idle pooled connections (the server restarted, the network dropped them). The pool
   * replaces them on next use; without a listener such an error would crash the process.
   */
  readonly onPoolError?: (err: Error) => void;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const MIGRATION_LOCK = "payload-manager/migrate";

// int8 (counts, sizes, times, seq) as number, not string; every value the catalog stores is far
// below 2^53, and num() refuses one that is not. Set per pool, not on pg's process-wide parsers.
const INT8_OID = 20;
const TYPES = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === INT8_OID && format !== "binary"
      ? (v: string) => num(v)
      : pg.types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser,
};

export interface CompiledSql {
  readonly text: string;
  readonly name: string;
}

const compiled = new Map<string, CompiledSql>();

/**
 * `?` placeholders (the shared SQL's) to `$n`, and a statement name derived from the text, so a
 * name always means the same text on every connection.
 */
export function compile(sql: string): CompiledSql {
  let c = compiled.get(sql);
  if (!c) {
    let n = 0;
    const text = sql.replace(/\?/g, () => `$${++n}`);
    c = { text, name: `pm_${createHash("sha1").update(text).digest("hex").slice(0, 24)}` };
    compiled.set(sql, c);
  }
  return c;
}

/** The options with the URL's own settings filled in where not given, and the URL without them. */
function resolveOptions(options: PostgresCatalogOptions | string): PostgresCatalogOptions {
  const o: PostgresCatalogOptions = typeof options === "string" ? { url: options } : options;
  const { url, settings } = splitPostgresUrl(o.url);
  const given = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  return { ...settings, ...given, url };
}

function checkSchema(schema: string | undefined): void {
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw invalidArgument(
      `Postgres schema "${schema}" is not allowed: use 1-63 lowercase letters, digits or '_', starting with a letter or '_'`,
      { field: "schema" },
    );
  }
}

function poolConfig(o: PostgresCatalogOptions, max: number): pg.PoolConfig {
  const config: pg.PoolConfig = {
    connectionString: o.url,
    max,
    connectionTimeoutMillis: o.connectTimeoutMs ?? 5_000,
    idleTimeoutMillis: o.idleTimeoutMs ?? 30_000,
    statement_timeout: o.statementTimeoutMs ?? 30_000,
    idle_in_transaction_session_timeout: o.idleInTransactionTimeoutMs ?? 60_000,
    application_name: o.applicationName ?? "payload-manager",
    keepAlive: true,
    // Notice a vanished server (failover, a dropped network path) in seconds, not the OS's hours.
    keepAliveInitialDelayMillis: 10_000,
    types: TYPES,
  };
  if (o.schema !== undefined) config.options = `-c search_path=${o.schema}`;
  return config;
}

function errorContext(o: PostgresCatalogOptions): PgErrorContext {
  return {
    where: describeUrl(o.url),
    statementTimeoutMs: o.statementTimeoutMs ?? 30_000,
    connectTimeoutMs: o.connectTimeoutMs ?? 5_000,
    idleInTransactionTimeoutMs: o.idleInTransactionTimeoutMs ?? 60_000,
  };
}

/** The statements group commit batches (the `statement` label of the batch-size metric). */
export type GroupCommitStatement = "leases" | "payload_reads" | "payload_writes";

const WAITERS: Record<GroupCommitStatement, string> = {
  leases: "lease calls",
  payload_reads: "payload reads",
  payload_writes: "payload inserts and updates",
};

/**
 * Session settings of every group-commit lane (leases, payload reads, payload writes): generic
 * plans, made once per connection, and no sequential scans. Re-planned on every execution, the
 * lease statement cost three times the CPU, and the payload statements (with the
 * payload_counts trigger statements they fire) a third more. A generic plan is made from the
 * table sizes of its moment; one made while a fresh catalog was nearly empty used to look ids up
 * through a listing index (id is its last column), which reads the whole index once the table
 * has grown. The statements now reach payload rows only by `id = ANY(array)` (with ORDER BY id
 * where only the primary key gives that order) or by ctid, and the plan test holds plans made on
 * an empty or never-analyzed table to primary-key lookups. As a safety net the lanes'
 * connections are replaced every LANE_LIFETIME_S seconds, which makes their plans again.
 */
export const LANE_SETTINGS = "-c plan_cache_mode=force_generic_plan -c enable_seqscan=off";
export const LANE_LIFETIME_S = 30;

/** Payload statements batched beside leases (reads; inserts with compare-and-sets), each with `group_commit_lanes` connections. */
const PAYLOAD_STATEMENTS = 2;

/**
 * The catalog in Postgres (production): a connection pool shared by the replicas of a process,
 * row locks with SELECT … FOR UPDATE, transactions re-run on serialization failures and deadlocks,
 * and connection faults reported as DomainError UNAVAILABLE (never a hang: connecting and
 * waiting for a pooled connection are bounded by `connectTimeoutMs`).
 */
export class PostgresCatalog implements Catalog {
  private closing: Promise<void> | undefined;
  private readonly leases: GroupCommit<LeaseOp, LeaseOpResult>;
  /** The autocommit statements of AllocatePayload and CommitPayload, batched the same way. */
  private readonly batched: BatchedStatements | undefined;

  private constructor(
    private readonly pool: pg.Pool,
    /** Connections of the lease lanes (the main pool when coalescing is off). */
    private readonly lanePool: pg.Pool,
    /** Connections of the payload statements' lanes (the main pool when coalescing is off). */
    private readonly payloadPool: pg.Pool,
    private readonly ctx: PgErrorContext,
    private readonly named: boolean,
    private readonly maxRetries: number,
    lanes: number,
    onGroupCommit: PostgresCatalogOptions["onGroupCommit"],
  ) {
    const batcher = <Req, Res>(
      statement: GroupCommitStatement,
      shape: { lanes: number; maxBatch: number },
      run: (batch: readonly Req[]) => Promise<readonly Res[]>,
    ) =>
      new GroupCommit<Req, Res>({
        ...shape,
        // A batch that fails for a reason other than the database being unreachable (which every
        // call would meet alone too) is re-run call by call, so only the call at fault fails.
        isolate: (e) => !(e instanceof DomainError),
        // Queued calls give up when the pool would have: after connectTimeoutMs without a lane.
        maxWaitMs: ctx.connectTimeoutMs,
        waitError: (waited) =>
          new DomainError(
            "UNAVAILABLE",
            `no connection to the Postgres catalog at ${ctx.where} became available within ${ctx.connectTimeoutMs} ms (${WAITERS[statement]} waited ${waited} ms for a group-commit lane): every lane is busy; retry with backoff, or raise pool_size/group_commit_lanes if this persists`,
          ),
        run,
        onBatch: (n) => onGroupCommit?.(n, statement),
      });
    // Lanes 0: no coalescing, each lease call is a batch of one on its own connection.
    const leaseShape = lanes === 0 ? { lanes: pool.options.max, maxBatch: 1 } : { lanes, maxBatch: 256 };
    this.leases = batcher("leases", leaseShape, async (batch: readonly LeaseOp[]) =>
      leaseBatchResults(batch, await this.statement(this.lanePool, LEASE_BATCH_SQL, leaseBatchParams(batch))),
    );
    if (lanes > 0) {
      const shape = { lanes, maxBatch: 256 };
      const reads = batcher("payload_reads", shape, async (ids: readonly PayloadId[]) =>
        readBatchResults(ids, await this.statement(this.payloadPool, READ_BATCH_SQL, readBatchParams(ids))),
      );
      // Inserts (AllocatePayload) and compare-and-sets (CommitPayload) share a lane: the calls
      // waiting together go out as one statement, one round trip and one commit.
      const writes = batcher("payload_writes", shape, async (batch: readonly PayloadWrite[]) => {
        const [sql, params] = writeBatchStatement(batch);
        return writeBatchResults(batch, await this.statement(this.payloadPool, sql, params));
      });
      this.batched = {
        getPayload: (id) => reads.submit(id),
        insertPayload: async (p) => {
          await writes.submit({ kind: "insert", payload: p });
        },
        updatePayloadIf: async (next, expected) => {
          const r = await writes.submit({ kind: "cas", cas: { next, expected } });
          // Locked by a transaction in flight: compare after it, on our own.
          if (r !== CAS_BUSY) return r === true;
          return this.session((alone) => alone.updatePayloadIf(next, expected), false);
        },
      };
    }
  }

  /** Connects and, unless `migrate: false`, applies pending migrations (safe with many replicas at once). */
  static async open(options: PostgresCatalogOptions | string): Promise<PostgresCatalog> {
    const o = resolveOptions(options);
    checkSchema(o.schema);
    const poolSize = o.poolSize ?? 10;
    if (!Number.isInteger(poolSize) || poolSize < 1) {
      throw invalidArgument(`Postgres pool size must be a positive integer, got ${poolSize}`, {
        field: "poolSize",
      });
    }
    const lanes = o.groupCommitLanes ?? 1;
    if (!Number.isInteger(lanes) || lanes < 0 || lanes > poolSize) {
      throw invalidArgument(
        `Postgres group commit lanes must be an integer from 0 to the pool size ${poolSize}, got ${lanes}`,
        { field: "groupCommitLanes" },
      );
    }
    const laneLifetimeS = o.laneLifetimeS ?? LANE_LIFETIME_S;
    if (!Number.isInteger(laneLifetimeS) || laneLifetimeS < 1) {
      throw invalidArgument(
        `Postgres lane lifetime must be a positive whole number of seconds, got ${laneLifetimeS}`,
        {
          field: "laneLifetimeS",
        },
      );
    }
    const ctx = errorContext(o);
    const pool = new pg.Pool(poolConfig(o, poolSize));
    const onPoolError = o.onPoolError;
    pool.on("error", (err) => onPoolError?.(err));
    if (o.migrate !== false) {
      try {
        await runMigrations(pool, o, ctx);
      } catch (e) {
        await pool.end().catch(() => undefined);
        throw e;
      }
    }
    // The lanes get connections of their own beside the pool: `lanes` for leases, and as many
    // for each payload statement, all with LANE_SETTINGS; named apart in pg_stat_activity
    // (`<application_name>/lease-lane`, `…/payload-lane`).
    const lanePoolOf = (size: number, kind: string) => {
      const config = poolConfig(o, size);
      config.options = `${config.options ?? ""} ${LANE_SETTINGS}`.trim();
      config.maxLifetimeSeconds = laneLifetimeS;
      config.application_name = `${o.applicationName ?? "payload-manager"}/${kind}`;
      const p = new pg.Pool(config);
      p.on("error", (err) => onPoolError?.(err));
      return p;
    };
    const lanePool = lanes > 0 ? lanePoolOf(lanes, "lease-lane") : pool;
    const payloadPool = lanes > 0 ? lanePoolOf(lanes * PAYLOAD_STATEMENTS, "payload-lane") : pool;
    return new PostgresCatalog(
      pool,
      lanePool,
      payloadPool,
      ctx,
      o.preparedStatements !== false,
      o.maxRetries ?? 5,
      lanes,
      o.onGroupCommit,
    );
  }

  transaction<T>(fn: (tx: CatalogTx) => Promise<T>): Promise<T> {
    return this.session(fn, true);
  }

  /**
   * Statements one by one, each its own implicit transaction. With group commit on, reading,
   * inserting and compare-and-setting a payload join the batches of concurrent calls (each
   * batch one statement and one commit); other statements run on a pooled connection that is
   * checked out only if `fn` runs one.
   */
  autocommit<T>(fn: (tx: CatalogTx) => Promise<T>): Promise<T> {
    return this.session(fn, false, this.batched);
  }

  /** Runs `fn` on one pooled connection, inside BEGIN/COMMIT when `wrap`, each statement alone otherwise. */
  private async session<T>(
    fn: (tx: CatalogTx) => Promise<T>,
    wrap: boolean,
    batched?: BatchedStatements,
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const exec = new PgExecutor(() => this.connect(), this.named, this.ctx);
      let discard = false;
      try {
        if (wrap) await (await exec.connection()).query("BEGIN");
        const tx = batched
          ? new BatchedAutocommitTx(exec, POSTGRES_DIALECT, batched)
          : new PostgresCatalogTx(exec, POSTGRES_DIALECT);
        const result = await fn(tx);
        exec.end();
        if (wrap) await exec.client!.query("COMMIT");
        return result;
      } catch (e) {
        exec.end();
        try {
          if (wrap && exec.client) await exec.client.query("ROLLBACK");
        } catch {
          discard = true;
        }
        // When the server said why it ended the session (idle-in-transaction timeout, shutdown),
        // that explains the failed statement better than the driver's "not queryable" after it.
        const fault = exec.fault;
        const said = fault !== undefined && /^[0-9A-Z]{5}$/.test(pgCode(fault)) ? fault : undefined;
        const cause = said ?? (e instanceof DomainError && e.cause !== undefined ? e.cause : e);
        if (isSerializationConflict(cause) && attempt < this.maxRetries) {
          await backOff(attempt);
          continue;
        }
        throw pgUnavailable(cause, this.ctx) ?? e;
      } finally {
        exec.release(discard);
      }
    }
  }

  async grantLease(req: LeaseGrantRequest): Promise<LeaseGrantResult> {
    const r = await this.leases.submit({ kind: "grant", req });
    // The payload's row is locked by a transaction in flight: wait for it on our own.
    if (r === BUSY) return this.transaction((tx) => grantLeaseInTx(tx, req));
    return r as LeaseGrantResult;
  }

  async releaseLease(leaseId: LeaseId, namespace: string): Promise<LeaseReleaseResult | undefined> {
    const r = await this.leases.submit({ kind: "release", leaseId, namespace });
    // The lease row is locked by a delete or move revoking it: release it after that, alone.
    if (r === BUSY) return this.transaction((tx) => releaseLeaseInTx(tx, leaseId, namespace));
    return r as LeaseReleaseResult | undefined;
  }

  /**
   * One statement in its own (implicit) transaction on any pooled connection; re-run on a
   * deadlock like `transaction`, faults reported as UNAVAILABLE.
   */
  private async statement(pool: pg.Pool, sql: string, params: unknown[]): Promise<Row[]> {
    const c = compile(sql);
    for (let attempt = 0; ; attempt++) {
      this.checkOpen();
      try {
        const query = this.named
          ? { name: c.name, text: c.text, values: params }
          : { text: c.text, values: params };
        return (await pool.query<Row>(query)).rows;
      } catch (e) {
        if (isSerializationConflict(e) && attempt < this.maxRetries) {
          await backOff(attempt);
          continue;
        }
        throw pgUnavailable(e, this.ctx) ?? e;
      }
    }
  }

  async ping(): Promise<void> {
    try {
      await this.pool.query("SELECT 1");
    } catch (e) {
      throw pgUnavailable(e, this.ctx) ?? e;
    }
  }

  /** Waits for checked-out connections to come back, then closes the pools. Idempotent. */
  close(): Promise<void> {
    this.closing ??= Promise.all(
      [...new Set([this.pool, this.lanePool, this.payloadPool])].map((p) => p.end()),
    ).then(() => undefined);
    return this.closing;
  }

  private checkOpen(): void {
    if (this.closing) {
      throw new DomainError(
        "UNAVAILABLE",
        `the Postgres catalog at ${this.ctx.where} is closed because this process is shutting down; retry against a running instance`,
      );
    }
  }

  private async connect(): Promise<pg.PoolClient> {
    this.checkOpen();
    try {
      return await this.pool.connect();
    } catch (e) {
      throw pgUnavailable(e, this.ctx) ?? e;
    }
  }
}

/** Randomised exponential back-off before re-running a transaction that lost a conflict. */
const backOff = (attempt: number) =>
  sleep(Math.round((2 ** attempt * 5 + Math.random() * 10) * (attempt + 1)));

/**
 * Statements of one session on one pooled connection, checked out at its first statement (an
 * autocommit session whose statements all join group-commit batches never takes one). Refuses
 * to run after the session ended.
 */
class PgExecutor implements SqlExecutor {
  private open = true;
  private connecting: Promise<pg.PoolClient> | undefined;
  /** The checked-out connection, once there is one. */
  client: pg.PoolClient | undefined;
  /**
   * A checked-out connection that fails between queries emits 'error'; with no listener that
   * would crash the process. The first such fault is kept, and the connection discarded.
   */
  fault: Error | undefined;
  private readonly onError = (err: Error) => {
    this.fault ??= err;
  };

  constructor(
    private readonly connect: () => Promise<pg.PoolClient>,
    private readonly named: boolean,
    private readonly ctx: PgErrorContext,
  ) {}

  end(): void {
    this.open = false;
  }

  /** Gives the connection back to the pool (destroyed if it failed or `discard`). */
  release(discard: boolean): void {
    const client = this.client;
    if (!client) return;
    this.client = undefined;
    client.off("error", this.onError);
    client.release(discard || this.fault !== undefined ? (this.fault ?? true) : undefined);
  }

  async all(sql: string, params: readonly unknown[]): Promise<Row[]> {
    return (await this.query(sql, params)).rows;
  }

  async run(sql: string, params: readonly unknown[]): Promise<number> {
    return (await this.query(sql, params)).rowCount ?? 0;
  }

  connection(): Promise<pg.PoolClient> {
    this.connecting ??= this.connect().then((client) => {
      client.on("error", this.onError);
      this.client = client;
      // The session ended while the connection was on its way: hand it straight back.
      if (!this.open) this.release(false);
      return client;
    });
    return this.connecting;
  }

  async query(sql: string, params: readonly unknown[]): Promise<pg.QueryResult<Row>> {
    if (!this.open) {
      // The connection may already serve another transaction: never send anything on it.
      throw new Error(
        "a CatalogTx was used after its transaction ended; await every call inside the callback",
      );
    }
    const client = await this.connection();
    const c = compile(sql);
    try {
      return await client.query<Row>(
        this.named
          ? { name: c.name, text: c.text, values: [...params] }
          : { text: c.text, values: [...params] },
      );
    } catch (e) {
      throw pgUnavailable(e, this.ctx) ?? e;
    }
  }
}

async function runMigrations(
  pool: pg.Pool,
  o: PostgresCatalogOptions,
  ctx: PgErrorContext,
): Promise<MigrationResult> {
  const migrations = loadMigrations(o.migrationsDir ?? defaultMigrationsDir("postgres"));
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (e) {
    throw pgUnavailable(e, ctx) ?? e;
  }
  let discard = false;
  try {
    await client.query("BEGIN");
    // DDL is transactional in Postgres: the whole run lands or none of it. The advisory lock makes
    // replicas that start together wait for the first one instead of failing on its half-made
    // tables; they then find nothing left to apply. A long migration must not trip the
    // statement_timeout meant for catalog queries.
    await client.query("SET LOCAL statement_timeout = 0");
    await client.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [
      `${MIGRATION_LOCK}/${o.schema ?? ""}`,
    ]);
    if (o.schema !== undefined) {
      const ident = pg.escapeIdentifier(o.schema);
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${ident}`);
      await client.query(`SET LOCAL search_path TO ${ident}`);
    }
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    integer     NOT NULL PRIMARY KEY,
      name       text        NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const done = new Set(
      (await client.query<{ version: number }>("SELECT version FROM schema_migrations")).rows.map((r) =>
        Number(r.version),
      ),
    );
    const applied: number[] = [];
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      await client.query(m.sql);
      await client.query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [
        m.version,
        m.name,
      ]);
      applied.push(m.version);
    }
    await client.query("COMMIT");
    return { applied, current: Math.max(0, ...done, ...applied) };
  } catch (e) {
    await client.query("ROLLBACK").catch(() => {
      discard = true;
    });
    throw pgUnavailable(e, ctx) ?? e;
  } finally {
    client.release(discard || undefined);
  }
}

/**
 * Applies pending migrations to the Postgres database at `url` and disconnects; what
 * `payload-manager migrate` runs. Safe to run while replicas start: all serialise on one advisory lock.
 */
export async function migratePostgres(
  url: string,
  options: Omit<PostgresCatalogOptions, "url" | "migrate"> = {},
): Promise<MigrationResult> {
  const o = resolveOptions({ ...options, url });
  checkSchema(o.schema);
  const pool = new pg.Pool(poolConfig(o, 1));
  pool.on("error", (err) => o.onPoolError?.(err));
  try {
    return await runMigrations(pool, o, errorContext(o));
  } finally {
    await pool.end().catch(() => undefined);
  }
}
