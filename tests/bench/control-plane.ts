// Control-plane benchmark: Allocate+Commit and AcquireReadLease+ReleaseLease over Connect on
// loopback against the real API and tier agent, next to a same-run baseline. The API and the agent
// each run in their own child process (`payload-manager api` / `agent`); this process is only the
// load generator, as pgbench is its own process.
//   SQLite (the embedded default): baseline is a trivial Hono route (/healthz) on the same server
//   through the same HTTP client.
//   Postgres (PM_BENCH=control-plane-postgres): a fresh database; baseline is pgbench's simple-update
//   transaction (`pgbench -N`) on that database, at 1 and 16 clients.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import type { PayloadClient } from "@pm/client";
import { createNodePayloadClient } from "@pm/client/node";
import {
  AcquireReadLeaseRequestSchema,
  AcquireReadLeaseResponseSchema,
  AllocatePayloadRequestSchema,
  AllocatePayloadResponseSchema,
  CommitPayloadRequestSchema,
  CommitPayloadResponseSchema,
  PayloadCatalogService,
  PayloadDataService,
  ReleaseLeaseRequestSchema,
  Tier,
} from "@pm/rpc";
import pg from "pg";
import { leanConnect } from "./lib/lean-connect.ts";
import { closedLoop, fmt, type LoadResult, percentile, table } from "./lib/stats.ts";

const SECONDS = Number(process.env.PM_BENCH_SECONDS ?? 3);
const PGBENCH_SECONDS = Number(process.env.PM_BENCH_PGBENCH_SECONDS ?? 10);
const WARMUP_SECONDS = Number(process.env.PM_BENCH_WARMUP_SECONDS ?? 2);
/** Rounds of the Postgres bench (baseline + cells each); the table shows the median round. */
const ROUNDS = Number(process.env.PM_BENCH_ROUNDS ?? 3);
const ROOT = resolve(import.meta.dirname, "../..");

/** The Postgres server benchmarks create their databases on. */
export const BENCH_SERVER_URL =
  process.env.PM_BENCH_DATABASE_URL ??
  process.env.PM_TEST_DATABASE_URL ??
  "postgres://postgres@127.0.0.1:5432/test";

export interface BenchDatabase {
  readonly name: string;
  readonly url: string;
  drop(): Promise<void>;
}

/** A fresh database `<prefix>_<random>` on the bench server; drop() removes it. */
export async function freshDatabase(prefix: string): Promise<BenchDatabase> {
  const name = `${prefix}_${randomBytes(4).toString("hex")}`;
  const admin = async (sql: string) => {
    const c = new pg.Client({ connectionString: BENCH_SERVER_URL });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const u = new URL(BENCH_SERVER_URL);
  u.pathname = `/${name}`;
  return { name, url: u.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

export interface ControlPlane {
  /** The API's HTTP/1.1 base URL. */
  readonly url: string;
  /** The tier agent's base URL (what the API calls). */
  readonly agentUrl: string;
  /** Process ids of the API and the agent (for CPU accounting). */
  readonly pids: { readonly api: number; readonly agent: number };
  readonly client: PayloadClient;
  close(): Promise<void>;
}

/** A free TCP port on loopback (bound, read, released). */
async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, "127.0.0.1");
  await once(s, "listening");
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface Child {
  readonly proc: ChildProcess;
  readonly output: string[];
  stop(): Promise<void>;
}

/** `payload-manager <role>` as a child process with `env` on top of this one's, output kept for failure messages. */
function spawnRole(role: "api" | "agent", env: Record<string, string>, nodeArgs: string[] = []): Child {
  const proc = spawn(process.execPath, [...nodeArgs, join(ROOT, "bin/payload-manager.mjs"), role], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  const keep = (d: Buffer) => {
    output.push(d.toString());
    if (output.length > 200) output.shift();
  };
  proc.stdout!.on("data", keep);
  proc.stderr!.on("data", keep);
  return {
    proc,
    output,
    stop: () =>
      proc.exitCode !== null || proc.signalCode !== null
        ? Promise.resolve()
        : new Promise<void>((r) => {
            proc.once("exit", () => r());
            proc.kill("SIGTERM");
          }),
  };
}

/**
 * The API and one tier agent, each in its own child process (`payload-manager api` and
 * `payload-manager agent`, log level warn) on free loopback ports, so this process is only the load
 * generator, as pgbench is its own process; resolves once the agent registered (/readyz).
 */
export async function startControlPlane(catalogUrl?: string): Promise<ControlPlane> {
  const dir = mkdtempSync(join(tmpdir(), "pm-bench-cp-"));
  const prefix = `pmbench-${process.pid}-${randomBytes(3).toString("hex")}-`;
  const [httpPort, grpcPort, agentPort] = [await freePort(), await freePort(), await freePort()];
  const url = `http://127.0.0.1:${httpPort}`;
  const common = { PM_DATA_DIR: dir, PM_LOG_LEVEL: process.env.PM_BENCH_LOG_LEVEL ?? "warn" };
  // PM_BENCH_API_NODE_ARGS / PM_BENCH_AGENT_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof")
  // profile the API or the agent under load.
  const argsOf = (v: string | undefined) => v?.split(" ").filter(Boolean) ?? [];
  const nodeArgs = argsOf(process.env.PM_BENCH_API_NODE_ARGS);
  const api = spawnRole(
    "api",
    {
      ...common,
      PM_HTTP_PORT: String(httpPort),
      PM_GRPC_PORT: String(grpcPort),
      PM_CATALOG_URL: catalogUrl ?? `sqlite:${join(dir, "catalog.db")}`,
    },
    nodeArgs,
  );
  const children: Child[] = [api];
  const stopAll = async () => {
    for (const c of children.reverse()) await c.stop();
    for (const f of readdirSync("/dev/shm"))
      if (f.startsWith(prefix)) rmSync(join("/dev/shm", f), { force: true });
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(api, `${url}/healthz`, "the API did not start");
    children.push(
      spawnRole(
        "agent",
        {
          ...common,
          PM_AGENT_PORT: String(agentPort),
          PM_CONTROL_PLANE_URL: url,
          PM_RAM_PREFIX: prefix,
          PM_DISK_ROOT: join(dir, "disk"),
        },
        argsOf(process.env.PM_BENCH_AGENT_NODE_ARGS),
      ),
    );
    await waitFor(api, `${url}/readyz`, "the tier agent did not register", children[1]);
  } catch (e) {
    await stopAll();
    throw e;
  }
  return {
    url,
    agentUrl: `http://127.0.0.1:${agentPort}`,
    pids: { api: api.proc.pid!, agent: children[1]!.proc.pid! },
    client: createNodePayloadClient({ baseUrl: url }),
    close: stopAll,
  };
}

interface Cell {
  readonly name: string;
  readonly concurrency: number;
  readonly round: number;
  readonly result: LoadResult;
  /** CPU time per pair (µs) by process group, where it could be read from /proc. */
  readonly cpu: CpuSplit | undefined;
}

interface CpuSplit {
  readonly loadgen: number;
  readonly api: number;
  readonly agent: number;
  readonly postgres: number;
}

const TICKS_PER_SEC = 100; // USER_HZ on Linux

/**
 * utime + stime of a process in seconds (0 when it is gone or /proc is absent); with
 * `children`, plus the CPU of its children that have exited (cutime + cstime).
 */
export function cpuSeconds(pid: number, children = false): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat
      .slice(stat.lastIndexOf(")") + 2)
      .split(" ")
      .map(Number);
    return (f[11]! + f[12]! + (children ? f[13]! + f[14]! : 0)) / TICKS_PER_SEC;
  } catch {
    return 0;
  }
}

/** Pids of every process named `postgres` (the server and its backends). */
function postgresPids(): number[] {
  try {
    return readdirSync("/proc")
      .filter((d) => /^\d+$/.test(d))
      .filter((d) => {
        try {
          return readFileSync(`/proc/${d}/comm`, "utf8").trim() === "postgres";
        } catch {
          return false;
        }
      })
      .map(Number);
  } catch {
    return [];
  }
}

/** Runs `fn` and splits the CPU time the processes spent meanwhile per `ops`, in µs. */
export async function withCpu<T extends { ops: number }>(
  pids: ControlPlane["pids"],
  fn: () => Promise<T>,
): Promise<{ result: T; cpu: CpuSplit | undefined }> {
  const pg0 = new Map(postgresPids().map((p) => [p, cpuSeconds(p, true)]));
  const before = { loadgen: process.cpuUsage(), api: cpuSeconds(pids.api), agent: cpuSeconds(pids.agent) };
  const result = await fn();
  const loadgen = process.cpuUsage(before.loadgen);
  // Backends started during the cell count from zero. A backend that exits (the lanes reconnect
  // every 30 s) is reaped by the postmaster, whose children's time then holds its whole life:
  // what it had used before the cell is taken off again.
  const pgEnd = new Map(postgresPids().map((p) => [p, cpuSeconds(p, true)]));
  let postgres = 0;
  for (const [p, end] of pgEnd) postgres += end - (pg0.get(p) ?? 0);
  for (const [p, start] of pg0) if (!pgEnd.has(p)) postgres -= start;
  if (before.api === 0 || result.ops === 0) return { result, cpu: undefined };
  const per = (seconds: number) => (seconds * 1e6) / result.ops;
  return {
    result,
    cpu: {
      loadgen: per((loadgen.user + loadgen.system) / 1e6),
      api: per(cpuSeconds(pids.api) - before.api),
      agent: per(cpuSeconds(pids.agent) - before.agent),
      postgres: per(postgres),
    },
  };
}

const CPU_HEADER = "CPU µs/pair: load gen / API / agent / Postgres";
export const cpuText = (c: CpuSplit | undefined) =>
  c ? `${fmt(c.loadgen)} / ${fmt(c.api)} / ${fmt(c.agent)} / ${fmt(c.postgres)}` : "n/a";

/** Allocate+Commit pairs and AcquireReadLease+ReleaseLease pairs at 1 and 16 clients. */
/**
 * The operations the control-plane cells (and tests/bench/profile-leases.ts) drive: allocate+commit
 * pairs and lease pairs through the lean client, lease pairs through the SDK's Node client.
 * `created` collects what allocate+commit made, for deleting between cells.
 */
export async function benchOperations(cp: ControlPlane) {
  const { client } = cp;
  // Leases spread over 64 payloads, as pgbench -N spreads its updates over many accounts; a second
  // cell leases one hot payload, every call on the same row.
  const pool: { value: Uint8Array }[] = [];
  for (let i = 0; i < 64; i++) {
    const { payloadDescriptor: d } = await client.catalog.allocatePayload({
      sizeBytes: 4096n,
      preferredTier: Tier.RAM,
    });
    await client.catalog.commitPayload({ id: d!.payloadId });
    pool.push(d!.payloadId!);
  }
  let next = 0;
  const created: { value: Uint8Array }[] = [];
  // Both pairs are driven by the lean Connect client (see lib/lean-connect.ts): the server does
  // the same work, and the two shared CPUs go to it rather than to the load generator. One cell
  // repeats the spread lease pairs through the SDK's Node client for comparison.
  const unary = leanConnect(cp.url);
  const allocate = unary(
    PayloadCatalogService,
    "AllocatePayload",
    AllocatePayloadRequestSchema,
    AllocatePayloadResponseSchema,
  );
  const commit = unary(
    PayloadCatalogService,
    "CommitPayload",
    CommitPayloadRequestSchema,
    CommitPayloadResponseSchema,
  );
  const allocateBody = allocate.encode({ sizeBytes: 4096n, preferredTier: Tier.RAM });
  const allocCommit = async () => {
    const a = await allocate.call(allocateBody);
    await commit.call(commit.encode({ id: a.payloadDescriptor!.payloadId }));
    created.push(a.payloadDescriptor!.payloadId!);
  };
  const acquire = unary(
    PayloadDataService,
    "AcquireReadLease",
    AcquireReadLeaseRequestSchema,
    AcquireReadLeaseResponseSchema,
  );
  const release = unary(PayloadDataService, "ReleaseLease", ReleaseLeaseRequestSchema, EmptySchema);
  const acquireBodies = pool.map((id) => acquire.encode({ id }));
  const leanPair = async (body: Uint8Array) => {
    const l = await acquire.call(body);
    await release.call(release.encode({ leaseId: l.leaseId }));
  };
  const leasePair = () => leanPair(acquireBodies[next++ % acquireBodies.length]!);
  const hotLeasePair = () => leanPair(acquireBodies[0]!);
  const sdkLeasePair = async () => {
    const l = await client.data.acquireReadLease({ id: pool[next++ % pool.length] });
    await client.data.releaseLease({ leaseId: l.leaseId });
  };
  return { allocCommit, leasePair, hotLeasePair, sdkLeasePair, created };
}

async function measurePairs(
  cp: ControlPlane,
  rounds: number,
  baseline?: (concurrency: number) => Promise<LoadResult>,
  /** Runs before every baseline and cell, so none pays for the clean-up of the one before. */
  settle: () => Promise<void> = async () => undefined,
) {
  const { client } = cp;
  const { allocCommit, leasePair, hotLeasePair, sdkLeasePair, created } = await benchOperations(cp);
  // Warm up first: the first seconds of each path run interpreted and compile on the side, which
  // would be measured as part of the 1-client cells otherwise.
  await closedLoop(allocCommit, 4, WARMUP_SECONDS);
  await closedLoop(leasePair, 4, WARMUP_SECONDS);
  for (const id of created.splice(0)) await client.catalog.delete({ id, force: true }).catch(() => undefined);
  const cells: Cell[] = [];
  const baselines = new Map<string, LoadResult>();
  // Each round measures the baseline right before its cells, so a ratio compares figures taken
  // under the same background load; rounds repeat that to show the spread.
  for (let round = 0; round < rounds; round++) {
    for (const concurrency of [1, 16]) {
      if (baseline) {
        await settle();
        baselines.set(`${round}/${concurrency}`, await baseline(concurrency));
      }
      const ops: [string, () => Promise<void>][] = [
        ["Allocate+Commit", allocCommit],
        ["AcquireReadLease+ReleaseLease", leasePair],
        ["  same, one hot payload", hotLeasePair],
      ];
      if (concurrency > 1) ops.push(["  same, SDK client (connect-node)", sdkLeasePair]);
      for (const [name, op] of ops) {
        await settle();
        const { result, cpu } = await withCpu(cp.pids, () => closedLoop(op, concurrency, SECONDS));
        cells.push({ name, concurrency, round, result, cpu });
        for (const id of created.splice(0))
          await client.catalog.delete({ id, force: true }).catch(() => undefined);
      }
    }
  }
  return { cells, baselines };
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/**
 * Table rows over the rounds: the median round of each operation (by its ratio to the baseline
 * of the same round), with the range of the ratios when there were several rounds.
 */
function roundRows(
  cells: readonly Cell[],
  baselines: ReadonlyMap<string, LoadResult>,
  concurrency: number,
  ratioOf: (cell: LoadResult, base: LoadResult) => number,
  baselineName: string,
): (string | number)[][] {
  const rows: (string | number)[][] = [];
  const here = cells.filter((c) => c.concurrency === concurrency);
  for (const name of [...new Set(here.map((c) => c.name))]) {
    const runs = here
      .filter((c) => c.name === name)
      .map((c) => ({ c, base: baselines.get(`${c.round}/${concurrency}`)! }))
      .map((r) => ({ ...r, ratio: ratioOf(r.c.result, r.base) }))
      .sort((a, b) => a.ratio - b.ratio);
    const mid = runs[Math.floor((runs.length - 1) / 2)]!;
    const spread = runs.length > 1 ? ` (${fmt(runs[0]!.ratio)}–${fmt(runs.at(-1)!.ratio)})` : "";
    rows.push([
      name,
      String(concurrency),
      mid.c.result.opsPerSec,
      mid.c.result.p50Ms,
      mid.c.result.p99Ms,
      mid.base.opsPerSec,
      `${fmt(mid.ratio)}x${spread}`,
      cpuText(mid.c.cpu),
    ]);
  }
  const bases = [...baselines].filter(([k]) => k.endsWith(`/${concurrency}`)).map(([, v]) => v);
  rows.push([
    baselineName,
    String(concurrency),
    median(bases.map((b) => b.opsPerSec)),
    median(bases.map((b) => b.p50Ms)),
    median(bases.map((b) => b.p99Ms)),
    median(bases.map((b) => b.opsPerSec)),
    "1.00x",
    "",
  ]);
  return rows;
}

/** The embedded default: SQLite catalog, baseline GET /healthz on the same server. */
export async function controlPlaneBench(catalogUrl?: string): Promise<void> {
  const cp = await startControlPlane(catalogUrl);
  // Through the same lean HTTP/1.1 client as the cells, so the ratio compares server work.
  const lean = leanConnect(cp.url);
  const healthz = async () => {
    await lean.get("/healthz");
  };
  const { cells, baselines } = await measurePairs(cp, 1, (c) => closedLoop(healthz, c, SECONDS));
  // Each pair is two RPCs; the baseline is one request, so compare calls per second.
  const rows = [1, 16].flatMap((concurrency) =>
    roundRows(
      cells,
      baselines,
      concurrency,
      (c, b) => (2 * c.opsPerSec) / b.opsPerSec,
      "baseline GET /healthz",
    ),
  );
  table(
    `Control plane over Connect on loopback (${catalogUrl?.startsWith("postgres") ? "Postgres" : "SQLite"} catalog, ${SECONDS}s per cell)`,
    [
      "operation",
      "clients",
      "pairs/s",
      "p50 ms",
      "p99 ms",
      "baseline req/s",
      "calls/s ÷ baseline",
      CPU_HEADER,
    ],
    rows,
  );
  await cp.close();
}

/** pgbench's simple-update transaction (-N) on `url`: TPS and per-transaction latency percentiles. */
export function pgbench(url: string, clients: number, seconds: number): LoadResult {
  const u = new URL(url);
  const conn = ["-h", u.hostname, "-p", u.port || "5432", "-U", decodeURIComponent(u.username || "postgres")];
  const db = u.pathname.slice(1);
  const logDir = mkdtempSync(join(tmpdir(), "pm-pgbench-"));
  try {
    const args = [
      ...conn,
      "-N",
      "-c",
      String(clients),
      "-j",
      String(Math.min(2, clients)),
      "-T",
      String(seconds),
      "-l",
      "--log-prefix",
      join(logDir, "tx"),
      db,
    ];
    const r = spawnSync("pgbench", args, { encoding: "utf8", cwd: logDir });
    if (r.status !== 0) throw new Error(`pgbench ${args.join(" ")} failed: ${r.error ?? ""}${r.stderr}`);
    const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(r.stdout)?.[1]);
    // Per-transaction log lines: client_id transaction_no latency_us script_no epoch_s epoch_us.
    const lat: number[] = [];
    for (const f of readdirSync(logDir)) {
      for (const line of readFileSync(join(logDir, f), "utf8").split("\n")) {
        const us = Number(line.split(" ")[2]);
        if (Number.isFinite(us) && line !== "") lat.push(us / 1000);
      }
    }
    lat.sort((a, b) => a - b);
    return {
      ops: lat.length,
      seconds,
      opsPerSec: tps,
      p50Ms: percentile(lat, 50),
      p99Ms: percentile(lat, 99),
    };
  } finally {
    rmSync(logDir, { recursive: true, force: true });
  }
}

/** Initialises pgbench's tables (scale 1) in `url`'s database. */
export function pgbenchInit(url: string): void {
  const u = new URL(url);
  const r = spawnSync(
    "pgbench",
    [
      "-h",
      u.hostname,
      "-p",
      u.port || "5432",
      "-U",
      u.username || "postgres",
      "-i",
      "-q",
      "-s",
      "1",
      u.pathname.slice(1),
    ],
    { encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`pgbench -i failed: ${r.error ?? ""}${r.stderr}`);
}

export function hasPgbench(): boolean {
  return spawnSync("pgbench", ["--version"]).status === 0;
}

/**
 * Postgres production path: the API on a fresh database, and pgbench -N on the same database in
 * the same run as the yardstick. A pair is two API calls = two catalog transactions (plus the
 * RPCs); a pgbench -N transaction is one. Targets: lease pairs ≥ 0.5×, allocate+commit ≥ 0.3× of
 * pgbench TPS at 16 clients.
 */
export async function controlPlanePostgresBench(): Promise<void> {
  if (!hasPgbench()) {
    console.log(
      "\ncontrol-plane-postgres: skipped, pgbench is not installed (apt-get install postgresql-client)",
    );
    return;
  }
  const db = await freshDatabase("pm_bench_cp");
  try {
    pgbenchInit(db.url);
    const cp = await startControlPlane(db.url);
    try {
      // pgbench's 50k updates and our thousands of payloads leave dead rows and WAL behind; vacuum
      // and checkpoint before each phase, so autovacuum and the checkpointer do that work between
      // the measurements, not inside the next one (they run in the measured Postgres processes).
      const settle = async () => {
        const c = new pg.Client({ connectionString: db.url });
        await c.connect();
        try {
          await c.query("VACUUM ANALYZE");
          await c.query("CHECKPOINT").catch(() => undefined);
        } finally {
          await c.end();
        }
      };
      const { cells, baselines } = await measurePairs(
        cp,
        ROUNDS,
        async (c) => pgbench(db.url, c, PGBENCH_SECONDS),
        settle,
      );
      const rows = [1, 16].flatMap((concurrency) =>
        roundRows(
          cells,
          baselines,
          concurrency,
          (c, b) => c.opsPerSec / b.opsPerSec,
          `baseline pgbench -N -c ${concurrency}`,
        ),
      );
      table(
        `Control plane on Postgres (fresh database ${db.name}, ${SECONDS}s per cell, ${ROUNDS} round(s), each with pgbench -N -j 2 -T ${PGBENCH_SECONDS} on the same database right before its cells, VACUUM ANALYZE + CHECKPOINT before every phase; the median round is shown, with the range of ratios; targets at 16 clients: lease pairs ≥ 0.5x, allocate+commit ≥ 0.3x)`,
        ["operation", "clients", "pairs/s", "p50 ms", "p99 ms", "pgbench TPS", "pairs/s ÷ TPS", CPU_HEADER],
        rows,
      );
    } finally {
      await cp.close();
    }
  } finally {
    await db.drop();
  }
}

/** Polls `probe` until it answers 200; fails with the children's output when one exits or 30 s pass. */
async function waitFor(api: Child, probe: string, what: string, other?: Child): Promise<void> {
  const deadline = Date.now() + 30_000;
  const dead = () => [api, other].find((c) => c && (c.proc.exitCode !== null || c.proc.signalCode !== null));
  while (Date.now() < deadline && !dead()) {
    const ok = await fetch(probe).then(
      async (r) => {
        await r.arrayBuffer();
        return r.ok;
      },
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  const out = [api, other].flatMap((c) => (c ? c.output : [])).join("");
  throw new Error(`${what}${dead() ? " (a process exited)" : " within 30 s"}:\n${out}`);
}
