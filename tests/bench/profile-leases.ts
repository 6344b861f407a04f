// Profiles the API under the 16-client lease-pair load alone (PM_PROFILE=allocate: allocate+commit): PM_BENCH_API_NODE_ARGS="--cpu-prof
// --cpu-prof-dir=DIR" node --import tsx tests/bench/profile-leases.ts (Postgres from
// PM_TEST_DATABASE_URL; PM_PROFILE_SEED=N adds N payload rows first). Not part of `npm run bench`;
// a tool for finding where a call's time goes.

import pg from "pg";
import { benchOperations, cpuText, freshDatabase, startControlPlane, withCpu } from "./control-plane.ts";
import { closedLoop } from "./lib/stats.ts";

const db = await freshDatabase("pm_prof");
// PM_BENCH_CATALOG_PARAMS, e.g. "group_commit_lanes=1", is appended to the catalog URL.
const params = process.env.PM_BENCH_CATALOG_PARAMS;
const cp = await startControlPlane(params ? `${db.url}?${params}` : db.url);
try {
  const ops = await benchOperations(cp);
  // PM_PROFILE_SEED=N: N more payload rows and fresh statistics before the load, then a wait for
  // the lanes' connections to be replaced (they plan from the sizes they see when they connect).
  const seed = Number(process.env.PM_PROFILE_SEED ?? 0);
  if (seed > 0) {
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    await c.query(
      `INSERT INTO payloads (id, namespace, size_bytes, state, version, tier, agent_id, host, length_bytes,
         location, created_at, updated_at, last_access_at, no_evict, eviction_priority, require_durable)
       SELECT gen_random_uuid()::text, 'seed', 4096, 'ACTIVE', 2, 'RAM', 'seed', 'seed', 4096,
         '{"kind":"ram","shmName":"/seed"}', g, g, g, false, 'NORMAL', false FROM generate_series(1, $1::int) g`,
      [seed],
    );
    await c.query("VACUUM ANALYZE");
    await c.end();
    await new Promise((r) => setTimeout(r, 31_000));
  }
  const allocate = process.env.PM_PROFILE === "allocate";
  const { result, cpu } = await withCpu(cp.pids, () =>
    closedLoop(allocate ? ops.allocCommit : ops.leasePair, 16, Number(process.env.PM_BENCH_SECONDS ?? 8)),
  );
  console.log(result, `CPU µs/pair load gen / API / agent / Postgres: ${cpuText(cpu)}`);
  const metrics = await (await fetch(`${cp.url}/metrics`)).text();
  console.log(
    metrics
      .split("\n")
      .filter((l) => /^pm_(catalog_group_commit|agent_create_regions)_batch_size_(sum|count)/.test(l))
      .join("\n"),
  );
} finally {
  await cp.close();
  await db.drop();
}
