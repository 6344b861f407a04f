/**
 * GPU↔RAM copies through the real addon: real cuMemAllocHost/cuMemHostRegister/async-copy code
 * paths against the stand-in driver (native/test/fake-libcuda.c, "device memory" in shm), real
 * fallocated region files in /dev/shm and real mmap windows. The driver is chosen when the addon
 * loads libcuda.so.1, so the copies run in a child process started with LD_LIBRARY_PATH.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { tryLoadNative } from "@pm/native";
import { afterAll, describe, expect, it } from "vitest";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "..", "..", "..", "..");
const src = (p: string) => JSON.stringify(pathToFileURL(join(here, p)).href);
const loaded = tryLoadNative();
const compiler = spawnSync("cc", ["--version"]).status === 0;
const skip = !loaded.ok
  ? `the addon is not built (${loaded.error.message})`
  : !compiler
    ? "no C compiler for the stand-in libcuda.so.1"
    : "";

const work = mkdtempSync(join(tmpdir(), "pm-gpu-int-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

// The child: every mode × sizes that are not multiples of the chunk, bytes compared on the
// "device" and back in the file, then what the addon still holds once the agent closed.
const child = `
import { createHash, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statfsSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nativeApi } from ${JSON.stringify(pathToFileURL(join(repoRoot, "native/lib/index.ts")).href)};
import { AgentConfigSchema } from ${src("../config.ts")};
import { TierAgent } from ${src("../tier-agent.ts")};
import { GpuTier, gpuCopier } from ${src("./gpu.ts")};
import { ramTier } from ${src("./ram.ts")};

const api = nativeApi();
const avail = api.cuda.availability();
if (!avail.available) { console.log(JSON.stringify({ available: false, reason: avail.reason })); process.exit(0); }
const CHUNK = 1 << 20;
const shmFree = statfsSync("/dev/shm").bavail * statfsSync("/dev/shm").bsize;
const dir = mkdtempSync(join(shmFree > 256 << 20 ? "/dev/shm" : tmpdir(), "pm-gpu-int-"));
const create = async (path, size, mode) => { await api.createFile(path, size, { mode, exclusive: true }); };
const pattern = (size, seed) => { const b = Buffer.alloc(size); let x = seed || 1;
  for (let i = 0; i < size; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; b[i] = x & 0xff; } return b; };
const sha = (b) => createHash("sha256").update(b).digest("hex");
const baseline = api.regionStats().count;
const modes = [
  { mode: "register" }, { mode: "staged", hostIo: "fd" }, { mode: "staged", hostIo: "mmap" }, { mode: "auto" },
];
const sizes = [1, CHUNK - 1, CHUNK + 1, 3.5 * CHUNK, 9 * CHUNK + 3];
const results = [];
try {
  for (const m of modes) {
    const gpu = new GpuTier(api.cuda, 0, 1 << 30, { ...m, chunkBytes: CHUNK, windowBytes: 2.5 * CHUNK });
    const cfg = AgentConfigSchema.parse({ tiers: { ram: { dir, prefix: "pmgi-" } } });
    const agent = new TierAgent([ramTier(cfg.tiers.ram, create), gpu], [gpuCopier(api)]);
    const ram = agent.backend("RAM");
    try {
      for (const size of sizes) {
        const id = randomUUID();
        const want = pattern(size, size);
        await agent.create(id, "RAM", size);
        writeFileSync(ram.filePath(id), want);
        await agent.copy(id, "RAM", "GPU", false);
        const dev = Buffer.alloc(size);
        await api.cuda.copyDtoH(0, dev, gpu.pointerOf(id), size);
        await agent.free(id, "RAM");
        await agent.copy(id, "GPU", "RAM", false);
        const back = readFileSync(ram.filePath(id));
        const stats = gpu.recentCopies().slice(-2);
        results.push({ ...m, size, device: sha(dev) === sha(want), back: back.length === size && sha(back) === sha(want),
          modes: stats.map((s) => s.mode + (s.hostIo ? "/" + s.hostIo : "")), chunks: stats.map((s) => s.chunks) });
        await agent.free(id, "RAM");
        await agent.free(id, "GPU");
      }
      // A region file cut short behind the tier's back: the copy fails and leaves nothing mapped or open.
      const id = randomUUID();
      await agent.create(id, "RAM", 3 * CHUNK + 5);
      truncateSync(ram.filePath(id), CHUNK);
      const err = await agent.copy(id, "RAM", "GPU", false).then(() => "no error", (e) => e.code + ": " + e.message);
      await agent.free(id, "RAM");
      results.push({ ...m, shortSource: err, held: api.regionStats().count - baseline - gpu.stagingBuffersAllocated() });
    } finally {
      await agent.close();
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(JSON.stringify({ available: true, results, leftover: api.regionStats().count - baseline }));
`;

describe.skipIf(skip !== "")(
  `GPU tier copies through the addon and the stand-in libcuda.so.1${skip ? ` (skipped: ${skip})` : ""}`,
  () => {
    it("round-trips every size in every mode, fails cleanly on a short source, and leaves nothing behind", () => {
      const driverDir = join(work, "driver");
      execFileSync("mkdir", ["-p", driverDir]);
      execFileSync("cc", [
        "-shared",
        "-fPIC",
        "-O2",
        "-o",
        join(driverDir, "libcuda.so.1"),
        join(repoRoot, "native", "test", "fake-libcuda.c"),
        "-lpthread",
      ]);
      const script = join(work, "gpu-copies.mts");
      writeFileSync(script, child);
      const run = spawnSync(process.execPath, ["--import", "tsx", script], {
        cwd: repoRoot,
        encoding: "utf8",
        env: { ...process.env, LD_LIBRARY_PATH: driverDir },
        timeout: 50_000,
      });
      expect(run.status, run.stderr).toBe(0);
      const out = JSON.parse(run.stdout.trim().split("\n").pop()!);
      expect(out.available, JSON.stringify(out)).toBe(true);
      const rows = out.results as Array<Record<string, unknown>>;
      const copies = rows.filter((r) => "size" in r);
      expect(copies).toHaveLength(4 * 5);
      for (const r of copies) {
        expect(r, JSON.stringify(r)).toMatchObject({ device: true, back: true });
        // [host→GPU, GPU→host]; auto picks register up and staged/fd down (H200 measurements).
        const ways: [string, string] =
          r.mode === "register"
            ? ["register", "register"]
            : r.mode === "auto"
              ? ["register", "staged/fd"]
              : [`staged/${r.hostIo}`, `staged/${r.hostIo}`];
        expect(r.modes).toEqual(ways);
        const chunks = Math.ceil((r.size as number) / (1 << 20));
        expect(r.chunks).toEqual(ways.map((w) => (w === "register" ? 1 : chunks)));
      }
      const failures = rows.filter((r) => "shortSource" in r);
      expect(failures).toHaveLength(4);
      for (const f of failures) {
        // fd: the file ends early; mmap/register: the mapping would lie past the end.
        expect(f.shortSource).toMatch(/^IO: copy of .* RAM → GPU failed: .*(is beyond the end|ends at byte)/);
        expect(f.held, JSON.stringify(f)).toBe(0);
      }
      expect(out.leftover).toBe(0);
    });
  },
);
