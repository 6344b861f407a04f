// Postgres at scale (PM_BENCH=postgres-scale): the same API calls on a catalog of 10,000 and of
// 1,000,000 payloads. Rows are bulk-loaded with INSERT … SELECT generate_series into fresh
// databases (seconds, not hours of API calls), vacuumed and analyzed, then measured through the
// API: the first page of ListPayloads (all, and filtered by tier), a deep keyset page, and
// AcquireReadLease + ReleaseLease. The figure is the 1M/10k latency ratio; target ≤ 1.5x.
import { encodePageToken } from "@pm/domain";
import { Tier } from "@pm/rpc";
import pg from "pg";
import { type BenchDatabase, type ControlPlane, freshDatabase, startControlPlane } from "./control-plane.ts";
import { fmt, percentile, table } from "./lib/stats.ts";

const SECONDS = Number(process.env.PM_BENCH_SECONDS ?? 3);
const SIZES = (process.env.PM_BENCH_SCALE_SIZES ?? "10000,1000000").split(",").map(Number);

/** Adds rows `from`..`to` (1-based) to namespace "default", older than anything the API creates. */
async function seed(db: pg.Client, from: number, to: number, now: number): Promise<void> {
  const chunk = 250_000;
  for (let lo = from; lo <= to; lo += chunk) {
    const hi = Math.min(to, lo + chunk - 1);
    await db.query(
      `INSERT INTO payloads (id, namespace, size_bytes, state, version, tier, agent_id, host, length_bytes,
         location, created_at, updated_at, expires_at, last_access_at, no_evict, eviction_priority, require_durable)
       SELECT md5('scale' || g)::uuid::text, 'default', 4096,
         (ARRAY['ACTIVE','ACTIVE','ACTIVE','DURABLE','ACTIVE','ACTIVE','ACTIVE','DURABLE','ALLOCATED','ACTIVE'])[1 + g % 10],
         2, (ARRAY['RAM','RAM','RAM','DISK','GPU'])[1 + g % 5], 'seeded-agent', 'seeded-host', 4096,
         '{"kind":"ram","shmName":"/seeded"}', $1::bigint - 10000000 + g, $1::bigint - 10000000 + g,
         CASE WHEN g % 3 = 0 THEN $1::bigint + 86400000 + g END, $1::bigint - 10000000 + g, false, 'NORMAL', false
       FROM generate_series($2::int, $3::int) g`,
      [now, lo, hi],
    );
  }
  // What autovacuum would do after a bulk load; measured plans must be the ones production gets.
  await db.query("VACUUM ANALYZE payloads");
}

interface Scale {
  readonly rows: number;
  readonly db: BenchDatabase;
  readonly cp: ControlPlane;
  readonly seedSeconds: number;
  readonly ops: [string, () => Promise<void>][];
}

/** A fresh database with `rows` seeded payloads, an API on it, and the calls to measure. */
async function prepare(rows: number): Promise<Scale> {
  const db = await freshDatabase("pm_bench_scale");
  const cp = await startControlPlane(db.url);
  const { client } = cp;
  const a = await client.catalog.allocatePayload({ sizeBytes: 4096n, preferredTier: Tier.RAM });
  const id = a.payloadDescriptor!.payloadId!;
  await client.catalog.commitPayload({ id });
  const admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  try {
    const t0 = performance.now();
    await seed(admin, 1, rows, Date.now());
    const seedSeconds = (performance.now() - t0) / 1000;
    // A cursor 90% of the way down the newest-first listing.
    const deep = await admin.query<{ created_at: string; id: string }>(
      "SELECT created_at, id FROM payloads ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1",
      [Math.floor(rows * 0.9)],
    );
    const pageToken = encodePageToken({ createdAt: Number(deep.rows[0]!.created_at), id: deep.rows[0]!.id });
    const total = (await client.catalog.listPayloads({ pageSize: 1 })).totalCount;
    if (total !== rows + 1) throw new Error(`ListPayloads total is ${total}, expected ${rows + 1}`);
    const ops: [string, () => Promise<void>][] = [
      [
        "ListPayloads first page (50)",
        async () => {
          await client.catalog.listPayloads({ pageSize: 50 });
        },
      ],
      [
        "ListPayloads first page, tier=DISK",
        async () => {
          await client.catalog.listPayloads({ pageSize: 50, tierFilter: Tier.DISK });
        },
      ],
      [
        "ListPayloads deep keyset page (90%)",
        async () => {
          await client.catalog.listPayloads({ pageSize: 50, pageToken });
        },
      ],
      [
        "AcquireReadLease+ReleaseLease",
        async () => {
          const l = await client.data.acquireReadLease({ id });
          await client.data.releaseLease({ leaseId: l.leaseId });
        },
      ],
    ];
    return { rows, db, cp, seedSeconds, ops };
  } finally {
    await admin.end();
  }
}

/** Runs `op` back to back for `ms`, appending each latency. */
async function sample(op: () => Promise<void>, ms: number, into: number[]): Promise<void> {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const t0 = performance.now();
    await op();
    into.push(performance.now() - t0);
  }
}

const pct = (xs: number[], p: number) =>
  percentile(
    [...xs].sort((a, b) => a - b),
    p,
  );

export async function postgresScaleBench(): Promise<void> {
  const scales: Scale[] = [];
  try {
    // Each size gets a fresh database of its own, so the two can be measured in alternating rounds:
    // drift on a shared machine (other processes, caches warming) lands on both sides alike.
    for (const rows of SIZES) scales.push(await prepare(rows));
    const lat = scales.map((s) => s.ops.map(() => [] as number[]));
    for (const s of scales) for (const [, op] of s.ops) await sample(op, 300, []);
    const rounds = 6;
    for (let r = 0; r < rounds; r++) {
      for (const [i, s] of scales.entries()) {
        for (const [j, [, op]] of s.ops.entries()) await sample(op, (SECONDS * 1000) / rounds, lat[i]![j]!);
      }
    }
    const small = 0;
    const big = scales.length - 1;
    const rows: (string | number)[][] = scales[small]!.ops.map(([name], j) => {
      const s = lat[small]![j]!;
      const b = lat[big]![j]!;
      return [
        name,
        pct(s, 50),
        pct(s, 99),
        pct(b, 50),
        pct(b, 99),
        `${fmt(pct(b, 50) / pct(s, 50))}x`,
        `${fmt(pct(b, 99) / pct(s, 99))}x`,
      ];
    });
    const label = (n: number) => (n >= 1_000_000 ? `${n / 1_000_000}M` : `${n / 1000}k`);
    const [S, B] = [label(scales[small]!.rows), label(scales[big]!.rows)];
    table(
      `Postgres catalog at ${S} vs ${B} payloads (a fresh database each, seeded in ${scales.map((s) => `${fmt(s.seedSeconds)}s`).join(" / ")}; one client, ${SECONDS}s per cell in ${rounds} alternating rounds; target ${B}/${S} ≤ 1.5x)`,
      ["operation", `${S} p50 ms`, `${S} p99 ms`, `${B} p50 ms`, `${B} p99 ms`, "p50 ratio", "p99 ratio"],
      rows,
    );
  } finally {
    for (const s of scales) {
      await s.cp.close();
      await s.db.drop();
    }
  }
}
