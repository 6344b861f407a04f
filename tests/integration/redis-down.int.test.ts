import { type ChildProcess, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { createPayloadClient, idBytes, type PayloadClient } from "@pm/client";
import { put } from "@pm/client/node";
import { SpillPolicy, Tier } from "@pm/rpc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningSystem, removeDataDir, spawnRole, startSystem } from "../support/system.ts";

// Redis is down: the API (its own process, enqueueing on BullMQ) keeps serving resolves, leases
// and commits; work that needs a job fails per item or is left to the sweep; /readyz says so; when
// Redis is back, the worker catches up. Redis is this test's own server (restarted from its dump,
// as a real Redis restart would be), never the shared one.

let redisDir: string;
let redisPort: number;
let api: RunningSystem;
let agent: ChildProcess | undefined;
let worker: ChildProcess | undefined;
let client: PayloadClient;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function startRedis(): void {
  execFileSync("redis-server", [
    "--port",
    String(redisPort),
    "--bind",
    "127.0.0.1",
    "--daemonize",
    "yes",
    "--dir",
    redisDir,
    "--dbfilename",
    "dump.rdb",
    "--save",
    "",
    "--appendonly",
    "no",
    "--logfile",
    join(redisDir, "redis.log"),
  ]);
  for (let i = 0; i < 100; i++) {
    try {
      execFileSync("redis-cli", ["-p", String(redisPort), "ping"], { stdio: "pipe" });
      return;
    } catch {
      execFileSync("sleep", ["0.05"]);
    }
  }
  throw new Error("test Redis did not start");
}

function stopRedis(): void {
  // SAVE on shutdown: the queue's state (job schedulers, delayed jobs) survives the restart.
  execFileSync("redis-cli", ["-p", String(redisPort), "shutdown", "save"], { stdio: "pipe" });
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function readyz(): Promise<{ status: number; body: { checks?: Record<string, string> } }> {
  const res = await fetch(`${api.url}/readyz`);
  return { status: res.status, body: (await res.json()) as { checks?: Record<string, string> } };
}

beforeAll(async () => {
  redisDir = mkdtempSync(join(tmpdir(), "pm-redis-"));
  redisPort = await freePort();
  startRedis();
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  api = await startSystem({ role: "api", env: { PM_REDIS_URL: redisUrl } });
  const common = { PM_CATALOG_URL: `sqlite:${join(api.dataDir, "catalog.db")}`, PM_REDIS_URL: redisUrl };
  agent = await spawnRole(
    "agent",
    api.dataDir,
    {
      ...common,
      PM_AGENT_PORT: "0",
      PM_CONTROL_PLANE_URL: api.url,
      PM_DISK_ROOT: api.diskRoot,
      PM_RAM_PREFIX: api.ramPrefix,
    },
    "registered with the control plane",
  );
  worker = await spawnRole(
    "worker",
    api.dataDir,
    { ...common, PM_WORKER_METRICS_PORT: "0", PM_SWEEP_INTERVAL_MS: "300" },
    "payload-manager worker started",
  );
  client = createPayloadClient({ baseUrl: api.url });
}, 90_000);

afterAll(async () => {
  for (const p of [worker, agent]) if (p && p.exitCode === null) p.kill("SIGKILL");
  await api?.stop();
  try {
    execFileSync("redis-cli", ["-p", String(redisPort), "shutdown", "nosave"], { stdio: "pipe" });
  } catch {
    // already down
  }
  for (const f of readdirSync("/dev/shm"))
    if (api && f.startsWith(api.ramPrefix)) removeDataDir(join("/dev/shm", f));
  if (api) removeDataDir(api.dataDir);
  rmSync(redisDir, { recursive: true, force: true });
});

describe("Redis down under the API and worker", () => {
  it("keeps serving the control plane, reports not ready, and catches up when Redis returns", async () => {
    expect(await until("ready", async () => ((await readyz()).status === 200 ? true : undefined))).toBe(true);
    const held = await put(client, new Uint8Array(1 << 20).fill(7), { tier: Tier.RAM });

    stopRedis();
    const down = await until("/readyz to report the queue", async () => {
      const r = await readyz();
      return r.status === 503 ? r : undefined;
    });
    expect(down.body.checks?.queue).not.toBe("ok");
    expect(down.body.checks?.catalog).toBe("ok");

    // Allocate, write, commit, resolve, lease, renew and release need no job.
    const p = await put(client, new Uint8Array(1 << 20).fill(9), { tier: Tier.RAM });
    const snap = await client.data.resolveSnapshot({ id: idBytes(p.id) });
    expect(snap.payloadDescriptor?.tier).toBe(Tier.RAM);
    const lease = await client.data.acquireReadLease({ id: idBytes(p.id), minLeaseDurationMs: 60_000n });
    await client.data.renewLease({ leaseId: lease.leaseId, extendMs: 60_000n });
    await client.data.releaseLease({ leaseId: lease.leaseId });

    // A spill that must be queued fails for that item (the RPC itself succeeds, nothing changes).
    const spill = await client.catalog.spill({
      ids: [idBytes(p.id)],
      policy: SpillPolicy.BEST_EFFORT,
      targetTier: Tier.DISK,
    });
    expect(spill.results[0]?.ok).toBe(false);
    expect(spill.results[0]?.errorMessage).toMatch(/UNAVAILABLE/);
    expect((await client.data.resolveSnapshot({ id: idBytes(p.id) })).payloadDescriptor?.tier).toBe(Tier.RAM);

    // A force delete under a live lease is accepted; its bytes stay while the lease lives.
    const l2 = await client.data.acquireReadLease({ id: idBytes(held.id), minLeaseDurationMs: 2_000n });
    await client.catalog.delete({ id: idBytes(held.id), force: true });
    const segment = `/dev/shm/${api.ramPrefix}${held.id}.bin`;
    expect(existsSync(segment)).toBe(true);
    const gone = await client.data
      .acquireReadLease({ id: idBytes(held.id) })
      .catch((e: unknown) => ConnectError.from(e));
    expect(gone).toBeInstanceOf(ConnectError);
    expect((gone as ConnectError).code).toBe(Code.FailedPrecondition);
    void l2;

    startRedis();
    await until("/readyz to recover", async () => ((await readyz()).status === 200 ? true : undefined));
    // The worker's sweep (its scheduler survived the restart) frees the deleted payload's bytes
    // once the lease has expired.
    await until(
      "the deleted payload's bytes to be freed",
      async () => (existsSync(segment) ? undefined : true),
      30_000,
    );
    // And queued work flows again.
    const again = await client.catalog.spill({
      ids: [idBytes(p.id)],
      policy: SpillPolicy.BEST_EFFORT,
      targetTier: Tier.DISK,
    });
    expect(again.results[0]?.ok).toBe(true);
    await until("the spill to run", async () => {
      const d = await client.data.resolveSnapshot({ id: idBytes(p.id) });
      return d.payloadDescriptor?.tier === Tier.DISK ? true : undefined;
    });
  }, 120_000);
});
