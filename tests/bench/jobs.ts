// Job pickup latency on BullMQ: the time from just before `enqueue` is called to the moment the
// worker's handler starts, through the project's BullJobQueue and
// BullWorkerHost (the worker role's code path) against the Redis at PM_REDIS_URL. Two shapes:
// 500 jobs one at a time (each waits for the previous to start) and 500 in a burst (all enqueued
// back to back). Baseline in the same run: a raw Redis round trip (PING) on its own ioredis
// connection, p50/p99. Every key lives under a prefix unique to this run and is deleted after.
import { asPayloadId, DEFAULT_DOMAIN_CONFIG, type DomainJob, type UseCaseDeps } from "@pm/domain";
import { FakeAllocator, FakeClock, MemoryCatalog, SequentialIds } from "@pm/domain/testing";
import { BullJobQueue, BullWorkerHost, type JobHandler, type JobHandlers } from "@pm/queue";
import { clearRedisPrefix } from "@pm/queue/testing";
import { Redis } from "ioredis";
import { percentile, table } from "./lib/stats.ts";

const REDIS_URL = process.env.PM_REDIS_URL ?? "redis://127.0.0.1:6379";
const JOBS = Number(process.env.PM_BENCH_JOBS ?? 500);

const jobFor = (n: number): DomainJob => ({
  name: "finalize-deletion",
  payloadId: asPayloadId(`123e4567-e89b-42d3-a456-${n.toString(16).padStart(12, "0")}`),
});

function stats(lat: number[]): { p50: number; p99: number; max: number } {
  const s = [...lat].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p99: percentile(s, 99), max: s[s.length - 1] ?? Number.NaN };
}

async function pingBaseline(n: number): Promise<number[]> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    for (let i = 0; i < 50; i++) await redis.ping();
    const lat: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await redis.ping();
      lat.push(performance.now() - t0);
    }
    return lat;
  } finally {
    redis.disconnect();
  }
}

export async function jobsBench(): Promise<void> {
  const prefix = `pm-bench-jobs-${process.pid}-${Date.now().toString(36)}`;
  const queue = new BullJobQueue({ redisUrl: REDIS_URL, prefix, queueName: "jobs-bench" });
  const enqueuedAt = new Map<string, number>();
  const started: { id: string; at: number }[] = [];
  let onStart: (() => void) | undefined;
  const record: JobHandler<"finalize-deletion"> = async (_deps, job) => {
    started.push({ id: job.payloadId, at: performance.now() });
    onStart?.();
  };
  const noop: JobHandler<never> = async () => undefined;
  const handlers: JobHandlers = {
    "finalize-deletion": record,
    move: noop,
    sweep: noop,
    pressure: noop,
    "stream-retention": noop,
  };
  const deps: UseCaseDeps = {
    catalog: new MemoryCatalog(),
    allocator: new FakeAllocator({ RAM: 1 }),
    jobs: queue,
    clock: new FakeClock(),
    ids: new SequentialIds(),
    presigner: undefined,
    config: DEFAULT_DOMAIN_CONFIG,
  };
  const host = await BullWorkerHost.start({
    queue,
    deps,
    handlers,
    concurrency: 4,
    periodic: { sweepEveryMs: false, pressureEveryMs: false, streamRetentionEveryMs: false },
  });
  let seq = 0;
  const latencies = () => started.map((s) => s.at - (enqueuedAt.get(s.id) ?? Number.NaN));
  try {
    // Warm-up: connections, Lua scripts.
    for (let i = 0; i < 20; i++) {
      const j = jobFor(++seq);
      const done = new Promise<void>((r) => {
        onStart = r;
      });
      await queue.enqueue(j);
      await done;
    }
    started.length = 0;
    enqueuedAt.clear();

    // One at a time: enqueue, wait for the handler to start, next.
    for (let i = 0; i < JOBS; i++) {
      const j = jobFor(++seq);
      const done = new Promise<void>((r) => {
        onStart = r;
      });
      enqueuedAt.set(j.payloadId, performance.now());
      await queue.enqueue(j);
      await done;
    }
    const serial = stats(latencies());
    started.length = 0;
    enqueuedAt.clear();

    // Burst: every enqueue issued back to back; wait until all handlers have started.
    const all = new Promise<void>((r) => {
      onStart = () => {
        if (started.length >= JOBS) r();
      };
    });
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: JOBS }, () => {
        const j = jobFor(++seq);
        enqueuedAt.set(j.payloadId, performance.now());
        return queue.enqueue(j);
      }),
    );
    await all;
    const burstWallMs = performance.now() - t0;
    const burst = stats(latencies());
    onStart = undefined;

    const ping = stats(await pingBaseline(JOBS));
    table(
      `Job pickup latency on BullMQ (enqueue → handler start), ${JOBS} jobs, worker concurrency 4, ${REDIS_URL}`,
      ["case", "p50 ms", "p99 ms", "max ms"],
      [
        ["one at a time", serial.p50, serial.p99, serial.max],
        [`burst (all ${JOBS} in ${burstWallMs.toFixed(0)} ms)`, burst.p50, burst.p99, burst.max],
        ["baseline: Redis PING round trip", ping.p50, ping.p99, ping.max],
      ],
    );
  } finally {
    await host.close().catch(() => undefined);
    await queue.close().catch(() => undefined);
    await clearRedisPrefix(REDIS_URL, prefix).catch(() => undefined);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await jobsBench();
