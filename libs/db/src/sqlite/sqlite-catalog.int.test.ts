import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  asPayloadId,
  type CatalogTx,
  DEFAULT_EVICTION_POLICY,
  type DomainError,
  type Payload,
} from "@pm/domain";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { defaultMigrationsDir } from "../migrations.ts";
import { catalogContract } from "../testing/catalog.contract.ts";
import { migrateSqlite, SqliteCatalog } from "./sqlite-catalog.ts";

// A real database file in a temporary directory per test: WAL, foreign keys and the migrations
// run exactly as in the embedded default. In the integration project because it touches the disk,
// though it needs no service and runs in well under a second.

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "pm-sqlite-"));
  tempDirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

catalogContract("sqlite (file)", async () => {
  const catalog = await SqliteCatalog.open(join(tempDir(), "catalog.db"));
  return { catalog, cleanup: () => catalog.close() };
});

catalogContract("sqlite (:memory:)", async () => {
  const catalog = await SqliteCatalog.open(":memory:");
  return { catalog, cleanup: () => catalog.close() };
});

const P1 = asPayloadId("00000000-0000-4000-8000-000000000001");
const payload: Payload = {
  id: P1,
  namespace: "ns",
  sizeBytes: 10,
  state: "ACTIVE",
  version: 1,
  placement: {
    tier: "RAM",
    agentId: "a",
    host: "h",
    lengthBytes: 10,
    location: { kind: "ram", shmName: "/x" },
  },
  pendingPlacement: undefined,
  createdAt: 1,
  updatedAt: 1,
  expiresAt: undefined,
  lastAccessAt: 1,
  noEvict: false,
  evictionPolicy: DEFAULT_EVICTION_POLICY,
  checksum: undefined,
};

const increment = (t: CatalogTx) =>
  t.lockPayload(P1).then(async (p) => {
    await new Promise((r) => setImmediate(r));
    await t.updatePayload({ ...p!, version: p!.version + 1 });
  });

async function expectUnavailable(p: Promise<unknown>, message: RegExp): Promise<DomainError> {
  const err = (await p.then(
    () => undefined,
    (e: unknown) => e,
  )) as DomainError;
  expect(err).toMatchObject({ name: "DomainError", code: "UNAVAILABLE", retryable: true });
  expect(err.message).toMatch(message);
  return err;
}

describe("SqliteCatalog", () => {
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = tempDir();
    path = join(dir, "nested", "catalog.db");
  });

  it("creates the directory, runs in WAL mode and records the applied migrations", async () => {
    const catalog = await SqliteCatalog.open({ path });
    expect(catalog.path).toBe(path);
    await catalog.close();
    const raw = new Database(path, { readonly: true });
    try {
      expect(raw.pragma("journal_mode", { simple: true })).toBe("wal");
      expect(raw.prepare("SELECT version, name FROM schema_migrations").all()).toEqual([
        { version: 1, name: "initial" },
      ]);
      const tables = raw
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .pluck()
        .all();
      for (const t of [
        "payloads",
        "leases",
        "pins",
        "payload_metadata",
        "metadata_events",
        "lineage_edges",
        "agents",
        "retired_regions",
        "streams",
        "stream_entries",
        "stream_commits",
      ]) {
        expect(tables).toContain(t);
      }
    } finally {
      raw.close();
    }
  });

  it("keeps the data across a restart and migrates nothing twice", async () => {
    const first = await SqliteCatalog.open(path);
    await first.transaction((t) => t.insertPayload(payload));
    await first.close();
    expect(await migrateSqlite(path)).toEqual({ applied: [], current: 1 });
    const second = await SqliteCatalog.open(path);
    expect(await second.transaction((t) => t.getPayload(P1))).toStrictEqual(payload);
    await second.close();
  });

  it("applies only the new steps of a migrations directory, and none of a failing one", async () => {
    const migrations = join(dir, "migrations");
    mkdirSync(migrations);
    copyFileSync(
      join(defaultMigrationsDir("sqlite"), "0001_initial.sql"),
      join(migrations, "0001_initial.sql"),
    );
    expect(await migrateSqlite(path, { migrationsDir: migrations })).toEqual({ applied: [1], current: 1 });

    writeFileSync(join(migrations, "0002_extra.sql"), "CREATE TABLE extra (x INTEGER);");
    writeFileSync(
      join(migrations, "0003_broken.sql"),
      "CREATE TABLE more (y INTEGER); SELECT * FROM nowhere;",
    );
    await expect(migrateSqlite(path, { migrationsDir: migrations })).rejects.toThrow(/nowhere/);
    rmSync(join(migrations, "0003_broken.sql"));
    const raw = new Database(path, { readonly: true });
    expect(raw.prepare("SELECT name FROM sqlite_master WHERE name IN ('extra', 'more')").all()).toEqual([]);
    raw.close();

    expect(await migrateSqlite(path, { migrationsDir: migrations })).toEqual({ applied: [2], current: 2 });
    const catalog = await SqliteCatalog.open({ path, migrationsDir: migrations });
    await catalog.close();
  });

  it("opens a database that a newer release has migrated further", async () => {
    await (await SqliteCatalog.open(path)).close();
    const raw = new Database(path);
    raw.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)").run();
    raw.close();
    const catalog = await SqliteCatalog.open(path);
    await catalog.transaction((t) => t.insertPayload(payload));
    await catalog.close();
  });

  it("refuses a misnamed migration file", async () => {
    const migrations = join(dir, "migrations");
    mkdirSync(migrations);
    writeFileSync(join(migrations, "1_initial.sql"), "SELECT 1;");
    await expect(SqliteCatalog.open({ path, migrationsDir: migrations })).rejects.toThrow(/NNNN_name\.sql/);
  });

  it("never loses an update between two catalogs on one file in one process", async () => {
    const a = await SqliteCatalog.open(path);
    const b = await SqliteCatalog.open(path);
    await a.transaction((t) => t.insertPayload(payload));
    await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).transaction(increment)));
    expect((await b.transaction((t) => t.getPayload(P1)))!.version).toBe(41);
    await a.close();
    await b.close();
  });

  it("reports UNAVAILABLE when another process holds the write lock past busy_timeout", async () => {
    const catalog = await SqliteCatalog.open({ path, busyTimeoutMs: 100 });
    const other = new Database(path);
    other.exec("BEGIN IMMEDIATE");
    const started = Date.now();
    await expectUnavailable(
      catalog.transaction((t) => t.insertPayload(payload)),
      /locked by another connection .*busy_timeout \(100 ms\).*retry/,
    );
    expect(Date.now() - started).toBeLessThan(2_000);
    other.exec("ROLLBACK");
    other.close();
    await catalog.transaction((t) => t.insertPayload(payload));
    await catalog.close();
  });

  it("refuses a CatalogTx used after its transaction ended", async () => {
    const catalog = await SqliteCatalog.open(path);
    let leaked: CatalogTx | undefined;
    await catalog.transaction(async (t) => {
      leaked = t;
    });
    await expect(leaked!.insertPayload(payload)).rejects.toThrow(/after its transaction ended/);
    expect(await catalog.transaction((t) => t.getPayload(P1))).toBeUndefined();
    await catalog.close();
  });

  it("finishes running transactions on close and is UNAVAILABLE afterwards", async () => {
    const catalog = await SqliteCatalog.open(path);
    const running = catalog.transaction(async (t) => {
      await new Promise((r) => setTimeout(r, 20));
      await t.insertPayload(payload);
    });
    await catalog.close();
    await running;
    await catalog.close();
    await expectUnavailable(catalog.ping(), /closed/);
    await expectUnavailable(
      catalog.transaction((t) => t.getPayload(P1)),
      /closed/,
    );
    const reopened = await SqliteCatalog.open(path);
    expect(await reopened.transaction((t) => t.getPayload(P1))).toBeDefined();
    await reopened.close();
  });

  it("reports UNAVAILABLE for a file that is not a database or a directory it cannot create", async () => {
    const junk = join(dir, "junk.db");
    writeFileSync(junk, "this is not a SQLite database, just some text that is long enough".repeat(20));
    await expectUnavailable(SqliteCatalog.open(junk), /damaged or not a SQLite database.*restore/);
    const blocked = join(junk, "sub", "catalog.db");
    await expectUnavailable(
      SqliteCatalog.open(blocked),
      /cannot open the SQLite catalog.*ENOTDIR.*written by this process/,
    );
  });
});
