// Data-plane benchmark: a committed 256 MiB RAM payload read through its descriptor by a separate,
// fresh process (its first read), against — in the same run — memcpy of the same size, the same
// bytes over HTTP from a Node server, and a Redis GET. Also prints the agent's and reader's memory.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { runNode, startSystem } from "../support/system.ts";
import { fmt, table } from "./lib/stats.ts";

const SIZE = Number(process.env.PM_BENCH_DATA_BYTES ?? 256 * 1024 * 1024);
const RUNS = Number(process.env.PM_BENCH_RUNS ?? 3);
const REDIS_URL = process.env.PM_REDIS_URL ?? "redis://127.0.0.1:6379";

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

function memcpyMs(): number {
  const src = Buffer.alloc(SIZE, 1);
  const dst = Buffer.alloc(SIZE, 2);
  src.copy(dst);
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    src.copy(dst);
    times.push(performance.now() - t0);
  }
  return median(times);
}

function procMemory(pid: number) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const mb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) / 1024;
  return { peakRssMb: mb("VmHWM"), anonMb: mb("RssAnon"), shmemMb: mb("RssShmem") };
}

/**
 * A tmpfs mounted with huge=always, so RAM regions sit on 2 MiB pages (the operator setting the
 * docs recommend). Needs root; returns undefined where mounting is not allowed.
 */
function mountHugeTmpfs(): { dir: string; unmount(): void } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const dir = mkdtempSync(join(tmpdir(), "pm-huge-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `huge=always,size=${SIZE * 3},mode=0700`, "tmpfs", dir], {
      stdio: "ignore",
    });
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
  return {
    dir,
    unmount() {
      execFileSync("umount", [dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

interface Scenario {
  readonly label: string;
  readonly env: Record<string, string>;
}

async function descriptorReads(s: Scenario) {
  const sys = await startSystem({ env: { PM_RAM_CAPACITY_BYTES: String(SIZE * 2), ...s.env } });
  try {
    const produced = await runNode<{ id: string; ms: number }>("tests/e2e/fixtures/producer.ts", [
      sys.url,
      "RAM",
      String(SIZE),
      "3",
    ]);
    const mapped: Record<string, number | string>[] = [];
    const faulted: Record<string, number | string>[] = [];
    for (let i = 0; i < RUNS; i++) {
      mapped.push(await runNode("tests/bench/fixtures/reader.ts", ["map", sys.url, produced.id, "1"]));
      faulted.push(await runNode("tests/bench/fixtures/reader.ts", ["map", sys.url, produced.id, "0"]));
    }
    return { mapped, faulted, agentMem: procMemory(sys.proc.pid!), producerMs: produced.ms };
  } finally {
    await sys.stop();
  }
}

export async function dataPlaneBench(): Promise<void> {
  const gbps = (ms: number) => SIZE / 1e9 / (ms / 1000);
  const mem = memcpyMs();
  const m = (xs: Record<string, number | string>[], k: string) => median(xs.map((x) => Number(x[k])));

  const huge = mountHugeTmpfs();
  const scenarios: Scenario[] = [{ label: "/dev/shm, 4 KiB pages", env: {} }];
  if (huge) scenarios.push({ label: "tmpfs huge=always", env: { PM_RAM_DIR: huge.dir } });
  const results = [];
  try {
    for (const s of scenarios) results.push({ s, r: await descriptorReads(s) });
  } finally {
    huge?.unmount();
  }

  const payload = Buffer.alloc(SIZE, 7);
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": SIZE });
    res.end(payload);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const httpUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/payload`;
  const httpRuns: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    httpRuns.push(
      (await runNode<{ firstReadMs: number }>("tests/bench/fixtures/reader.ts", ["http", httpUrl]))
        .firstReadMs,
    );
  }
  server.close();

  const redis = new Redis(REDIS_URL);
  const key = `pm:bench:${process.pid}`;
  await redis.set(key, payload);
  const redisRuns: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    redisRuns.push(
      (await runNode<{ firstReadMs: number }>("tests/bench/fixtures/reader.ts", ["redis", REDIS_URL, key]))
        .firstReadMs,
    );
  }
  await redis.del(key);
  redis.disconnect();

  const rows: (string | number)[][] = [["memcpy (Buffer.copy, warm)", mem, gbps(mem), "1.00x", "—", "—"]];
  for (const { s, r } of results) {
    const lease = m(r.mapped, "leaseMs");
    const read = m(r.mapped, "mapMs") + m(r.mapped, "copyMs");
    const total = m(r.mapped, "firstReadMs");
    const faultRead = m(r.faulted, "mapMs") + m(r.faulted, "copyMs");
    const ratios = (ms: number) => [
      `${fmt(mem / ms)}x`,
      `${fmt(median(httpRuns) / ms)}x`,
      `${fmt(median(redisRuns) / ms)}x`,
    ];
    rows.push([`descriptor, ${s.label}: map(prefault)+copy`, read, gbps(read), ...ratios(read)]);
    rows.push([
      `descriptor, ${s.label}: same, no prefault`,
      faultRead,
      gbps(faultRead),
      ...ratios(faultRead),
    ]);
    rows.push([`descriptor, ${s.label}: lease RPC + map + copy`, total, gbps(total), ...ratios(total)]);
    rows.push([`  (lease RPC alone: ${fmt(lease)} ms)`, "", "", "", "", ""]);
  }
  rows.push([
    "HTTP GET from a Node server",
    median(httpRuns),
    gbps(median(httpRuns)),
    `${fmt(mem / median(httpRuns))}x`,
    "1.00x",
    "",
  ]);
  rows.push([
    "Redis GET",
    median(redisRuns),
    gbps(median(redisRuns)),
    `${fmt(mem / median(redisRuns))}x`,
    "",
    "1.00x",
  ]);
  table(
    `Data plane: first read of a ${SIZE / 2 ** 20} MiB RAM payload by a fresh process (median of ${RUNS})`,
    ["path", "ms", "GB/s", "÷ memcpy", "× HTTP", "× Redis"],
    rows,
  );
  const first = results[0]!.r;
  table(
    "Memory: the payload is mapped, not copied (anon = heap+malloc, shmem = shared segment pages)",
    ["process", "peak RSS MiB", "anon MiB", "shmem MiB", "JS heap MiB"],
    [
      [
        "api+agent (payload-manager all)",
        first.agentMem.peakRssMb,
        first.agentMem.anonMb,
        first.agentMem.shmemMb,
        "—",
      ],
      [
        "reader after map+copy",
        m(first.mapped, "rssMb"),
        m(first.mapped, "anonMb"),
        m(first.mapped, "shmemMb"),
        m(first.mapped, "heapMb"),
      ],
    ],
  );
  console.log(
    `  (reader anon includes the ${SIZE / 2 ** 20} MiB scratch buffer the copy lands in; the JS heap does not grow by the payload)`,
  );
}
