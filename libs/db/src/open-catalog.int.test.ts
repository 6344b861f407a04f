import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MemoryCatalog } from "@pm/domain/testing";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import {
  defaultMigrationsDir,
  loadMigrations,
  migrate,
  openCatalog,
  PostgresCatalog,
  SqliteCatalog,
} from "./index.ts";

const URL = process.env.PM_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const dir = mkdtempSync(join(tmpdir(), "pm-open-"));
const schema = `pm_test_${randomBytes(6).toString("hex")}`;

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  const admin = new pg.Client(URL);
  await admin.connect();
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await admin.end();
});

describe("openCatalog and migrate", () => {
  it("opens the in-memory catalog", async () => {
    const catalog = await openCatalog("memory:");
    expect(catalog).toBeInstanceOf(MemoryCatalog);
    expect(await migrate("memory:")).toEqual({ applied: [], current: 0 });
  });

  it("opens a SQLite file named by sqlite: or a plain path, after `migrate` prepared it", async () => {
    const path = join(dir, "catalog.db");
    expect(await migrate(`sqlite:${path}`)).toEqual({ applied: [1], current: 1 });
    for (const url of [`sqlite:${path}`, path]) {
      const catalog = await openCatalog(url, { sqlite: { busyTimeoutMs: 1_000 } });
      expect(catalog).toBeInstanceOf(SqliteCatalog);
      await catalog.ping();
      await catalog.close();
    }
  });

  it("opens Postgres, with the migrations run by `migrate` beforehand", async () => {
    const shipped = loadMigrations(defaultMigrationsDir("postgres")).map((m) => m.version);
    const latest = shipped[shipped.length - 1];
    expect(await migrate(URL, { postgres: { schema } })).toEqual({ applied: shipped, current: latest });
    const catalog = await openCatalog(URL, { postgres: { schema, migrate: false, poolSize: 2 } });
    expect(catalog).toBeInstanceOf(PostgresCatalog);
    expect(await catalog.transaction((t) => t.listAgents())).toEqual([]);
    await catalog.close();
    expect(await migrate(URL, { postgres: { schema } })).toEqual({ applied: [], current: latest });
  });
});
