// The worker's composition root against the real Redis (PM_REDIS_URL, default local): BullMQ runs
// the real handlers; the catalog and allocator are the domain's fakes so the test owns the data.
import {
  acquireReadLease,
  allocatePayload,
  commitPayload,
  deletePayload,
  type Payload,
  type PayloadId,
} from "@pm/domain";
import { FakeAllocator, MemoryCatalog } from "@pm/domain/testing";
import { silentLog } from "@pm/queue";
import { clearRedisPrefix } from "@pm/queue/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadWorkerConfig } from "./config.ts";
import { startWorker, type WorkerHandle } from "./main.ts";

const REDIS_URL = process.env.PM_REDIS_URL ?? "redis://127.0.0.1:6379";
const PREFIX = `pm-test-worker-${process.pid}-${Date.now().toString(36)}`;
const MiB = 1024 * 1024;
const ctx = { namespace: "team-a" };

let worker: WorkerHandle;
const catalog = new MemoryCatalog();
const allocator = new FakeAllocator({ RAM: 64 * MiB, DISK: 64 * MiB });

beforeAll(async () => {
  const config = loadWorkerConfig(undefined, {
    PM_REDIS_URL: REDIS_URL,
    PM_QUEUE_PREFIX: PREFIX,
    PM_CATALOG_URL: "memory:",
    PM_WORKER_METRICS_PORT: "0",
  });
  worker = await startWorker(config, { catalog, allocator, log: silentLog });
});

afterAll(async () => {
  await worker?.close();
  await clearRedisPrefix(REDIS_URL, PREFIX);
});

async function until(what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const peek = (id: PayloadId) => catalog.transaction((tx) => tx.getPayload(id));

async function committed(ttlMs: number): Promise<Payload> {
  const deps = worker.deps;
  const a = await allocatePayload(deps, ctx, {
    sizeBytes: MiB,
    tier: "RAM",
    ttlMs,
    noEvict: false,
    evictionPolicy: undefined,
    preferredHost: undefined,
  });
  return (await commitPayload(deps, ctx, { id: a.payload.id, sizeBytes: 0, checksum: "" })).payload;
}

describe("startWorker", () => {
  it("serves /healthz and /readyz (catalog and Redis)", async () => {
    expect((await fetch(`${worker.httpUrl}/healthz`)).status).toBe(200);
    const ready = await fetch(`${worker.httpUrl}/readyz`);
    expect([ready.status, await ready.json()]).toEqual([
      200,
      { status: "ok", checks: { catalog: "ok", queue: "ok" } },
    ]);
  });

  it("enforces a TTL within 1 s of the deadline through the BullMQ sweep", async () => {
    const p = await committed(300);
    await until("the payload to expire", async () => (await peek(p.id)) === undefined, 5_000);
    const late = Date.now() - p.expiresAt!;
    expect(late).toBeLessThan(1_000);
    expect(allocator.has(p.id, "RAM")).toBe(false);
  });

  it("frees a force-deleted payload's bytes once its lease has expired", async () => {
    const p = await committed(0);
    const { lease } = await acquireReadLease(worker.deps, ctx, {
      id: p.id,
      minTier: undefined,
      promotionPolicy: "BEST_EFFORT",
      durationMs: 500,
    });
    await deletePayload(worker.deps, ctx, { id: p.id, force: true });
    expect(allocator.has(p.id, "RAM")).toBe(true);
    await until("the bytes to be freed", () => !allocator.has(p.id, "RAM"), 5_000);
    expect(Date.now()).toBeGreaterThanOrEqual(lease.expiresAt);
    expect(await peek(p.id)).toBeUndefined();
  });

  it("exports job, queue-depth and sweep metrics", async () => {
    await until("a completed sweep", async () => {
      const text = await (await fetch(`${worker.httpUrl}/metrics`)).text();
      return text.includes('pm_worker_jobs_total{job="sweep",outcome="completed"}');
    });
    const text = await (await fetch(`${worker.httpUrl}/metrics`)).text();
    expect(text).toMatch(/^pm_worker_queue_jobs\{state="delayed"\} \d+$/m);
    expect(text).toMatch(/^pm_worker_queue_jobs\{state="failed"\} 0$/m);
    expect(text).toMatch(/^pm_worker_sweep_items_total\{kind="expired"\} [1-9]\d*$/m);
    expect(text).toMatch(/^pm_worker_job_duration_seconds_count\{job="sweep",outcome="completed"\} [1-9]/m);
  });
});
