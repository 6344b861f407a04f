import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultMigrationsDir, loadMigrations } from "@pm/db";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../support/system.ts";
import { createDatabase, type TestDatabase } from "./lib/postgres.ts";

// `payload-manager migrate` as an operator runs it before rolling out API replicas.
let db: TestDatabase;
const dir = mkdtempSync(join(tmpdir(), "pm-migrate-"));

beforeAll(async () => {
  db = await createDatabase("pm_migrate");
});
afterAll(async () => {
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

function run(args: readonly string[], env: Record<string, string>) {
  const r = spawnSync(process.execPath, [join(ROOT, "bin/payload-manager.mjs"), "migrate", ...args], {
    cwd: dir,
    env: { ...process.env, ...env },
    encoding: "utf8",
    timeout: 30_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe("payload-manager migrate", () => {
  const pgVersions = loadMigrations(defaultMigrationsDir("postgres")).map((m) => m.version);
  const latest = pgVersions[pgVersions.length - 1];

  it("applies every Postgres migration once, prints them, and then finds nothing to do", async () => {
    const first = run([], { PM_CATALOG_URL: db.url });
    expect(first).toMatchObject({ code: 0, err: "" });
    expect(first.out.trim()).toBe(
      `applied migrations ${pgVersions.join(", ")}; the catalog schema is at version ${latest}`,
    );
    const again = run([], { PM_CATALOG_URL: db.url });
    expect(again).toMatchObject({ code: 0 });
    expect(again.out.trim()).toBe(`nothing to apply; the catalog schema is at version ${latest}`);

    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    const { rows } = await c.query("SELECT version FROM schema_migrations ORDER BY version");
    await c.end();
    expect(rows.map((r) => r.version)).toEqual(pgVersions);
  });

  it("reads the catalog URL from the config file", () => {
    const file = join(dir, "pm.yaml");
    writeFileSync(file, `api:\n  catalogUrl: sqlite:${join(dir, "catalog.db")}\n`);
    const r = run(["--config", file], {});
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^applied migrations 1(, \d+)*; the catalog schema is at version \d+/);
  });

  it("exits 2 on configuration errors, listing the problem", () => {
    const scheme = run([], { PM_CATALOG_URL: "mysql://db/x" });
    expect(scheme.code).toBe(2);
    expect(scheme.err).toMatch(/scheme "mysql:" is not supported/);
    const param = run([], { PM_CATALOG_URL: `${db.url}?pool_size=0` });
    expect(param.code).toBe(2);
    expect(param.err).toMatch(/pool_size=0 must be an integer of at least 1/);
    const missing = run(["--config", join(dir, "nope.yaml")], {});
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/cannot read config file/);
  });

  it("exits 1 with an actionable message when the database cannot be reached", () => {
    const r = run([], { PM_CATALOG_URL: "postgres://postgres@127.0.0.1:1/x" });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/cannot reach the Postgres catalog .* check that Postgres is running/);
  });
});
