/**
 * Every GPU check and GPU benchmark of @pm/native, in one script for the GPU
 * machine (bundled by prepare.sh into .devbin/gpu-checks.mjs, run by
 * run-on-device.sh). Prints PASS/FAIL/SKIP lines, a figures table and a final
 * "N passed, N failed" line; writes $OUT/gpu-results.json when OUT is set.
 *
 * Env: PM_GPU_REQUIRED=1 turns "no CUDA device" into a failure (the device
 * run); PM_GPU_BENCH_BYTES (default 1 GiB) and PM_GPU_BENCH_REPS (default 5)
 * size the benchmark.
 *
 * Internal child modes (same bundle, second process):
 *   --child-ipc <hex handle> <bytes>          open, copy out to pinned memory, checksum, time reopen
 *   --child-bench <hex handle> <bytes> <reps> device-to-device copies from the imported allocation
 */
import { spawn } from "node:child_process";
import { randomFillSync } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { type CopyTiming, type NativeApi, type OwnedBuffer, tryNativeApi } from "../../native/lib/index.ts";

const DEVICE = 0;
const GiB = 2 ** 30;
const MiB = 2 ** 20;

type Status = "PASS" | "FAIL" | "SKIP";
interface CheckResult {
  name: string;
  status: Status;
  detail: string;
}

const results: CheckResult[] = [];
const figures: Record<string, unknown> = {};

function report(name: string, status: Status, detail: string): void {
  results.push({ name, status, detail });
  console.log(`${status} ${name}${detail ? ` — ${detail}` : ""}`);
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === "string" ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}

async function check(name: string, body: () => Promise<string>): Promise<boolean> {
  try {
    report(name, "PASS", await body());
    return true;
  } catch (error) {
    report(name, "FAIL", describeError(error));
    return false;
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const gbps = (bytes: number, ms: number): number => bytes / (ms / 1e3) / 1e9;
const fmt = (n: number, digits = 2): string => n.toFixed(digits);

async function timedCopies(reps: number, copy: () => Promise<CopyTiming>) {
  await copy(); // warm-up: first-touch, lazy mappings
  const runs: CopyTiming[] = [];
  for (let i = 0; i < reps; i++) runs.push(await copy());
  return {
    deviceMs: median(runs.map((r) => r.deviceMs)),
    wallMs: median(runs.map((r) => r.wallMs)),
    all: runs.map((r) => r.deviceMs),
  };
}

/** Runs this bundle again as a child process and parses its last stdout line as JSON. */
function runChild(args: string[], timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [process.argv[1]!, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      timeout: timeoutMs,
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.stderr.on("data", (d) => {
      err += d;
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      const last = out.trim().split("\n").pop() ?? "";
      try {
        const parsed = JSON.parse(last) as Record<string, unknown>;
        if (code === 0 && parsed.error === undefined) return resolve(parsed);
        reject(
          new Error(`child failed (exit ${code}, signal ${signal}): ${String(parsed.error ?? last)} ${err}`),
        );
      } catch {
        reject(new Error(`child failed (exit ${code}, signal ${signal}): ${last} ${err}`.trim()));
      }
    });
  });
}

/**
 * Host staging memory "from a shm mapping": a /dev/shm segment when it has
 * room (containers often cap it at 64 MiB), otherwise anonymous page-aligned
 * memory; the backing is reported with the figures.
 */
async function hostRegion(api: NativeApi, bytes: number, tag: string) {
  const name = `/pm-gpucheck-${tag}-${process.pid}`;
  const free = api.statFs("/dev/shm").availableBytes;
  if (free >= bytes + 16 * MiB) {
    await api.createShm(name, bytes);
    const region = api.mapShm(name, { writable: true, prefault: true });
    return {
      bytes: region.bytes,
      backing: `shm ${name}`,
      dispose: () => {
        region.release();
        api.unlinkShm(name);
      },
    };
  }
  const staging: OwnedBuffer = api.allocAligned(bytes, { prefault: true });
  return {
    bytes: staging.bytes,
    backing: `anonymous memory (/dev/shm has only ${Math.floor(free / MiB)} MiB free)`,
    dispose: () => staging.release(),
  };
}

// ---------------------------------------------------------------- children

async function childIpc(api: NativeApi, hex: string, bytes: number): Promise<void> {
  const handle = Buffer.from(hex, "hex");
  api.cuda.memInfo(DEVICE); // create the context before timing the open
  let t = performance.now();
  const ptr = api.cuda.ipcOpenHandle(DEVICE, handle);
  const firstOpenMs = performance.now() - t;
  const pinned = api.cuda.allocHost(DEVICE, bytes);
  const copy = await api.cuda.copyDtoH(DEVICE, pinned.bytes, ptr);
  const checksum = await api.checksum(pinned.bytes);
  api.cuda.ipcCloseHandle(DEVICE, ptr);
  const reopens: number[] = [];
  for (let i = 0; i < 20; i++) {
    t = performance.now();
    const again = api.cuda.ipcOpenHandle(DEVICE, handle);
    reopens.push(performance.now() - t);
    api.cuda.ipcCloseHandle(DEVICE, again);
  }
  pinned.release();
  console.log(
    JSON.stringify({
      checksum,
      firstOpenMs,
      reopenP50Ms: median(reopens),
      dtohGBps: gbps(bytes, copy.deviceMs),
    }),
  );
}

async function childBench(api: NativeApi, hex: string, bytes: number, reps: number): Promise<void> {
  const src = api.cuda.ipcOpenHandle(DEVICE, Buffer.from(hex, "hex"));
  const dst = api.cuda.alloc(DEVICE, bytes);
  const d2d = await timedCopies(reps, () => api.cuda.copyDtoD(DEVICE, dst, src, bytes));
  api.cuda.free(DEVICE, dst);
  api.cuda.ipcCloseHandle(DEVICE, src);
  console.log(JSON.stringify(d2d));
}

// ---------------------------------------------------------------- checks

async function checkIpc(api: NativeApi): Promise<void> {
  const bytes = 64 * MiB;
  const host = await hostRegion(api, bytes, "ipc");
  let ptr: bigint | undefined;
  let registered = false;
  try {
    await check(
      "ipc: 64 MiB filled from a shm mapping, opened and verified in a second process",
      async () => {
        randomFillSync(host.bytes);
        const expected = await api.checksum(host.bytes);
        await api.cuda.hostRegister(DEVICE, host.bytes);
        registered = true;
        ptr = api.cuda.alloc(DEVICE, bytes);
        await api.cuda.copyHtoD(DEVICE, ptr, host.bytes);
        const handle = api.cuda.ipcGetHandle(DEVICE, ptr);
        if (handle.length !== 64) throw new Error(`IPC handle is ${handle.length} bytes, expected 64`);
        const child = await runChild(["--child-ipc", handle.toString("hex"), String(bytes)], 60_000);
        figures.ipc = { ...child, backing: host.backing, expected };
        if (child.checksum !== expected) {
          throw new Error(`child read ${String(child.checksum)}, parent wrote ${expected}`);
        }
        return `${expected} matches; first open ${fmt(Number(child.firstOpenMs), 3)} ms, reopen p50 ${fmt(
          Number(child.reopenP50Ms),
          3,
        )} ms (${host.backing})`;
      },
    );
    await check(
      "ipc: an IPC handle cannot be opened by the allocating process (clean error, no crash)",
      async () => {
        if (ptr === undefined) throw new Error("no allocation (previous check failed)");
        const handle = api.cuda.ipcGetHandle(DEVICE, ptr);
        try {
          const p = api.cuda.ipcOpenHandle(DEVICE, handle);
          api.cuda.ipcCloseHandle(DEVICE, p);
          return "driver allowed it (newer drivers may); closed again";
        } catch (error) {
          const code = (error as { code?: unknown }).code;
          if (typeof code !== "string" || !code.startsWith("CUDA_ERROR_")) throw error;
          return `rejected with ${code}`;
        }
      },
    );
  } finally {
    if (ptr !== undefined) api.cuda.free(DEVICE, ptr);
    if (registered) await api.cuda.hostUnregister(DEVICE, host.bytes);
    host.dispose();
  }
}

async function benchmarks(api: NativeApi): Promise<void> {
  const bytes = Number(process.env.PM_GPU_BENCH_BYTES ?? GiB);
  const reps = Number(process.env.PM_GPU_BENCH_REPS ?? 5);
  const size = bytes >= GiB ? `${fmt(bytes / GiB, 1)} GiB` : `${fmt(bytes / MiB, 0)} MiB`;
  const src = api.cuda.alloc(DEVICE, bytes);
  const dst = api.cuda.alloc(DEVICE, bytes);
  const host = await hostRegion(api, bytes, "bench");
  const pageable = Buffer.allocUnsafeSlow(bytes);
  pageable.fill(1); // commit the pages so the copies do not measure page faults
  host.bytes.fill(1);
  let registered = false;
  try {
    const rows: Array<[string, number, number, string]> = [];
    const inProcess = await timedCopies(reps, () => api.cuda.copyDtoD(DEVICE, dst, src, bytes));
    const handle = api.cuda.ipcGetHandle(DEVICE, src);
    const child = await runChild(
      ["--child-bench", handle.toString("hex"), String(bytes), String(reps)],
      120_000,
    );
    const viaIpc = { deviceMs: Number(child.deviceMs), wallMs: Number(child.wallMs) };
    const ipcRatio = inProcess.deviceMs / viaIpc.deviceMs;
    rows.push(["D2D in-process", inProcess.deviceMs, gbps(bytes, inProcess.deviceMs), ""]);
    rows.push([
      "D2D from IPC import (child)",
      viaIpc.deviceMs,
      gbps(bytes, viaIpc.deviceMs),
      `${fmt(ipcRatio)}x in-process`,
    ]);

    await api.cuda.hostRegister(DEVICE, host.bytes);
    registered = true;
    const h2dPinned = await timedCopies(reps, () => api.cuda.copyHtoD(DEVICE, dst, host.bytes));
    const d2hPinned = await timedCopies(reps, () => api.cuda.copyDtoH(DEVICE, host.bytes, src));
    const h2dPageable = await timedCopies(reps, () => api.cuda.copyHtoD(DEVICE, dst, pageable));
    const d2hPageable = await timedCopies(reps, () => api.cuda.copyDtoH(DEVICE, pageable, src));
    const h2d = gbps(bytes, h2dPinned.deviceMs);
    const d2h = gbps(bytes, d2hPinned.deviceMs);
    const h2dPage = gbps(bytes, h2dPageable.deviceMs);
    const d2hPage = gbps(bytes, d2hPageable.deviceMs);
    rows.push(["H2D registered host mapping", h2dPinned.deviceMs, h2d, `${fmt(h2d / h2dPage, 1)}x pageable`]);
    rows.push(["H2D pageable Buffer", h2dPageable.deviceMs, h2dPage, ""]);
    rows.push(["D2H registered host mapping", d2hPinned.deviceMs, d2h, `${fmt(d2h / d2hPage, 1)}x pageable`]);
    rows.push(["D2H pageable Buffer", d2hPageable.deviceMs, d2hPage, ""]);

    console.log(`\nbenchmark: ${size} per copy, median of ${reps} after a warm-up, CUDA event timing`);
    console.log(`host mapping: ${host.backing}`);
    console.log(`${"copy".padEnd(32)}${"ms".padStart(10)}${"GB/s".padStart(10)}  ratio`);
    for (const [label, ms, rate, ratio] of rows) {
      console.log(`${label.padEnd(32)}${fmt(ms, 3).padStart(10)}${fmt(rate, 1).padStart(10)}  ${ratio}`);
    }
    console.log("");
    figures.bench = {
      bytes,
      reps,
      hostBacking: host.backing,
      d2dInProcess: { ...inProcess, gbps: gbps(bytes, inProcess.deviceMs) },
      d2dViaIpc: { ...viaIpc, gbps: gbps(bytes, viaIpc.deviceMs), ratio: ipcRatio },
      h2dRegistered: { ...h2dPinned, gbps: h2d, wallGbps: gbps(bytes, h2dPinned.wallMs) },
      d2hRegistered: { ...d2hPinned, gbps: d2h, wallGbps: gbps(bytes, d2hPinned.wallMs) },
      h2dPageable: { ...h2dPageable, gbps: h2dPage, wallGbps: gbps(bytes, h2dPageable.wallMs) },
      d2hPageable: { ...d2hPageable, gbps: d2hPage, wallGbps: gbps(bytes, d2hPageable.wallMs) },
    };
    const target = (name: string, ok: boolean, detail: string) => report(name, ok ? "PASS" : "FAIL", detail);
    target("bench: D2D from an IPC import >= 0.95x in-process", ipcRatio >= 0.95, `${fmt(ipcRatio, 3)}x`);
    target("bench: H2D from a registered host mapping >= 45 GB/s", h2d >= 45, `${fmt(h2d, 1)} GB/s`);
    target("bench: D2H into a registered host mapping >= 45 GB/s", d2h >= 45, `${fmt(d2h, 1)} GB/s`);
  } finally {
    if (registered) await api.cuda.hostUnregister(DEVICE, host.bytes);
    host.dispose();
    api.cuda.free(DEVICE, src);
    api.cuda.free(DEVICE, dst);
  }
}

const PLANNED = [
  "cuda: libcuda loads and reports devices",
  "ipc: 64 MiB filled from a shm mapping, opened and verified in a second process",
  "ipc: an IPC handle cannot be opened by the allocating process (clean error, no crash)",
  "bench: D2D from an IPC import >= 0.95x in-process",
  "bench: H2D from a registered host mapping >= 45 GB/s",
  "bench: D2H into a registered host mapping >= 45 GB/s",
];

function finish(): never {
  const passed = results.filter((r) => r.status === "PASS").length;
  const failed = results.filter((r) => r.status === "FAIL").length;
  const skipped = results.filter((r) => r.status === "SKIP").length;
  const out = process.env.OUT;
  if (out) {
    writeFileSync(
      join(out, "gpu-results.json"),
      `${JSON.stringify({ results, figures, passed, failed, skipped }, null, 2)}\n`,
    );
  }
  console.log(`${passed} passed, ${failed} failed${skipped > 0 ? ` (${skipped} skipped)` : ""}`);
  process.exit(failed > 0 ? 1 : 0);
}

async function main(): Promise<void> {
  const [mode, ...args] = process.argv.slice(2);
  const loaded = tryNativeApi();
  if (mode === "--child-ipc" || mode === "--child-bench") {
    try {
      if (!loaded.ok) throw loaded.error;
      if (mode === "--child-ipc") await childIpc(loaded.api, args[0] ?? "", Number(args[1]));
      else await childBench(loaded.api, args[0] ?? "", Number(args[1]), Number(args[2]));
      process.exit(0);
    } catch (error) {
      console.log(JSON.stringify({ error: describeError(error) }));
      process.exit(1);
    }
  }

  const required = process.env.PM_GPU_REQUIRED === "1";
  if (!loaded.ok) {
    report("native addon loads", "FAIL", describeError(loaded.error));
    finish();
  }
  const api = loaded.api;
  const availability = api.cuda.availability();
  figures.availability = availability;
  if (!availability.available) {
    console.log(`no CUDA device: ${availability.reason}`);
    const status: Status = required ? "FAIL" : "SKIP";
    for (const name of PLANNED)
      report(name, status, required ? "CUDA did not load on the GPU machine" : "no GPU here");
    finish();
  }
  await check(PLANNED[0]!, async () => {
    const devices = api.cuda.devices();
    const info = api.cuda.memInfo(DEVICE);
    figures.devices = devices;
    figures.memInfo = info;
    for (const d of devices) {
      console.log(
        `  device ${d.ordinal}: ${d.name}, ${fmt(d.totalMemory / GiB, 1)} GiB, compute ${d.computeCapability}, ` +
          `${d.multiprocessors} SMs, PCI ${d.pciBusId}`,
      );
    }
    if (devices.length === 0 || !devices[0]!.name || devices[0]!.totalMemory <= 0) {
      throw new Error("no usable device properties");
    }
    return `${devices.length} device(s), driver ${availability.driverVersion}, ${fmt(info.free / GiB, 1)} GiB free`;
  });
  await checkIpc(api);
  try {
    await benchmarks(api);
  } catch (error) {
    for (const name of PLANNED.slice(3)) report(name, "FAIL", describeError(error));
  }
  finish();
}

await main();
