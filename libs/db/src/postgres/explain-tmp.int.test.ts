import { randomUUID } from "node:crypto";
import pg from "pg";
import { it } from "vitest";
import { LEASE_BATCH_SQL } from "./lease-batches.ts";
import { PostgresCatalog } from "./postgres-catalog.ts";

const URL = process.env.PM_TEST_DATABASE_URL!;
it("explain", async () => {
  const schema = `pm_explain_${Date.now()}`;
  const cat = await PostgresCatalog.open({ url: URL, schema });
  const c = new pg.Client({ connectionString: URL });
  await c.connect();
  await c.query(`SET search_path TO ${schema}`);
  await c.query(
    `INSERT INTO payloads SELECT gen_random_uuid()::text, 'default', 4096, 'ACTIVE', 2, 'RAM', 'a', 'h', 4096, '{"kind":"ram","shmName":"/x"}', NULL, NULL,NULL,NULL,NULL,NULL,NULL, 1, 1, NULL, 1, false, 'NORMAL', false, NULL, NULL, NULL FROM generate_series(1, 5000)`,
  );
  const ids = (await c.query(`SELECT id FROM payloads LIMIT 2`)).rows.map((r) => r.id);
  await c.query(
    `INSERT INTO leases SELECT gen_random_uuid()::text, $1, 'default', 2, 1, 99999999999, false FROM generate_series(1, 3)`,
    [ids[0]],
  );
  const lease = (await c.query(`SELECT id FROM leases LIMIT 1`)).rows[0].id;
  await c.query("ANALYZE");
  const text = LEASE_BATCH_SQL;
  const params = [
    [randomUUID()],
    [ids[1]],
    ["default"],
    [Date.now()],
    [Date.now() + 1000],
    ["ACTIVE,SPILLING,DURABLE"],
    ["GPU,RAM,DISK,OBJECT"],
    [Date.now() - 1000],
    [lease],
    ["default"],
  ];
  for (const mode of ["force_custom_plan", "force_generic_plan"]) {
    await c.query(`SET plan_cache_mode = ${mode}`);
    await c.query("BEGIN");
    const r = await c.query({ text: `EXPLAIN (ANALYZE, COSTS OFF) ${text}`, values: params });
    console.log(mode + "\n" + r.rows.map((x) => x["QUERY PLAN"]).join("\n"));
    await c.query("ROLLBACK");
  }
  await c.query(`DROP SCHEMA ${schema} CASCADE`);
  await c.end();
  await cat.close();
});
