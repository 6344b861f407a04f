// Object-tier benchmark: a payload (default 2 GiB) spilled RAM → DISK → S3 and promoted S3 → RAM by
// a tier agent running as its own process (API from startSystem, agent spawned beside it), with,
// in the same run, the baselines: `cp` of the same file for RAM → DISK, and a plain AWS SDK upload
// (PutObject streaming the same file) and download (GetObject to a file) for the S3 legs. Prints
// the agent's peak RSS (VmHWM) next to the payload size; the target is under 300 MB.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash, type Hash } from "node:crypto";
import { createReadStream, createWriteStream, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { createPayloadClient, idBytes } from "@pm/client";
import { getStream, putStream } from "@pm/client/node";
import { createS3Client } from "@pm/objects";
import { testObjectStore, testObjectStoreEnv } from "@pm/objects/testing";
import { PromotionPolicy, SpillPolicy, Tier } from "@pm/rpc";
import { ROOT, type RunningSystem, removeDataDir, startSystem } from "../support/system.ts";
import { fmt, table } from "./lib/stats.ts";

const SIZE = Number(process.env.PM_BENCH_OBJECT_BYTES ?? 2 * 1024 ** 3);
const RSS_LIMIT_MB = 300;

function statusOf(pid: number) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const mb = (k: string) => (Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024) / 1e6;
  return { peakRssMb: mb("VmHWM"), rssMb: mb("VmRSS"), anonMb: mb("RssAnon") };
}

/** Starts `payload-manager agent` as its own process, registered with the API of `sys`. */
async function startAgentProcess(sys: RunningSystem, env: Record<string, string>): Promise<ChildProcess> {
  const proc = spawn(process.execPath, [join(ROOT, "bin/payload-manager.mjs"), "agent"], {
    cwd: sys.dataDir,
    env: {
      ...process.env,
      PM_AGENT_ID: `bench-agent-${process.pid}`,
      PM_AGENT_PORT: "0",
      PM_CONTROL_PLANE_URL: sys.url,
      PM_DISK_ROOT: sys.diskRoot,
      PM_RAM_PREFIX: sys.ramPrefix,
      PM_LOG_LEVEL: "info",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const onLine = (line: string) => {
      output.push(line);
      if (line.includes("registered with the control plane")) resolve();
    };
    createInterface({ input: proc.stdout! }).on("line", onLine);
    createInterface({ input: proc.stderr! }).on("line", onLine);
    proc.once("exit", (code) => reject(new Error(`agent exited with ${code}:\n${output.join("\n")}`)));
    setTimeout(
      () => reject(new Error(`agent did not register in 30 s:\n${output.join("\n")}`)),
      30_000,
    ).unref();
  });
  return proc;
}

async function stopProcess(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null) return;
  await new Promise<void>((r) => {
    p.once("exit", () => r());
    p.kill("SIGTERM");
  });
}

/** `size` bytes of a xorshift pattern in 64 MiB chunks, fed to `hash` as they are produced. */
async function* pattern(size: number, hash: Hash): AsyncGenerator<Uint8Array> {
  const chunk = Buffer.allocUnsafe(64 * 2 ** 20);
  let x = 0x9e3779b9;
  for (let off = 0; off < size; off += chunk.length) {
    const n = Math.min(chunk.length, size - off);
    for (let i = 0; i + 4 <= n; i += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      chunk.writeUInt32LE(x >>> 0, i);
    }
    const out = chunk.subarray(0, n);
    hash.update(out);
    yield out;
  }
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

export async function objectTierBench(): Promise<void> {
  const store = testObjectStore();
  const s3env = { ...testObjectStoreEnv(store), AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" };
  const s3 = createS3Client(store);
  const sys = await startSystem({ role: "api", env: s3env });
  let agent: ChildProcess | undefined;
  const baselineKey = `bench/object-tier-${process.pid}-sdk.bin`;
  const scratch = join(sys.diskRoot, `baseline-${process.pid}.bin`);
  const shmScratch = `/dev/shm/${sys.ramPrefix}baseline.bin`;
  try {
    agent = await startAgentProcess(sys, {
      ...s3env,
      PM_RAM_CAPACITY_BYTES: String(SIZE * 2 + 2 ** 20),
      PM_DISK_CAPACITY_BYTES: String(SIZE * 2 + 2 ** 20),
    });
    const agentPid = agent.pid!;
    const atStart = statusOf(agentPid);
    const client = createPayloadClient({ baseUrl: sys.url });

    // Written window by window through shared memory, hashed as it goes (2 GiB is past what one
    // Buffer hash update takes).
    const wrote = createHash("sha256");
    const produced = await putStream(client, pattern(SIZE, wrote), SIZE, { tier: Tier.RAM });
    const id = produced.id;
    const sha256 = wrote.digest("hex");
    const shm = `/dev/shm/${sys.ramPrefix}${id}.bin`;
    const disk = join(sys.diskRoot, `${id}.bin`);
    const spill = async (targetTier: Tier) => {
      const res = await client.catalog.spill({
        ids: [idBytes(id)],
        policy: SpillPolicy.BLOCKING,
        targetTier,
      });
      if (!res.results[0]?.ok)
        throw new Error(`spill to ${Tier[targetTier]} failed: ${res.results[0]?.errorMessage}`);
    };

    // RAM → DISK: `cp` of the same segment to the same disk directory, then the agent's spill.
    const cp = await timed(async () => execFileSync("cp", [shm, scratch]));
    rmSync(scratch, { force: true });
    const toDisk = await timed(() => spill(Tier.DISK));

    // DISK → S3: one SDK PutObject streaming the same file, then the agent's multipart spill.
    const sdkPut = await timed(() =>
      s3.send(
        new PutObjectCommand({
          Bucket: store.bucket,
          Key: baselineKey,
          Body: createReadStream(disk, { highWaterMark: 2 ** 20 }),
          ContentLength: statSync(disk).size,
        }),
      ),
    );
    const toS3 = await timed(() => spill(Tier.OBJECT));
    const afterUpload = statusOf(agentPid);

    // S3 → RAM: one SDK GetObject of the payload's own object (the same multipart layout) streamed
    // into a file in /dev/shm, then the agent's promote.
    const sdkGet = await timed(async () => {
      const res = await s3.send(new GetObjectCommand({ Bucket: store.bucket, Key: `payloads/${id}` }));
      await pipeline(res.Body as Readable, createWriteStream(shmScratch, { highWaterMark: 2 ** 20 }));
    });
    rmSync(shmScratch, { force: true });
    const toRam = await timed(() =>
      client.catalog.promote({ id: idBytes(id), targetTier: Tier.RAM, policy: PromotionPolicy.BLOCKING }),
    );
    const afterAll = statusOf(agentPid);

    const read = createHash("sha256");
    for await (const window of getStream(client, id)) read.update(window);
    const back = read.digest("hex");
    if (back !== sha256) throw new Error(`the payload came back different (sha256 ${back}, wrote ${sha256})`);
    await client.catalog.delete({ id: idBytes(id) });

    const gbps = (ms: number) => SIZE / 1e9 / (ms / 1000);
    const row = (label: string, ms: number, base: string, baseMs: number) => [
      label,
      ms / 1000,
      gbps(ms),
      base,
      gbps(baseMs),
      `${fmt(baseMs / ms)}x`,
    ];
    table(
      `Object tier: moving one ${fmt(SIZE / 2 ** 30)} GiB payload (agent in its own process; Swift s3api on loopback)`,
      ["move", "s", "GB/s", "same-run baseline", "baseline GB/s", "speed vs baseline"],
      [
        row("spill RAM → DISK (agent, copy_file_range)", toDisk.ms, "cp of the same file", cp.ms),
        row("spill DISK → S3 (agent, multipart, streamed)", toS3.ms, "SDK PutObject of the file", sdkPut.ms),
        row("promote S3 → RAM (agent, ranged GETs)", toRam.ms, "SDK GetObject of it to a file", sdkGet.ms),
      ],
    );
    const pass = afterAll.peakRssMb < RSS_LIMIT_MB;
    table(
      "Agent memory (VmHWM from /proc/<pid>/status; MB = 10^6 bytes)",
      ["when", "payload", "agent peak RSS MB", "agent RSS MB", "anon MB"],
      [
        ["after start", "—", atStart.peakRssMb, atStart.rssMb, atStart.anonMb],
        [
          `after DISK → S3`,
          `${fmt(SIZE / 2 ** 30)} GiB`,
          afterUpload.peakRssMb,
          afterUpload.rssMb,
          afterUpload.anonMb,
        ],
        [`after S3 → RAM`, `${fmt(SIZE / 2 ** 30)} GiB`, afterAll.peakRssMb, afterAll.rssMb, afterAll.anonMb],
      ],
    );
    console.log(
      `  peak agent RSS ${fmt(afterAll.peakRssMb)} MB moving ${fmt(SIZE / 2 ** 30)} GiB to S3 and back: ${pass ? "under" : "OVER"} the ${RSS_LIMIT_MB} MB target`,
    );
  } finally {
    await s3.send(new DeleteObjectCommand({ Bucket: store.bucket, Key: baselineKey })).catch(() => undefined);
    s3.destroy();
    if (agent) await stopProcess(agent);
    await sys.stop();
    rmSync(scratch, { force: true });
    rmSync(shmScratch, { force: true });
    for (const f of readdirSync("/dev/shm"))
      if (f.startsWith(sys.ramPrefix)) rmSync(join("/dev/shm", f), { force: true });
    removeDataDir(sys.dataDir);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await objectTierBench();
