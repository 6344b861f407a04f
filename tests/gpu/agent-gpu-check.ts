/**
 * Agent-level GPU check for the GPU machine (bundled by tests/gpu/prepare.sh, run by
 * run-on-device.sh with the carried node and addon; no node_modules there). It runs the real
 * API core (memory catalog) and a real tier agent with the GPU tier in this process, then:
 *   1. a producer PROCESS writes 64 MiB into a GPU payload through its IPC handle, a separate
 *      consumer PROCESS opens the handle and reads the same bytes (sha256 compared);
 *   2. the agent spills a payload GPU → RAM and promotes it RAM → GPU in each copy mode of its GPU
 *      tier (register the mapped region with CUDA; staged through pinned buffers with pread/pwrite;
 *      staged with mapping windows), switched between moves on the same running agent; the bytes
 *      are verified in each mode, and a table gives end-to-end and agent-side times for 64 MiB and
 *      1 GiB (median of 3).
 * Prints PASS/FAIL/SKIP lines and "N passed, N failed"; writes $OUT/agent-gpu-results.json and
 * $OUT/agent-gpu-copy-modes.json.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createConnectTransport } from "@connectrpc/connect-web";
import { serve } from "@hono/node-server";
import { AgentRegionAllocator } from "@pm/agents";
import { createApp } from "@pm/api/app";
import { createPayloadClient, idBytes } from "@pm/client";
import { get, mapDescriptor, put, putGpu, readGpuToHost } from "@pm/client/node";
import { DEFAULT_DOMAIN_CONFIG, type UseCaseDeps } from "@pm/domain";
import { MemoryCatalog } from "@pm/domain/testing";
import { tryNativeApi } from "@pm/native";
import { SpillPolicy, Tier } from "@pm/rpc";
import { AgentConfigSchema, startAgent } from "@pm/tier-agent";

const mode = process.argv[2] ?? "main";
const quiet = { info() {}, warn() {}, error() {}, debug() {} };

function pattern(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  return b;
}
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

if (mode === "producer") {
  const [url, size] = process.argv.slice(3);
  const bytes = pattern(Number(size), 9);
  const res = await putGpu(createPayloadClient({ baseUrl: url! }), bytes);
  console.log(JSON.stringify({ id: res.id, sha256: sha(bytes) }));
  process.exit(0);
}
if (mode === "ram-consumer") {
  const [url, id] = process.argv.slice(3);
  const h = await get(createPayloadClient({ baseUrl: url! }), id!);
  console.log(JSON.stringify({ sha256: sha(h.bytes), size: h.bytes.length }));
  await h.release();
  process.exit(0);
}
if (mode === "consumer") {
  const [url, id] = process.argv.slice(3);
  const t0 = performance.now();
  const host = await readGpuToHost(createPayloadClient({ baseUrl: url! }), id!);
  console.log(
    JSON.stringify({ sha256: sha(host.bytes), size: host.bytes.length, ms: performance.now() - t0 }),
  );
  host.release();
  process.exit(0);
}

type Status = "PASS" | "FAIL" | "SKIP";
const results: { name: string; status: Status; detail: string }[] = [];
const report = (name: string, status: Status, detail: string) => {
  results.push({ name, status, detail });
  console.log(`${status} ${name}${detail ? ` — ${detail}` : ""}`);
};

function child(args: string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [process.argv[1]!, ...args], {
      stdio: ["ignore", "pipe", "inherit"],
      env: process.env,
    });
    let out = "";
    p.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    p.once("exit", (code) =>
      code === 0
        ? resolve(JSON.parse(out.trim().split("\n").pop()!))
        : reject(new Error(`child ${args[0]} exited ${code}: ${out}`)),
    );
  });
}

/** What this check uses of the agent's GPU tier (apps/tier-agent/src/tiers/gpu.ts), by shape. */
interface AgentCopyStats {
  readonly direction: "toGpu" | "fromGpu";
  readonly mode: string;
  readonly hostIo: string | undefined;
  readonly bytes: number;
  readonly ok: boolean;
  readonly totalMs: number;
  readonly setupMs: number;
  readonly transferMs: number;
  readonly teardownMs: number;
  readonly pinMs: number;
  readonly deviceMs: number;
  readonly hostMs: number;
  readonly chunks: number;
}
interface GpuCopyControl {
  configureCopies(changes: { mode?: string; hostIo?: string }): void;
  recentCopies(): readonly AgentCopyStats[];
}

/** The ways the agent can copy GPU↔RAM, measured side by side on one payload. */
const COPY_VARIANTS = [
  { label: "register", mode: "register", hostIo: "auto" },
  { label: "staged/fd", mode: "staged", hostIo: "fd" },
  { label: "staged/mmap", mode: "staged", hostIo: "mmap" },
] as const;

interface CopySample {
  e2eMs: number;
  agent: AgentCopyStats;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const gbps = (bytes: number, ms: number) => (bytes / 1e9 / (ms / 1000)).toFixed(1);

/**
 * One payload of `size` bytes made by a producer process, then for each rep and each copy variant:
 * spill GPU→RAM and promote RAM→GPU through the API (end-to-end time) with the agent's own copy
 * time beside it. The RAM bytes are checked after each variant's first spill and the GPU bytes (by
 * a consumer process) after its last promote; every move copies the previous one's result, so a
 * wrong byte anywhere shows up. Prints a table of medians.
 */
async function measureCopyModes(
  client: ReturnType<typeof createPayloadClient>,
  url: string,
  gpu: GpuCopyControl,
  size: number,
  reps: number,
  ramDir: string,
): Promise<void> {
  const mib = size >> 20;
  const name = `spill GPU→RAM and promote RAM→GPU through the agent, ${COPY_VARIANTS.map((v) => v.label).join(" / ")} (${mib} MiB)`;
  const samples = new Map<string, { spill: CopySample[]; promote: CopySample[] }>();
  const problems: string[] = [];
  let id: string | undefined;
  try {
    // Written by a child: this process allocated the GPU memory (it hosts the agent).
    const put = (await child(["producer", url, String(size)])) as { id: string; sha256: string };
    id = put.id;
    const want = put.sha256;
    const lastCopy = (direction: AgentCopyStats["direction"]) => {
      const s = gpu.recentCopies().at(-1);
      if (!s || s.direction !== direction || !s.ok || s.bytes !== size)
        throw new Error(`the agent recorded no ${direction} copy of ${size} bytes`);
      return s;
    };
    for (let rep = 0; rep < reps; rep++) {
      for (const v of COPY_VARIANTS) {
        gpu.configureCopies({ mode: v.mode, hostIo: v.hostIo });
        const row = samples.get(v.label) ?? { spill: [], promote: [] };
        samples.set(v.label, row);
        const t0 = performance.now();
        const sp = await client.catalog.spill({
          ids: [idBytes(id)],
          policy: SpillPolicy.BLOCKING,
          targetTier: Tier.RAM,
        });
        const spillMs = performance.now() - t0;
        const r = sp.results[0]!;
        if (!r.ok) throw new Error(`${v.label} spill failed: ${r.errorMessage}`);
        row.spill.push({ e2eMs: spillMs, agent: lastCopy("fromGpu") });
        if (rep === 0) {
          const m = mapDescriptor(r.payloadDescriptor!, { writable: false, prefault: true });
          const ramSha = sha(m.bytes);
          m.release();
          if (ramSha !== want) problems.push(`${v.label}: RAM bytes after the spill DIFFER`);
        }
        const t1 = performance.now();
        const pr = await client.catalog.promote({ id: idBytes(id), targetTier: Tier.GPU, policy: 2 });
        const promoteMs = performance.now() - t1;
        if (pr.payloadDescriptor?.tier !== Tier.GPU) throw new Error(`${v.label} promote did not reach GPU`);
        row.promote.push({ e2eMs: promoteMs, agent: lastCopy("toGpu") });
        if (rep === reps - 1) {
          // Only another process may open the agent's IPC handle: a child reads the GPU bytes.
          const back = await child(["consumer", url, id]);
          if (back.sha256 !== want) problems.push(`${v.label}: GPU bytes after the promote DIFFER`);
        }
      }
    }
  } catch (e) {
    problems.push((e as Error).message);
  } finally {
    gpu.configureCopies({ mode: "auto", hostIo: "auto" });
    if (id) await client.catalog.delete({ id: idBytes(id), force: true }).catch(() => undefined);
  }

  // RAM region creation (fallocate) is part of every spill but outside the GPU copy: shown apart.
  const createMs: number[] = [];
  if (native.ok)
    for (let i = 0; i < Math.min(reps, 3); i++) {
      const path = join(ramDir, `pmgpu-create-${process.pid}-${i}.bin`);
      const t = performance.now();
      try {
        await native.api.createFile(path, size);
        createMs.push(performance.now() - t);
      } catch {
        // not enough room: leave the figure out
      } finally {
        rmSync(path, { force: true });
      }
    }

  const f = (ms: number) => `${ms.toFixed(1).padStart(7)} ms ${gbps(size, ms).padStart(5)} GB/s`;
  const lines = [
    `GPU↔RAM copies of ${mib} MiB, median of ${reps}; e2e = Spill/Promote RPC, agent = the GPU tier's copy alone`,
    `  ${"mode".padEnd(12)} ${"spill e2e".padEnd(21)} ${"spill agent".padEnd(21)} ${"promote e2e".padEnd(21)} promote agent`,
  ];
  const table: Record<string, unknown>[] = [];
  for (const [label, row] of samples) {
    if (row.spill.length === 0 || row.promote.length === 0) continue;
    const m = (xs: CopySample[], k: keyof AgentCopyStats | "e2eMs") =>
      median(xs.map((x) => (k === "e2eMs" ? x.e2eMs : Number(x.agent[k]))));
    const spill = { e2e: m(row.spill, "e2eMs"), agent: m(row.spill, "totalMs") };
    const promote = { e2e: m(row.promote, "e2eMs"), agent: m(row.promote, "totalMs") };
    lines.push(
      `  ${label.padEnd(12)} ${f(spill.e2e)} ${f(spill.agent)} ${f(promote.e2e)} ${f(promote.agent)}`,
    );
    for (const [dir, xs] of [
      ["spill", row.spill],
      ["promote", row.promote],
    ] as const) {
      const a = xs[xs.length - 1]!.agent;
      lines.push(
        `      ${dir.padEnd(8)} agent: setup ${m(xs, "setupMs").toFixed(1)} ms, transfer ${m(xs, "transferMs").toFixed(1)} ms (device ${m(xs, "deviceMs").toFixed(1)}, host ${m(xs, "hostMs").toFixed(1)}, ${a.chunks} chunk(s)), teardown ${m(xs, "teardownMs").toFixed(1)} ms${a.mode === "register" ? `, of which cuMemHostRegister+Unregister ${m(xs, "pinMs").toFixed(1)} ms` : ""}; ran as ${a.mode}${a.hostIo ? `/${a.hostIo}` : ""}`,
      );
    }
    table.push({ size, mode: label, spill, promote, samples: row });
  }
  if (createMs.length > 0)
    lines.push(
      `  RAM region creation (createFile/fallocate of ${mib} MiB in ${ramDir}, part of each spill e2e): ${median(createMs).toFixed(1)} ms`,
    );
  const best = (k: "spill" | "promote") =>
    table
      .map((t) => ({ mode: t.mode as string, ms: (t[k] as { e2e: number }).e2e }))
      .sort((a, b) => a.ms - b.ms)[0]?.mode;
  if (table.length > 0)
    lines.push(`  fastest end to end: spill ${best("spill")}, promote ${best("promote")}`);
  console.log(lines.join("\n"));
  copyModeResults.push({ size, reps, createMs, table });
  report(
    name,
    problems.length === 0 ? "PASS" : "FAIL",
    problems.length === 0 ? "bytes verified in every mode" : problems.join("; "),
  );
}

const copyModeResults: unknown[] = [];

const native = tryNativeApi();
const avail = native.ok
  ? native.api.cuda.availability()
  : { available: false, reason: native.error.message, deviceCount: 0 };
const required = process.env.PM_GPU_REQUIRED === "1";
const gpuOk = avail.available && avail.deviceCount > 0;
if (!gpuOk) report("agent GPU tier", required ? "FAIL" : "SKIP", `no CUDA device: ${avail.reason}`);
{
  const dir = mkdtempSync(join(tmpdir(), "pm-gpu-agent-"));
  // Containers often give /dev/shm only 64 MiB; then the RAM tier lives in a directory instead
  // (the same code path as a huge-page tmpfs mount), and the check says so.
  let ramDir = "/dev/shm";
  if (native.ok && native.api.statFs("/dev/shm").availableBytes < 3 * 2 ** 30) {
    ramDir = join(dir, "ram");
    console.log(`note: /dev/shm has under 3 GiB free; the RAM tier uses ${ramDir}`);
  }
  const catalog = new MemoryCatalog();
  const clock = { now: () => Date.now() };
  const deps: UseCaseDeps = {
    catalog,
    clock,
    allocator: new AgentRegionAllocator({
      catalog,
      clock,
      agentTtlMs: 15_000,
      transportFor: (e) => createConnectTransport({ baseUrl: e }),
    }),
    jobs: { enqueue: async () => undefined },
    ids: { newId: () => crypto.randomUUID() },
    presigner: undefined,
    config: DEFAULT_DOMAIN_CONFIG,
  };
  const app = createApp({
    useCases: deps,
    log: quiet,
    metrics: { observeRequest() {}, render: async () => ({ contentType: "text/plain", body: "" }) },
    auth: { tokens: {}, agentToken: "" },
    heartbeatIntervalMs: 1000,
    newRequestId: () => crypto.randomUUID(),
    maxBodyBytes: 4 << 20,
    readiness: {},
  });
  const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" });
  await new Promise((r) => server.once("listening", r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const agent = await startAgent(
    AgentConfigSchema.parse({
      port: 0,
      controlPlaneUrl: url,
      logLevel: "warn",
      tiers: {
        ram: { dir: ramDir, prefix: "pmgpu-", capacityBytes: 4 * 2 ** 30 },
        disk: { root: join(dir, "disk"), capacityBytes: 4 * 2 ** 30 },
        gpu: { enabled: gpuOk },
      },
    }),
    { log: quiet },
  );
  try {
    const deadline = Date.now() + 10_000;
    while ((await catalog.transaction((tx) => tx.listAgents())).length === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    const client = createPayloadClient({ baseUrl: url });
    const size = 64 << 20;
    try {
      // Harness check (runs everywhere): API + agent up, a RAM payload read by a child process.
      const bytes = pattern(size, 3);
      const put1 = await put(client, bytes, { tier: Tier.RAM });
      const c = await child(["ram-consumer", url, put1.id]);
      const ok = c.sha256 === sha(bytes);
      report(
        "harness: API + agent up, 64 MiB RAM payload read by a child process",
        ok ? "PASS" : "FAIL",
        ok ? "" : "sha256 differs",
      );
      await client.catalog.delete({ id: idBytes(put1.id), force: true });
    } catch (e) {
      report(
        "harness: API + agent up, 64 MiB RAM payload read by a child process",
        "FAIL",
        (e as Error).message,
      );
    }
    if (gpuOk)
      try {
        const p = await child(["producer", url, String(size)]);
        const c = await child(["consumer", url, String(p.id)]);
        const ok = c.sha256 === p.sha256 && c.size === size;
        report(
          "two processes share a 64 MiB GPU payload via CUDA IPC",
          ok ? "PASS" : "FAIL",
          `consumer read in ${Number(c.ms).toFixed(1)} ms, sha256 ${ok ? "matches" : "DIFFERS"}`,
        );
      } catch (e) {
        report("two processes share a 64 MiB GPU payload via CUDA IPC", "FAIL", (e as Error).message);
      }

    if (gpuOk) {
      const gpu = agent.agent.tiers().find((b) => b.tier === "GPU") as unknown as GpuCopyControl | undefined;
      if (!gpu || typeof gpu.configureCopies !== "function")
        report("GPU copy modes", "FAIL", "the agent has no GPU tier with configurable copies");
      else
        for (const big of [64 << 20, 1 << 30]) {
          await measureCopyModes(client, url, gpu, big, big >= 1 << 30 ? 3 : 1, ramDir);
        }
    }
  } finally {
    await agent.close();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const passed = results.filter((r) => r.status === "PASS").length;
const failed = results.filter((r) => r.status === "FAIL").length;
if (process.env.OUT) {
  writeFileSync(join(process.env.OUT, "agent-gpu-results.json"), `${JSON.stringify(results, null, 2)}\n`);
  if (copyModeResults.length > 0)
    writeFileSync(
      join(process.env.OUT, "agent-gpu-copy-modes.json"),
      `${JSON.stringify(copyModeResults, null, 2)}\n`,
    );
}
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed > 0 ? 1 : 0;
