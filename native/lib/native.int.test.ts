/**
 * The addon against the real kernel: /dev/shm segments, files, checksums, and
 * CUDA (on a GPU host; elsewhere against test/fake-libcuda.c).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { randomFillSync } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, describe, expect, it } from "vitest";
import { cuda, nativeApi, tryLoadNative } from "./index.ts";
import { nativeApiContract, thrownCode } from "./native-api.contract.ts";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "..", "..");
const loaded = tryLoadNative();
if (!loaded.ok) throw loaded.error; // the integration suite needs the built addon
const api = nativeApi();
const dir = mkdtempSync(join(tmpdir(), "pm-native-int-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let counter = 0;
const uniqueName = (tag: string) => `/pm-int-${tag}-${process.pid}-${counter++}`;

function runTs(script: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
  return spawnSync(process.execPath, ["--import", "tsx", join(here, "test-fixtures", script), ...args], {
    cwd: repoRoot,
    encoding: "utf8",
    env,
    timeout: 50_000,
  });
}

function lastJson(stdout: string): Record<string, unknown> {
  return JSON.parse(stdout.trim().split("\n").pop() ?? "{}");
}

function mapsLinesFor(name: string): number {
  return readFileSync("/proc/self/maps", "utf8")
    .split("\n")
    .filter((line) => line.includes(`/dev/shm${name}`)).length;
}

nativeApiContract("addon", () => api);

describe("shared memory in /dev/shm", () => {
  it("creates the segment file with mode 0600 and removes it on unlink", async () => {
    const name = uniqueName("mode");
    await api.createShm(name, 1 << 20);
    const st = statSync(`/dev/shm${name}`);
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.size).toBe(1 << 20);
    api.unlinkShm(name);
    expect(existsSync(`/dev/shm${name}`)).toBe(false);
  });

  it("shows a child process the bytes written here, through its own read-only mapping", async () => {
    const name = uniqueName("child");
    await api.createShm(name, 3 << 20);
    try {
      const region = api.mapShm(name, { writable: true });
      randomFillSync(region.bytes);
      const run = runTs("map-reader.ts", [name, "read"]);
      expect(run.status, run.stderr).toBe(0);
      expect(lastJson(run.stdout)).toEqual({ length: 3 << 20, checksum: api.checksumSync(region.bytes) });
      region.release();
    } finally {
      api.unlinkShm(name);
    }
  });

  it("keeps a reader's copy-on-write scribbles out of the segment", async () => {
    const name = uniqueName("cow");
    await api.createShm(name, 1 << 20);
    try {
      const run = runTs("map-reader.ts", [name, "write-private"]);
      expect(run.status, run.stderr).toBe(0);
      expect(api.mapShm(name).bytes.every((b) => b === 0)).toBe(true);
    } finally {
      api.unlinkShm(name);
    }
  });

  it("makes read-only mappings really read-only: a write ends that process with SIGSEGV", async () => {
    const name = uniqueName("ro");
    await api.createShm(name, 4096);
    try {
      const run = runTs("map-reader.ts", [name, "write-readonly"]);
      expect(run.signal).toBe("SIGSEGV");
      expect(run.stdout).not.toContain("survived");
    } finally {
      api.unlinkShm(name);
    }
  });

  it("fails with ENOSPC up front when /dev/shm cannot hold the reservation, leaving no segment", async () => {
    const name = uniqueName("nospace");
    // More than the mount can ever hold, whatever other processes free meanwhile.
    const tooBig = api.statFs("/dev/shm").totalBytes + 2 ** 30;
    await expect(api.createShm(name, tooBig)).rejects.toMatchObject({ code: "ENOSPC" });
    expect(existsSync(`/dev/shm${name}`)).toBe(false);
  });

  it.skipIf(process.getuid?.() === 0)(
    "refuses a writable mapping of a read-only segment with EACCES (skipped as root: root bypasses modes)",
    async () => {
      const name = uniqueName("acl");
      await api.createShm(name, 4096, { mode: 0o400 });
      try {
        expect(thrownCode(() => api.mapShm(name, { writable: true }))).toBe("EACCES");
      } finally {
        api.unlinkShm(name);
      }
    },
  );

  it("munmaps released mappings at once", async () => {
    const name = uniqueName("release");
    await api.createShm(name, 1 << 20);
    const region = api.mapShm(name, { writable: true });
    expect(mapsLinesFor(name)).toBe(1);
    region.release();
    expect(mapsLinesFor(name)).toBe(0);
    expect(region.bytes.length).toBe(0);
    api.unlinkShm(name);
  });

  it("unmaps dropped mappings in the finalizer: 200 x 64 MiB written segments without running out of memory", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const size = 64 << 20;
    const prefix = `/pm-int-gc-${process.pid}-`;
    let peak = 0;
    for (let i = 0; i < 200; i++) {
      const name = `${prefix}${i}`;
      await api.createShm(name, size, { reserve: false });
      const region = api.mapShm(name, { writable: true });
      for (let at = 0; at < size; at += 4096) region.bytes[at] = 1; // commit every page
      api.unlinkShm(name);
      peak = Math.max(peak, api.regionStats().byKind.shm?.count ?? 0);
      await new Promise((r) => setImmediate(r));
    }
    // Optimized code can hold the last few Buffers a little longer: poll with a deadline.
    const deadline = Date.now() + 10_000;
    let leftover: string[] = [];
    do {
      gc();
      for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
      leftover = readFileSync("/proc/self/maps", "utf8")
        .split("\n")
        .filter((l) => l.includes(prefix));
    } while (leftover.length > 0 && Date.now() < deadline);
    expect(leftover).toEqual([]);
    expect(api.regionStats().byKind.shm?.count ?? 0).toBe(0);
    // Finalizers ran during the loop, not only at the end (external memory pressure drives GC).
    expect(peak).toBeLessThan(100);
  }, 120_000);
});

describe("file regions", () => {
  it("preallocates on tmpfs and ext4-like filesystems and copies across filesystems", async () => {
    const ram = mkdtempSync("/dev/shm/pm-int-files-");
    try {
      const path = join(ram, "region");
      await expect(api.createFile(path, 5 << 20)).resolves.toMatchObject({
        size: 5 << 20,
        preallocated: true,
      });
      const region = api.mapFile(path, { writable: true, prefault: true, hugePages: true });
      randomFillSync(region.bytes);
      await api.fsync(path);
      const expected = api.checksumSync(region.bytes);
      region.release();
      const onDisk = join(dir, `copied-${counter++}`);
      await expect(api.copyFile(path, onDisk, { fsync: true })).resolves.toBe(5 << 20);
      await expect(api.checksum(onDisk)).resolves.toBe(expected);
      const back = join(ram, "back");
      await expect(api.copyFile(onDisk, back)).resolves.toBe(5 << 20);
      await expect(api.checksum(back, "crc32c")).resolves.toBe(
        api.checksumSync(readFileSync(onDisk), "crc32c"),
      );
      expect(api.statFs(ram).type).toBe("tmpfs");
    } finally {
      rmSync(ram, { recursive: true, force: true });
    }
  });

  const hugeDir = process.env.PM_TEST_HUGE_DIR;
  it.skipIf(!hugeDir)(
    "makes RAM regions on a huge-page mount (skipped unless PM_TEST_HUGE_DIR names a tmpfs huge=always or hugetlbfs mount)",
    async () => {
      const fs = api.statFs(hugeDir!);
      expect(["tmpfs", "hugetlbfs"]).toContain(fs.type);
      const path = join(hugeDir!, `pm-int-huge-${process.pid}-${counter++}`);
      try {
        const created = await api.createFile(path, 3 << 20);
        // hugetlbfs regions are whole huge pages.
        expect(created.size).toBe(Math.ceil((3 << 20) / fs.pageSize) * fs.pageSize);
        const region = api.mapFile(path, { writable: true, hugePages: true });
        randomFillSync(region.bytes);
        const window = api.mapFile(path, { offset: (2 << 20) + 5, length: 100 });
        expect(window.bytes.equals(region.bytes.subarray((2 << 20) + 5, (2 << 20) + 105))).toBe(true);
        await expect(api.checksum(path)).resolves.toBe(api.checksumSync(region.bytes));
        window.release();
        region.release();
      } finally {
        rmSync(path, { force: true });
      }
    },
  );

  it("resizes an existing file when not exclusive", async () => {
    const path = join(dir, `grow-${counter++}`);
    writeFileSync(path, "abc");
    await expect(api.createFile(path, 8192, { exclusive: false })).resolves.toMatchObject({ size: 8192 });
    expect(statSync(path).size).toBe(8192);
    expect(readFileSync(path).toString("latin1", 0, 3)).toBe("abc");
  });

  it("creates many files preallocated in one call, and refuses malformed lists before touching any", async () => {
    const ram = mkdtempSync("/dev/shm/pm-int-many-");
    try {
      const paths = Array.from({ length: 20 }, (_, i) => join(ram, `r${i}`));
      const made = await api.createFiles(paths.map((path, i) => ({ path, size: 4096 * (i + 1) })));
      expect(made).toEqual(paths.map((path, i) => ({ path, size: 4096 * (i + 1), preallocated: true })));
      for (const bad of [
        "not a list",
        [{ path: join(ram, "zero"), size: 0 }],
        [{ path: join(ram, "nosize") }],
        [{ path: join(ram, "ok"), size: 1 }, 7],
      ]) {
        await expect(api.createFiles(bad as never)).rejects.toMatchObject({ code: "EINVAL" });
      }
      expect(readdirSync(ram).sort()).toEqual(paths.map((p) => p.slice(ram.length + 1)).sort());
    } finally {
      rmSync(ram, { recursive: true, force: true });
    }
  });

  it("refuses directories where a regular file is needed, and fsyncs directories", async () => {
    expect(thrownCode(() => api.mapFile(dir))).toBe("EINVAL");
    await expect(api.copyFile(dir, join(dir, "x"))).rejects.toMatchObject({ code: "EINVAL" });
    await expect(api.fsync(dir)).resolves.toBeUndefined();
  });

  it("checksums a large buffer off the JS thread: the promise is still pending when the call returns", async () => {
    const staging = api.allocAligned(256 << 20);
    randomFillSync(staging.bytes, 0, 1 << 20);
    const pending = api.checksum(staging.bytes);
    // An already-settled promise would win the race; work queued to the thread pool cannot.
    await expect(Promise.race([pending, Promise.resolve("pending")])).resolves.toBe("pending");
    await expect(pending).resolves.toBe(api.checksumSync(staging.bytes));
    staging.release();
  });

  it("refuses to release memory an async operation still uses", async () => {
    const staging = api.allocAligned(64 << 20);
    const pending = api.checksum(staging.bytes);
    expect(thrownCode(() => staging.release())).toBe("EBUSY");
    await pending;
    staging.release();
    expect(staging.released).toBe(true);
  });
});

describe("CUDA", () => {
  const availability = cuda.availability();

  it("reports unavailability as data with a reason naming libcuda", () => {
    if (availability.available) {
      expect(availability.deviceCount).toBeGreaterThan(0);
    } else {
      expect(availability.reason).toMatch(/libcuda/);
      expect(thrownCode(() => api.cuda.alloc(0, 1 << 20))).toBe("CUDA_UNAVAILABLE");
    }
  });

  const fakeDriverDir = mkdtempSync(join(tmpdir(), "pm-fake-libcuda-"));
  const compiler = spawnSync("cc", ["--version"]).status === 0;
  it.skipIf(!compiler)(
    "drives the driver API across two processes (fake libcuda.so.1: no GPU here; skipped when no C compiler)",
    () => {
      execFileSync("cc", [
        "-shared",
        "-fPIC",
        "-O2",
        "-o",
        join(fakeDriverDir, "libcuda.so.1"),
        join(here, "..", "test", "fake-libcuda.c"),
        "-lpthread",
      ]);
      const run = runTs("cuda-roundtrip.ts", [], { ...process.env, LD_LIBRARY_PATH: fakeDriverDir });
      expect(run.status, run.stderr).toBe(0);
      const result = lastJson(run.stdout);
      expect(result).toMatchObject({
        available: true,
        uploadBytes: 4 << 20,
        handleLength: 64,
        releaseWhileRegistered: "EBUSY",
        openInAllocatingProcess: "CUDA_ERROR_INVALID_CONTEXT",
        freeBogusPointer: "CUDA_ERROR_INVALID_VALUE",
        badDevice: "CUDA_ERROR_INVALID_DEVICE",
        shortHandle: "EINVAL",
      });
      expect(result.child).toEqual({ viaIpc: result.expected, viaDeviceCopy: result.expected });
    },
  );

  it.skipIf(!availability.available)(
    `round-trips bytes through a real GPU and an IPC handle (skipped: ${availability.reason})`,
    () => {
      const run = runTs("cuda-roundtrip.ts", []);
      expect(run.status, run.stderr).toBe(0);
      const result = lastJson(run.stdout);
      expect(result.available).toBe(true);
      expect(result.child).toEqual({ viaIpc: result.expected, viaDeviceCopy: result.expected });
      expect(result.releaseWhileRegistered).toBe("EBUSY");
    },
  );
  afterAll(() => rmSync(fakeDriverDir, { recursive: true, force: true }));
});
