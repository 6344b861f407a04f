// Worker faults in the split deployment: API (`payload-manager api`), tier agent (`agent`) and
// worker (`worker`) as separate processes on one Postgres catalog and one BullMQ queue (a prefix
// unique to this run). A worker killed -9 in the middle of a spill is restarted; the payload ends
// in exactly one placement with the right bytes and no orphan region on the agent.
//
// The stuck move is repaired by the restarted worker's sweep once it is older than
// `moveTimeoutMs` (default 30 min; 2 s here through PM_MOVE_TIMEOUT_MS). All three share an agent
// token, so the agent refuses calls without it: the worker's copies and frees must carry it.
import type { ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { createPayloadClient, idBytes, type PayloadClient } from "@pm/client";
import { get, put } from "@pm/client/node";
import { openCatalog } from "@pm/db";
import { asPayloadId, type Catalog } from "@pm/domain";
import { clearRedisPrefix } from "@pm/queue/testing";
import { SpillPolicy, Tier } from "@pm/rpc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningSystem, removeDataDir, spawnRole, startSystem } from "../support/system.ts";
import { createDatabase, type TestDatabase } from "./lib/postgres.ts";

const REDIS_URL = process.env.PM_REDIS_URL ?? "redis://127.0.0.1:6379";
const PREFIX = `pm-wf-${process.pid}-${Date.now().toString(36)}`;
const SIZE = Number(process.env.PM_WF_BYTES ?? 512 * 1024 * 1024);
const AGENT_TOKEN = `wf-agent-token-${process.pid}`;

let db: TestDatabase;
let api: RunningSystem;
let agent: ChildProcess | undefined;
let worker: ChildProcess | undefined;
let client: PayloadClient;
let catalog: Catalog;

const workerEnv = () => ({
  PM_CATALOG_URL: db.url,
  PM_REDIS_URL: REDIS_URL,
  PM_QUEUE_PREFIX: PREFIX,
  PM_WORKER_METRICS_PORT: "0",
  PM_SWEEP_INTERVAL_MS: "500",
  PM_MOVE_TIMEOUT_MS: "2000",
  PM_AGENT_TOKEN: AGENT_TOKEN,
});

beforeAll(async () => {
  db = await createDatabase("pm_wf");
  api = await startSystem({
    role: "api",
    env: {
      PM_CATALOG_URL: db.url,
      PM_REDIS_URL: REDIS_URL,
      PM_QUEUE_PREFIX: PREFIX,
      PM_AGENT_TOKEN: AGENT_TOKEN,
    },
  });
  agent = await spawnRole(
    "agent",
    api.dataDir,
    {
      PM_AGENT_ID: `wf-agent-${process.pid}`,
      PM_AGENT_PORT: "0",
      PM_CONTROL_PLANE_URL: api.url,
      PM_DISK_ROOT: api.diskRoot,
      PM_RAM_PREFIX: api.ramPrefix,
      PM_RAM_CAPACITY_BYTES: String(4 * SIZE),
      PM_DISK_CAPACITY_BYTES: String(4 * SIZE),
      PM_AGENT_TOKEN: AGENT_TOKEN,
    },
    "registered with the control plane",
  );
  worker = await spawnRole("worker", api.dataDir, workerEnv(), "payload-manager worker started");
  client = createPayloadClient({ baseUrl: api.url });
  catalog = await openCatalog(db.url);
}, 90_000);

afterAll(async () => {
  for (const p of [worker, agent]) if (p && p.exitCode === null) p.kill("SIGKILL");
  await api?.stop();
  await catalog?.close().catch(() => undefined);
  await db?.drop().catch(() => undefined);
  await clearRedisPrefix(REDIS_URL, PREFIX).catch(() => undefined);
  for (const f of readdirSync("/dev/shm"))
    if (api && f.startsWith(api.ramPrefix)) removeDataDir(join("/dev/shm", f));
  if (api) removeDataDir(api.dataDir);
});

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function files(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir, { recursive: true }).map(String) : [];
}

describe("worker killed mid-spill", () => {
  it("ends in exactly one consistent placement with the right bytes and no orphan region", async () => {
    const bytes = randomBytes(SIZE);
    const sum = createHash("sha256").update(bytes).digest("hex");
    const { id } = await put(client, bytes, { tier: Tier.RAM });
    const pid = asPayloadId(id);

    const res = await client.catalog.spill({
      ids: [idBytes(id)],
      policy: SpillPolicy.BEST_EFFORT,
      targetTier: Tier.DISK,
    });
    expect(res.results[0]?.ok).toBe(true);
    const spilling = await until("the move to start (SPILLING)", async () => {
      const p = await catalog.transaction((tx) => tx.getPayload(pid));
      return p?.state === "SPILLING" ? p : undefined;
    });
    expect(spilling.pendingPlacement?.tier).toBe("DISK");
    worker!.kill("SIGKILL");
    await new Promise((r) => worker!.once("exit", r));

    // Restart the worker; the stalled move job, if it is retried, sees a version it did not
    // decide on and is skipped. Its sweep repairs the stuck move.
    worker = await spawnRole("worker", api.dataDir, workerEnv(), "payload-manager worker started");
    const settled = await until("one settled placement", async () => {
      const p = await catalog.transaction((tx) => tx.getPayload(pid));
      return p && (p.state === "ACTIVE" || p.state === "DURABLE") ? p : undefined;
    });
    expect(settled.pendingPlacement).toBeUndefined();
    expect(["RAM", "DISK"]).toContain(settled.placement.tier);

    const h = await get(client, id);
    try {
      expect(createHash("sha256").update(h.bytes).digest("hex")).toBe(sum);
    } finally {
      await h.release();
    }
    // Exactly one region holds the payload: the shm segment or the disk file, not both.
    await until("the retired / orphan region to be freed", async () => {
      const shm = readdirSync("/dev/shm").filter((f) => f.startsWith(api.ramPrefix) && f.includes(id));
      const disk = files(api.diskRoot).filter((f) => f.includes(id));
      return shm.length + disk.length === 1 ? true : undefined;
    });
  }, 180_000);
});
