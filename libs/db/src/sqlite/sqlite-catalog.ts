import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { type CatalogTx, DomainError, TransactionOnlyCatalog } from "@pm/domain";
import Database from "better-sqlite3";
import { defaultMigrationsDir, loadMigrations, type MigrationResult } from "../migrations.ts";
import { AsyncMutex } from "../sql/async-mutex.ts";
import { type Row, SQLITE_BIND } from "../sql/rows.ts";
import { SqlCatalogTx, type SqlDialect, type SqlExecutor } from "../sql/sql-catalog-tx.ts";
import { mapSqliteError, nativeAddonError } from "./sqlite-errors.ts";

export interface SqliteCatalogOptions {
  /** Database file, created with its directory when missing; ":memory:" for a private in-memory one. */
  readonly path: string;
  /**
   * How long a transaction waits for another process's write lock before it fails UNAVAILABLE
   * (default 5000). better-sqlite3 is synchronous: the wait blocks this process's event loop.
   */
  readonly busyTimeoutMs?: number;
  /**
   * PRAGMA synchronous. NORMAL (default) keeps the database consistent under WAL, but a power cut
   * may lose the last commits; FULL fsyncs every commit.
   */
  readonly synchronous?: "NORMAL" | "FULL";
  /** Where the NNNN_name.sql files are; default: the ones shipped in libs/db/migrations/sqlite. */
  readonly migrationsDir?: string;
}

const DIALECT: SqlDialect = {
  bind: SQLITE_BIND,
  // BEGIN IMMEDIATE already holds the database's single write lock: every transaction is serialised.
  forUpdate: "",
  skipLocked: "",
  inList: (column) => `${column} IN (SELECT value FROM json_each(?))`,
  listParam: (values) => JSON.stringify(values),
};

// One mutex per database file in this process. Two connections of one process must not contend
// through busy_timeout: the waiting one would block the event loop the holder needs to finish.
const fileLocks = new Map<string, { mutex: AsyncMutex; refs: number }>();

function acquireFileLock(path: string): AsyncMutex {
  if (path === ":memory:") return new AsyncMutex();
  const held = fileLocks.get(path) ?? { mutex: new AsyncMutex(), refs: 0 };
  held.refs++;
  fileLocks.set(path, held);
  return held.mutex;
}

function releaseFileLock(path: string): void {
  const held = fileLocks.get(path);
  if (held && --held.refs === 0) fileLocks.delete(path);
}

/**
 * The catalog in a SQLite file (the embedded default). One connection in WAL mode with foreign keys
 * on; `transaction` is async while better-sqlite3 is synchronous, so transactions are serialised
 * through an async mutex and each runs between BEGIN IMMEDIATE and COMMIT/ROLLBACK, never
 * interleaving with another. Other processes on the same file wait up to `busyTimeoutMs`.
 */
export class SqliteCatalog extends TransactionOnlyCatalog {
  private readonly statements = new Map<string, Database.Statement>();
  private closed = false;

  private constructor(
    private readonly db: Database.Database,
    /** The absolute path of the database file, or ":memory:". */
    readonly path: string,
    private readonly busyTimeoutMs: number,
    private readonly lock: AsyncMutex,
  ) {
    super();
  }

  /** Opens (creating if needed) the database and applies pending migrations. */
  static async open(options: SqliteCatalogOptions | string): Promise<SqliteCatalog> {
    const o: SqliteCatalogOptions = typeof options === "string" ? { path: options } : options;
    const busyTimeoutMs = o.busyTimeoutMs ?? 5_000;
    const path = o.path === ":memory:" ? o.path : resolve(o.path);
    const db = openDatabase(path, busyTimeoutMs);
    try {
      if (path !== ":memory:") db.pragma("journal_mode = WAL");
      db.pragma(`busy_timeout = ${Math.trunc(busyTimeoutMs)}`);
      db.pragma("foreign_keys = ON");
      db.pragma(`synchronous = ${o.synchronous === "FULL" ? "FULL" : "NORMAL"}`);
      migrateSqliteDatabase(db, o.migrationsDir);
    } catch (e) {
      db.close();
      throw mapSqliteError(e, path, busyTimeoutMs);
    }
    return new SqliteCatalog(db, path, busyTimeoutMs, acquireFileLock(path));
  }

  transaction<T>(fn: (tx: CatalogTx) => Promise<T>): Promise<T> {
    return this.lock.run(async () => {
      this.checkOpen();
      const exec = new SqliteExecutor(
        (sql) => this.statement(sql),
        (e) => this.mapError(e),
      );
      try {
        this.db.exec("BEGIN IMMEDIATE");
        const result = await fn(new SqlCatalogTx(exec, DIALECT));
        exec.end();
        this.db.exec("COMMIT");
        return result;
      } catch (e) {
        exec.end();
        if (this.db.open && this.db.inTransaction) {
          try {
            this.db.exec("ROLLBACK");
          } catch {
            // The connection is failing anyway; the error that got us here is the one to report.
          }
        }
        throw this.mapError(e);
      }
    });
  }

  async ping(): Promise<void> {
    this.checkOpen();
    try {
      this.statement("SELECT 1").get();
    } catch (e) {
      throw this.mapError(e);
    }
  }

  /** Waits for running transactions, then closes the connection. Idempotent. */
  close(): Promise<void> {
    return this.lock.run(async () => {
      if (this.closed) return;
      this.closed = true;
      this.statements.clear();
      this.db.close();
      releaseFileLock(this.path);
    });
  }

  private statement(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  private mapError(e: unknown): unknown {
    return mapSqliteError(e, this.path, this.busyTimeoutMs);
  }

  private checkOpen(): void {
    if (this.closed) {
      throw new DomainError(
        "UNAVAILABLE",
        `the SQLite catalog at ${this.path} is closed because this process is shutting down; retry against a running instance`,
      );
    }
  }
}

/** Statements of one transaction; refuses to run after the transaction ended. */
class SqliteExecutor implements SqlExecutor {
  private open = true;

  constructor(
    private readonly statement: (sql: string) => Database.Statement,
    private readonly mapError: (e: unknown) => unknown,
  ) {}

  end(): void {
    this.open = false;
  }

  async all(sql: string, params: readonly unknown[]): Promise<Row[]> {
    this.check();
    try {
      return this.statement(sql).all(...params) as Row[];
    } catch (e) {
      throw this.mapError(e);
    }
  }

  async run(sql: string, params: readonly unknown[]): Promise<number> {
    this.check();
    try {
      return this.statement(sql).run(...params).changes;
    } catch (e) {
      throw this.mapError(e);
    }
  }

  private check(): void {
    if (!this.open) {
      throw new Error(
        "a CatalogTx was used after its transaction ended; await every call inside the callback",
      );
    }
  }
}

function openDatabase(path: string, busyTimeoutMs: number): Database.Database {
  try {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    return new Database(path, { timeout: busyTimeoutMs });
  } catch (e) {
    const native = nativeAddonError(e);
    if (native) throw native;
    const mapped = mapSqliteError(e, path, busyTimeoutMs);
    if (mapped !== e) throw mapped;
    const err = new DomainError(
      "UNAVAILABLE",
      `cannot open the SQLite catalog at ${path} (${e instanceof Error ? e.message : String(e)}); check that its directory can be created and written by this process`,
      { database: "sqlite" },
    );
    err.cause = e;
    throw err;
  }
}

/**
 * Applies the pending migrations to an open database in one BEGIN IMMEDIATE transaction, so
 * processes opening the same file at once apply each step exactly once. Migration files must not
 * contain transaction control statements. Versions the database has but this code does not know
 * (a newer release migrated it) are left alone: migrations are forward-only and additive.
 */
export function migrateSqliteDatabase(
  db: Database.Database,
  dir: string = defaultMigrationsDir("sqlite"),
): MigrationResult {
  const migrations = loadMigrations(dir);
  db.exec("BEGIN IMMEDIATE");
  try {
    db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    INTEGER NOT NULL PRIMARY KEY,
      name       TEXT    NOT NULL,
      applied_at INTEGER NOT NULL
    )`);
    const done = new Set(
      db
        .prepare("SELECT version FROM schema_migrations")
        .pluck()
        .all()
        .map((v) => Number(v)),
    );
    const record = db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)");
    const applied: number[] = [];
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      db.exec(m.sql);
      record.run(m.version, m.name, Date.now());
      applied.push(m.version);
    }
    db.exec("COMMIT");
    return { applied, current: Math.max(0, ...done, ...applied) };
  } catch (e) {
    if (db.inTransaction) db.exec("ROLLBACK");
    throw e;
  }
}

/** Opens the SQLite database at `path`, applies pending migrations and closes it again. */
export async function migrateSqlite(
  path: string,
  options: Omit<SqliteCatalogOptions, "path"> = {},
): Promise<MigrationResult> {
  const resolved = resolve(path);
  const busyTimeoutMs = options.busyTimeoutMs ?? 5_000;
  const db = openDatabase(resolved, busyTimeoutMs);
  try {
    db.pragma("journal_mode = WAL");
    return migrateSqliteDatabase(db, options.migrationsDir);
  } catch (e) {
    throw mapSqliteError(e, resolved, busyTimeoutMs);
  } finally {
    db.close();
  }
}
