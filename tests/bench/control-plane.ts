// Control-plane benchmark: Allocate+Commit and AcquireReadLease+ReleaseLease over Connect on
// loopback against the real API and tier agent (SQLite catalog, the embedded default), next to a
// same-run baseline: a trivial Hono route (/healthz) on the same server through the same HTTP client.
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, startApi } from "@pm/api";
import { createPayloadClient } from "@pm/client";
import { Tier } from "@pm/rpc";
import { loadAgentConfig, startAgent } from "@pm/tier-agent";
import { closedLoop, fmt, type LoadResult, table } from "./lib/stats.ts";

const SECONDS = Number(process.env.PM_BENCH_SECONDS ?? 3);
const silent = { info() {}, warn() {}, error() {}, debug() {} };

export async function controlPlaneBench(catalogUrl?: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "pm-bench-cp-"));
  const prefix = `pmbench-${process.pid}-`;
  const env = {
    PM_HTTP_PORT: "0",
    PM_GRPC_PORT: "0",
    PM_DATA_DIR: dir,
    PM_CATALOG_URL: catalogUrl ?? `sqlite:${join(dir, "catalog.db")}`,
    PM_LOG_LEVEL: "silent",
  };
  const api = await startApi(loadConfig(undefined, env), { log: silent });
  const agent = await startAgent(
    {
      ...loadAgentConfig(undefined, {
        ...env,
        PM_AGENT_PORT: "0",
        PM_RAM_PREFIX: prefix,
        PM_DISK_ROOT: join(dir, "disk"),
      }),
      controlPlaneUrl: api.httpUrl,
    },
    { log: silent },
  );
  await waitForAgent(api.httpUrl);
  const client = createPayloadClient({ baseUrl: api.httpUrl });
  const { payloadDescriptor: d } = await client.catalog.allocatePayload({
    sizeBytes: 4096n,
    preferredTier: Tier.RAM,
  });
  await client.catalog.commitPayload({ id: d!.payloadId });
  const created: { value: Uint8Array }[] = [];

  const baselineOp = async () => {
    const res = await fetch(`${api.httpUrl}/healthz`);
    await res.arrayBuffer();
  };
  const allocCommit = async () => {
    const a = await client.catalog.allocatePayload({ sizeBytes: 4096n, preferredTier: Tier.RAM });
    await client.catalog.commitPayload({ id: a.payloadDescriptor!.payloadId });
    created.push(a.payloadDescriptor!.payloadId!);
  };
  const leasePair = async () => {
    const l = await client.data.acquireReadLease({ id: d!.payloadId });
    await client.data.releaseLease({ leaseId: l.leaseId });
  };

  const rows: (string | number)[][] = [];
  for (const concurrency of [1, 16]) {
    const base = await closedLoop(baselineOp, concurrency, SECONDS);
    for (const [name, op] of [
      ["Allocate+Commit", allocCommit],
      ["AcquireReadLease+ReleaseLease", leasePair],
    ] as const) {
      const r: LoadResult = await closedLoop(op, concurrency, SECONDS);
      // Each pair is two RPCs; the baseline is one request, so compare calls per second.
      rows.push([
        name,
        String(concurrency),
        r.opsPerSec,
        r.p50Ms,
        r.p99Ms,
        base.opsPerSec,
        `${fmt((2 * r.opsPerSec) / base.opsPerSec)}x`,
      ]);
      for (const id of created.splice(0))
        await client.catalog.delete({ id, force: true }).catch(() => undefined);
    }
    rows.push([
      "baseline GET /healthz",
      String(concurrency),
      base.opsPerSec,
      base.p50Ms,
      base.p99Ms,
      base.opsPerSec,
      "1.00x",
    ]);
  }
  table(
    `Control plane over Connect on loopback (${catalogUrl?.startsWith("postgres") ? "Postgres" : "SQLite"} catalog, ${SECONDS}s per cell)`,
    ["operation", "clients", "pairs/s", "p50 ms", "p99 ms", "baseline req/s", "calls/s ÷ baseline"],
    rows,
  );
  await agent.close();
  await api.close();
  for (const f of readdirSync("/dev/shm"))
    if (f.startsWith(prefix)) rmSync(join("/dev/shm", f), { force: true });
  rmSync(dir, { recursive: true, force: true });
}

async function waitForAgent(url: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const res = await fetch(`${url}/readyz`);
    if (res.ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("the tier agent did not register within 10 s");
}
