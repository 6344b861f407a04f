import { createHash, randomBytes } from "node:crypto";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  asLeaseId,
  asPayloadId,
  DEFAULT_EVICTION_POLICY,
  type LeaseId,
  type Payload,
  type PayloadState,
  type StorageTier,
} from "@pm/domain";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultMigrationsDir } from "../migrations.ts";
import { payloadFrom, type Row } from "../sql/rows.ts";
import type { SqlExecutor } from "../sql/sql-catalog-tx.ts";
import { LEASE_BATCH_SQL, leaseBatchParams } from "./lease-batches.ts";
import {
  CAS_BATCH_SQL,
  casBatchParams,
  INSERT_BATCH_SQL,
  insertBatchParams,
  type PayloadWrite,
  READ_BATCH_SQL,
  readBatchParams,
  writeBatchStatement,
} from "./payload-batches.ts";
import { compile, LANE_SETTINGS, migratePostgres, PostgresCatalog } from "./postgres-catalog.ts";
import { POSTGRES_DIALECT, PostgresCatalogTx } from "./postgres-catalog-tx.ts";

// The catalog's hot queries must be index lookups however big the catalog grows. This seeds 50k
// payloads and 50k leases, ANALYZEs, then has the real PostgresCatalogTx methods send their SQL to
// an executor that EXPLAINs each statement instead of running it, with the custom plan (what an
// unnamed statement gets) and the generic plan (what a named prepared statement may switch to
// after five runs). A Seq Scan of payloads or leases in either plan fails the test.
const URL = process.env.PM_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const ROWS = 50_000;
const T0 = 1_767_225_600_000; // 2026-01-01

let admin: pg.Pool;
const schemas: string[] = [];
const newSchema = () => {
  const s = `pm_test_${randomBytes(6).toString("hex")}`;
  schemas.push(s);
  return s;
};

beforeAll(() => {
  admin = new pg.Pool({ connectionString: URL, max: 2 });
});
afterAll(async () => {
  for (const s of schemas) await admin.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  await admin.end();
});

/** Bulk rows in the shapes the API writes: two namespaces, every state and tier, some TTLs. */
async function seed(client: pg.ClientBase, rows: number, first = 1, analyze = true): Promise<void> {
  await client.query(
    `INSERT INTO payloads (id, namespace, size_bytes, state, version, tier, agent_id, host, length_bytes,
       location, created_at, updated_at, expires_at, last_access_at, no_evict, eviction_priority, require_durable)
     SELECT md5(g::text)::uuid::text, CASE WHEN g % 10 = 0 THEN 'other' ELSE 'default' END, 4096 + g % 7,
       (ARRAY['ACTIVE','ACTIVE','ACTIVE','DURABLE','ACTIVE','ALLOCATED','ACTIVE','DURABLE','ACTIVE','ACTIVE',
              'ACTIVE','DURABLE','ACTIVE','ACTIVE','SPILLING','ACTIVE','DURABLE','ACTIVE','DELETING','EXPIRED'])[1 + g % 20],
       2, (ARRAY['RAM','RAM','RAM','DISK','DISK','GPU','OBJECT'])[1 + g % 7], 'agent-' || (g % 40), 'host', 4096,
       '{"kind":"ram","shmName":"/x"}', $1::bigint + g, $1::bigint + g,
       CASE WHEN g % 4 = 0 THEN $1::bigint + g * 20 END, $1::bigint + g, false, 'NORMAL', false
     FROM generate_series($3::int, $2::int) g`,
    [T0, rows, first],
  );
  await client.query(
    `INSERT INTO leases (id, payload_id, namespace, version, created_at, expires_at, revoked)
     SELECT md5('lease' || g::text)::uuid::text, md5((1 + g % $2::int)::text)::uuid::text, 'default', 2,
       $1::bigint + g, $1::bigint + g * 3, false
     FROM generate_series($3::int, $2::int) g`,
    [T0, rows, first],
  );
  if (analyze) await client.query("ANALYZE");
}

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  Plans?: PlanNode[];
}

const scans = (n: PlanNode): string[] => [
  ...(n["Node Type"] === "Seq Scan" ? [n["Relation Name"] ?? "?"] : []),
  ...(n.Plans ?? []).flatMap(scans),
];

const literal = (v: unknown): string => {
  if (v === null || v === undefined) return "NULL";
  if (typeof v === "number" || typeof v === "bigint") return String(v);
  if (typeof v === "boolean") return v ? "true" : "false";
  if (Array.isArray(v)) return `ARRAY[${v.map(literal).join(", ")}]::text[]`;
  return pg.escapeLiteral(String(v));
};

/** Records the custom and the generic plan of every statement; runs nothing. */
class ExplainingExecutor implements SqlExecutor {
  readonly plans: { sql: string; mode: string; seqScans: string[] }[] = [];
  private n = 0;

  constructor(private readonly client: pg.ClientBase) {}

  async all(sql: string, params: readonly unknown[]): Promise<Row[]> {
    const { text } = compile(sql);
    const name = `explain_${++this.n}`;
    await this.client.query(`PREPARE ${name} AS ${text}`);
    const args = params.length > 0 ? `(${params.map(literal).join(", ")})` : "";
    for (const mode of ["force_custom_plan", "force_generic_plan"]) {
      await this.client.query(`SET plan_cache_mode = ${mode}`);
      const res = await this.client.query<{ "QUERY PLAN": { Plan: PlanNode }[] }>(
        `EXPLAIN (FORMAT JSON) EXECUTE ${name}${args}`,
      );
      const plan = res.rows[0]!["QUERY PLAN"][0]!.Plan;
      this.plans.push({ sql: text.replace(/\s+/g, " "), mode, seqScans: scans(plan) });
    }
    await this.client.query(`DEALLOCATE ${name}`);
    return [];
  }

  async run(sql: string, params: readonly unknown[]): Promise<number> {
    await this.all(sql, params);
    return 0;
  }
}

describe("Postgres query plans at scale", () => {
  it(`uses an index for every hot query on ${ROWS} payloads and ${ROWS} leases`, async () => {
    const schema = newSchema();
    await migratePostgres(URL, { schema });
    const client = await admin.connect();
    try {
      await client.query(`SET search_path TO ${schema}`);
      await seed(client, ROWS);
      const exec = new ExplainingExecutor(client);
      const tx = new PostgresCatalogTx(exec, POSTGRES_DIALECT);
      const id = asPayloadId(md5Uuid("777"));
      const now = T0 + ROWS;
      // AcquireReadLease: lock the payload, insert the lease, bump last access; delete and
      // finalize look up live leases; ReleaseLease reads and deletes the lease.
      await tx.lockPayload(id);
      await tx.getPayload(id);
      await tx.insertLease({
        id: asLeaseId(md5Uuid("new-lease")),
        payloadId: id,
        namespace: "default",
        version: 2,
        createdAt: now,
        expiresAt: now + 20_000,
        revoked: false,
      });
      await tx.liveLeases(id, now);
      await tx.getLease(asLeaseId(md5Uuid("lease1")));
      await tx.deleteLease(asLeaseId(md5Uuid("lease1")));
      await tx.getPin(id);
      await tx.deletePayload(id);
      // ListPayloads: first page and a deep keyset page, with and without filters.
      const after = { createdAt: T0 + ROWS / 10, id: md5Uuid(String(ROWS / 10)) };
      for (const tier of [undefined, "RAM", "GPU"] as (StorageTier | undefined)[]) {
        for (const state of [undefined, "ACTIVE", "SPILLING"] as (PayloadState | undefined)[]) {
          for (const cursor of [undefined, after]) {
            await tx.listPayloads({ namespace: "default", tier, state, limit: 51, after: cursor, now });
          }
        }
      }
      await tx.tierStats("default");
      await tx.tierStats(undefined);
      // The worker's sweeps.
      await tx.findExpired(now, 500);
      await tx.findAbandoned(now - 600_000, 500);
      await tx.findDeleting(500);
      await tx.deleteExpiredLeases(now, 500);
      await tx.placementsOnAgent("agent-7");

      const bad = exec.plans.filter((p) => p.seqScans.some((r) => r === "payloads" || r === "leases"));
      expect(exec.plans.length).toBeGreaterThan(40);
      expect(bad, JSON.stringify(bad, null, 2)).toEqual([]);
    } finally {
      client.release();
    }
  });

  it.each([
    ["a table never analyzed", -1],
    ["an empty table", 0],
    ["64 rows", 64],
    ["1 000 rows", 1_000],
  ])(
    "keeps the group-commit statements on primary-key lookups with plans made on %s, after it grew to 20 000",
    async (_, plannedAt) => {
      // A fresh catalog filling up: the tables hold 20 000 rows, the statistics still say
      // `plannedAt` (autovacuum is off here, as it would not have come round yet), and the
      // statements were first run (planned) back then. Each must still touch only the rows of
      // its batch, through the primary key. The lanes keep the generic plan a statement got on
      // its first run (LANE_SETTINGS), so every statement must pass
      // from a never-analyzed or an empty table on.
      const schema = newSchema();
      await migratePostgres(URL, { schema });
      const client = await admin.connect();
      try {
        await client.query(`SET search_path TO ${schema}`);
        await client.query("ALTER TABLE payloads SET (autovacuum_enabled = false)");
        await client.query("ALTER TABLE leases SET (autovacuum_enabled = false)");
        if (plannedAt > 0) await seed(client, plannedAt);
        else if (plannedAt === 0) await client.query("ANALYZE");
        // As a lane connection starts: its settings.
        for (const [, name, value] of LANE_SETTINGS.matchAll(/-c (\w+)=(\w+)/g)) {
          await client.query(`SET ${name} = ${value}`);
        }
        const mode = (await client.query("SELECT current_setting('plan_cache_mode') AS m")).rows[0].m;
        expect(mode).toBe("force_generic_plan");
        const warmUp = batchStatements(
          Array.from({ length: 8 }, (_, i) => syntheticPayload(md5Uuid(`warm-${i}`))),
          Array.from({ length: 8 }, (_, i) => asLeaseId(md5Uuid(`warm-lease-${i}`))),
        );
        for (const [i, [, sql, params]] of warmUp.entries()) {
          await client.query(`PREPARE batch${i} AS ${compile(sql).text}`);
          await client.query("BEGIN");
          await client.query(`EXECUTE batch${i}(${params.map(argument).join(", ")})`);
          await client.query("ROLLBACK");
        }
        await seed(client, 20_000, plannedAt + 1, false);
        const active = (
          await client.query("SELECT * FROM payloads WHERE state = 'ACTIVE' ORDER BY id LIMIT 8 OFFSET 500")
        ).rows.map(payloadFrom);
        const leaseIds = (
          await client.query<{ id: string }>("SELECT id FROM leases ORDER BY id LIMIT 8 OFFSET 500")
        ).rows.map((r) => asLeaseId(r.id));
        const bad: string[] = [];
        for (const [i, [what, , params]] of batchStatements(active, leaseIds).entries()) {
          await client.query("BEGIN");
          try {
            const res = await client.query<{ "QUERY PLAN": { Plan: AnalyzedNode }[] }>(
              `EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE batch${i}(${params.map(argument).join(", ")})`,
            );
            const plan = res.rows[0]!["QUERY PLAN"][0]!.Plan;
            for (const n of tableScans(plan)) {
              const rows = n["Actual Rows"] * n["Actual Loops"];
              if (rows > 50)
                bad.push(`${what}: ${n["Node Type"]} on ${n["Relation Name"]} read ${rows} rows`);
            }
            // A lookup by id through another index (id is the last column of the listing
            // indexes) reads the whole index while returning few rows.
            for (const n of indexScans(plan)) {
              const table = n["Index Name"]!.startsWith("leases") ? "leases" : "payloads";
              if (/\bid = /.test(n["Index Cond"] ?? "") && n["Index Name"] !== `${table}_pkey`)
                bad.push(`${what}: looks ids up through ${n["Index Name"]} (${n["Index Cond"]})`);
            }
          } finally {
            await client.query("ROLLBACK");
          }
        }
        expect(bad).toEqual([]);
        expect(active).toHaveLength(8);
        expect(leaseIds).toHaveLength(8);
      } finally {
        await client.query("DEALLOCATE ALL");
        client.release();
      }
    },
  );

  it("keeps payload_counts equal to the rows through bulk loads, state changes and deletes", async () => {
    const schema = newSchema();
    await migratePostgres(URL, { schema });
    const client = await admin.connect();
    const catalog = await PostgresCatalog.open({ url: URL, schema, poolSize: 4 });
    try {
      await client.query(`SET search_path TO ${schema}`);
      await seed(client, 5_000);
      await client.query(
        "UPDATE payloads SET state = 'DELETING' WHERE state = 'ACTIVE' AND size_bytes % 7 = 1",
      );
      await client.query("UPDATE payloads SET tier = 'DISK' WHERE tier = 'RAM' AND size_bytes % 7 = 2");
      // A lease's touch changes no counted column: the counters are not written at all.
      const counters = () => client.query("SELECT ctid, * FROM payload_counts ORDER BY ctid");
      const before = (await counters()).rows;
      const touched = await client.query(
        "UPDATE payloads SET last_access_at = last_access_at + 1 WHERE size_bytes % 7 = 3",
      );
      expect(touched.rowCount).toBeGreaterThan(500);
      expect((await counters()).rows).toEqual(before);
      // One statement moving rows between namespaces, tiers, states and sizes at once, some of
      // them back and forth within the same group.
      await client.query(
        `UPDATE payloads SET namespace = CASE WHEN size_bytes % 7 = 5 THEN 'moved' ELSE namespace END,
           size_bytes = size_bytes + CASE WHEN size_bytes % 7 = 6 THEN 10 ELSE 0 END,
           state = CASE WHEN state = 'DURABLE' THEN 'SPILLING' WHEN state = 'SPILLING' THEN 'DURABLE' ELSE state END
         WHERE size_bytes % 7 IN (0, 5, 6)`,
      );
      await client.query("UPDATE payloads SET state = state WHERE false");
      await client.query("DELETE FROM payloads WHERE size_bytes % 7 = 4");
      // Concurrent single-row changes through the catalog, from several connections.
      const ids = (await client.query<{ id: string }>("SELECT id FROM payloads ORDER BY id LIMIT 200")).rows;
      await Promise.all(
        ids.map(({ id }, i) =>
          catalog.transaction(async (t) => {
            const p = await t.lockPayload(asPayloadId(id));
            if (!p) return;
            if (i % 3 === 0) await t.deletePayload(p.id);
            else await t.updatePayload({ ...p, state: i % 3 === 1 ? "DURABLE" : "EXPIRED", version: 3 });
          }),
        ),
      );
      const counted = await client.query(
        `SELECT namespace, tier, state, count(*)::int AS n, sum(size_bytes)::bigint AS bytes FROM payloads
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
      );
      const kept = await client.query(
        `SELECT namespace, tier, state, sum(payloads)::int AS n, sum(bytes)::bigint AS bytes FROM payload_counts
         GROUP BY 1, 2, 3 HAVING sum(payloads) <> 0 ORDER BY 1, 2, 3`,
      );
      expect(kept.rows).toEqual(counted.rows);
      const list = await catalog.transaction((t) =>
        t.listPayloads({
          namespace: "default",
          tier: "DISK",
          state: undefined,
          limit: 1,
          after: undefined,
          now: 0,
        }),
      );
      const disk = await client.query(
        "SELECT count(*)::int AS n FROM payloads WHERE namespace = 'default' AND tier = 'DISK'",
      );
      expect(list.total).toBe(disk.rows[0].n);
    } finally {
      client.release();
      await catalog.close();
    }
  });

  it("backfills the counters when 0002 upgrades a catalog that already holds payloads", async () => {
    const schema = newSchema();
    const only0001 = mkdtempSync(join(tmpdir(), "pm-mig-"));
    try {
      cpSync(join(defaultMigrationsDir("postgres"), "0001_initial.sql"), join(only0001, "0001_initial.sql"));
      expect(await migratePostgres(URL, { schema, migrationsDir: only0001 })).toEqual({
        applied: [1],
        current: 1,
      });
      const client = await admin.connect();
      try {
        await client.query(`SET search_path TO ${schema}`);
        await seed(client, 2_000);
      } finally {
        client.release();
      }
      const upgraded = await migratePostgres(URL, { schema });
      expect(upgraded.applied).toContain(2);
      const catalog = await PostgresCatalog.open({ url: URL, schema, poolSize: 1 });
      const all = await catalog.transaction((t) =>
        t.listPayloads({
          namespace: "default",
          tier: undefined,
          state: undefined,
          limit: 1,
          after: undefined,
          now: 0,
        }),
      );
      await catalog.close();
      expect(all.total).toBe(2_000 - 200);
    } finally {
      rmSync(only0001, { recursive: true, force: true });
    }
  });
});

/** A committed RAM payload of the default namespace. */
const syntheticPayload = (id: string): Payload => ({
  id: asPayloadId(id),
  namespace: "default",
  sizeBytes: 4096,
  state: "ACTIVE",
  version: 2,
  placement: {
    tier: "RAM",
    agentId: "agent-1",
    host: "host",
    lengthBytes: 4096,
    location: { kind: "ram", shmName: `/pm-${id}.bin` },
  },
  pendingPlacement: undefined,
  createdAt: T0,
  updatedAt: T0,
  expiresAt: undefined,
  lastAccessAt: T0,
  noEvict: false,
  evictionPolicy: DEFAULT_EVICTION_POLICY,
  checksum: undefined,
});

/** Every group-commit statement, with a batch of grants, releases, reads, inserts and CASes. */
function batchStatements(
  payloads: readonly Payload[],
  leaseIds: readonly LeaseId[],
): [string, string, unknown[]][] {
  const now = T0 + 30_000;
  return [
    [
      "lease grants and releases",
      LEASE_BATCH_SQL,
      leaseBatchParams([
        ...payloads.map((p, i) => ({
          kind: "grant" as const,
          req: {
            leaseId: asLeaseId(md5Uuid(`grant-${i}`)),
            payloadId: p.id,
            namespace: p.namespace,
            now,
            expiresAt: now + 30_000,
            states: ["ACTIVE"] as PayloadState[],
            tiers: ["RAM", "DISK", "GPU", "OBJECT"] as StorageTier[],
            touchIfAccessedAtOrBefore: now,
          },
        })),
        ...leaseIds.map((leaseId) => ({ kind: "release" as const, leaseId, namespace: "default" })),
      ]),
    ],
    ["payload reads", READ_BATCH_SQL, readBatchParams(payloads.map((p) => p.id))],
    [
      "payload inserts",
      INSERT_BATCH_SQL,
      insertBatchParams(payloads.map((p, i) => ({ ...p, id: asPayloadId(md5Uuid(`new-${i}`)) }))),
    ],
    [
      "payload compare-and-sets",
      CAS_BATCH_SQL,
      casBatchParams(payloads.map((p) => ({ next: { ...p, version: p.version + 1 }, expected: p }))),
    ],
    [
      "payload inserts with compare-and-sets",
      ...writeBatchStatement(
        payloads.flatMap((p, i): PayloadWrite[] => [
          { kind: "insert", payload: { ...p, id: asPayloadId(md5Uuid(`mixed-${i}`)) } },
          { kind: "cas", cas: { next: { ...p, version: p.version + 1 }, expected: p } },
        ]),
      ),
    ],
  ];
}

interface AnalyzedNode {
  "Node Type": string;
  "Index Name"?: string;
  "Index Cond"?: string;
  "Relation Name"?: string;
  "Actual Rows": number;
  "Actual Loops": number;
  Plans?: AnalyzedNode[];
}

/** Index scans of payloads' and leases' indexes. */
const indexScans = (n: AnalyzedNode): AnalyzedNode[] => [
  ...(/^(payloads|leases)_/.test(n["Index Name"] ?? "") ? [n] : []),
  ...(n.Plans ?? []).flatMap(indexScans),
];

/** Plan nodes that read payloads or leases. */
const tableScans = (n: AnalyzedNode): AnalyzedNode[] => [
  ...(n["Relation Name"] === "payloads" || n["Relation Name"] === "leases" ? [n] : []),
  ...(n.Plans ?? []).flatMap(tableScans),
];

/** A statement parameter as an EXECUTE argument: arrays as array literals, the rest as text. */
function argument(v: unknown): string {
  if (!Array.isArray(v)) return literal(v);
  const items = v.map((x) => (x === null ? "NULL" : `"${String(x).replace(/[\\"]/g, "\\$&")}"`));
  return pg.escapeLiteral(`{${items.join(",")}}`);
}

/** The id `md5(text)::uuid::text` gives in SQL. */
function md5Uuid(text: string): string {
  const h = createHash("md5").update(text).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}
