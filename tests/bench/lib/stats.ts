import { readFileSync } from "node:fs";

/** Small helpers for benchmarks: percentiles, closed-loop load, table printing. */

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export interface LoadResult {
  readonly ops: number;
  readonly seconds: number;
  readonly opsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/**
 * Closed-loop load: `concurrency` workers each run `op` back to back for `seconds` (after a short
 * warm-up). Returns throughput and latency percentiles of one `op`.
 */
export async function closedLoop(
  op: () => Promise<void>,
  concurrency: number,
  seconds: number,
): Promise<LoadResult> {
  const warmUntil = performance.now() + Math.min(500, seconds * 200);
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < warmUntil) await op();
    }),
  );
  const lat: number[] = [];
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        await op();
        lat.push(performance.now() - t0);
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  lat.sort((a, b) => a - b);
  return {
    ops: lat.length,
    seconds: elapsed,
    opsPerSec: lat.length / elapsed,
    p50Ms: percentile(lat, 50),
    p99Ms: percentile(lat, 99),
  };
}

export function table(
  title: string,
  header: readonly string[],
  rows: readonly (readonly (string | number)[])[],
): void {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === "number" ? fmt(c) : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? "").length)));
  console.log(`\n${title}`);
  for (const [n, r] of cells.entries()) {
    console.log(r.map((c, i) => String(c).padStart(widths[i]!)).join("  "));
    if (n === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
  }
}

export function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

/** Reads this process's memory split from /proc: anonymous (heap, malloc) vs shared (mapped shm). */
export function memoryNow(): { rssMb: number; anonMb: number; shmemMb: number; heapMb: number } {
  const status = readFileSync("/proc/self/status", "utf8");
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) / 1024;
  return {
    rssMb: kb("VmRSS"),
    anonMb: kb("RssAnon"),
    shmemMb: kb("RssShmem"),
    heapMb: process.memoryUsage().heapUsed / 2 ** 20,
  };
}
