/**
 * Agent-level GPU check for the GPU machine (bundled by tests/gpu/prepare.sh, run by
 * run-on-device.sh with the carried node and addon; no node_modules there). It runs the real
 * API core (memory catalog) and a real tier agent with the GPU tier in this process, then:
 *   1. a producer PROCESS writes 64 MiB into a GPU payload through its IPC handle, a separate
 *      consumer PROCESS opens the handle and reads the same bytes (sha256 compared);
 *   2. the agent spills the payload GPU → RAM and promotes RAM → GPU (pinned shm mapping), and the
 *      bytes are verified after each move; copy throughput is printed for 1 GiB.
 * Prints PASS/FAIL/SKIP lines and "N passed, N failed"; writes $OUT/agent-gpu-results.json.
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

    for (const big of gpuOk ? [64 << 20, 1 << 30] : []) {
      const name = `spill GPU→RAM and promote RAM→GPU through the agent (${big >> 20} MiB)`;
      try {
        // Written by a child too: this process allocated the GPU memory (it hosts the agent).
        const put = (await child(["producer", url, String(big)])) as { id: string; sha256: string };
        const want = put.sha256;
        const t0 = performance.now();
        const sp = await client.catalog.spill({
          ids: [idBytes(put.id)],
          policy: SpillPolicy.BLOCKING,
          targetTier: Tier.RAM,
        });
        const spillMs = performance.now() - t0;
        const r = sp.results[0]!;
        if (!r.ok) throw new Error(`spill failed: ${r.errorMessage}`);
        const m = mapDescriptor(r.payloadDescriptor!, { writable: false, prefault: true });
        const ramSha = sha(m.bytes);
        m.release();
        const t1 = performance.now();
        const pr = await client.catalog.promote({ id: idBytes(put.id), targetTier: Tier.GPU, policy: 2 });
        const promoteMs = performance.now() - t1;
        // The agent allocated the GPU memory in this process; only another process may open its
        // IPC handle, so the promoted bytes are read back by a child.
        const back = await child(["consumer", url, put.id]);
        const gpuSha = String(back.sha256);
        const ok = ramSha === want && gpuSha === want && pr.payloadDescriptor?.tier === Tier.GPU;
        const gbps = (ms: number) => (big / 1e9 / (ms / 1000)).toFixed(1);
        report(
          name,
          ok ? "PASS" : "FAIL",
          `spill ${spillMs.toFixed(1)} ms (${gbps(spillMs)} GB/s end to end), promote ${promoteMs.toFixed(1)} ms (${gbps(promoteMs)} GB/s); bytes ${ok ? "verified" : "DIFFER"}`,
        );
        await client.catalog.delete({ id: idBytes(put.id), force: true });
      } catch (e) {
        report(name, "FAIL", (e as Error).message);
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
if (process.env.OUT)
  writeFileSync(join(process.env.OUT, "agent-gpu-results.json"), `${JSON.stringify(results, null, 2)}\n`);
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed > 0 ? 1 : 0;
