/**
 * GPU↔host copies of the GPU tier against the fake native API (`@pm/native/testing`, device memory
 * simulated on the host) and real region files in a temporary directory. Every device copy and
 * every pread/pwrite of a staged copy goes through a tracker that can delay or fail it and that
 * records which buffer it uses, so the tests see double buffering, buffer sharing and what is still
 * in flight when a copy fails.
 */
import { randomUUID } from "node:crypto";
import {
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PayloadId } from "@pm/domain";
import type { CudaApi, MapOptions, NativeApi, RegionMapping } from "@pm/native";
import { createFakeNativeApi } from "@pm/native/testing";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { AgentConfigSchema } from "../config.ts";
import { TierAgent } from "../tier-agent.ts";
import {
  type GpuCopyOptions,
  GpuTier,
  gpuCopier,
  gpuCopyOptionsFromEnv,
  gpuTiers,
  StagingPool,
} from "./gpu.ts";
import { ramTier } from "./ram.ts";
import { TierError } from "./tier-backend.ts";

// File handles opened by the code under test are wrapped so their reads and writes are tracked.
const fsHooks = vi.hoisted(() => ({ wrap: (fh: FileHandle): FileHandle => fh }));
vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const open = async (...args: Parameters<typeof real.open>) => fsHooks.wrap(await real.open(...args));
  return { ...real, default: { ...real, open }, open };
});

const CHUNK = 4096;
const WINDOW = 10_240; // 2.5 chunks: chunks straddle mapping windows
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pattern(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** Operations on buffers: delays, injected failures, and who used which buffer when. */
class Tracker {
  readonly inFlight = new Map<ArrayBufferLike, string>();
  readonly violations: string[] = [];
  active = 0;
  /** Times an operation started while another was in flight. */
  overlaps = 0;
  deviceCalls = 0;
  hostCalls = 0;
  deviceDelayMs = 0;
  hostDelayMs = 0;
  failDeviceCall: number | undefined;
  failHostCall: number | undefined;

  async run<T>(kind: "device" | "host", what: string, buf: Uint8Array, fn: () => Promise<T>): Promise<T> {
    const n = kind === "device" ? ++this.deviceCalls : ++this.hostCalls;
    const other = this.inFlight.get(buf.buffer);
    if (other) this.violations.push(`${what} started while ${other} used the same buffer`);
    this.inFlight.set(buf.buffer, what);
    if (this.active > 0) this.overlaps++;
    this.active++;
    try {
      const delay = kind === "device" ? this.deviceDelayMs : this.hostDelayMs;
      if (delay > 0) await sleep(delay);
      if (kind === "device" && n === this.failDeviceCall)
        throw Object.assign(new Error("injected device failure"), { code: "CUDA_ERROR_LAUNCH_FAILED" });
      if (kind === "host" && n === this.failHostCall)
        throw Object.assign(new Error("injected I/O failure"), { code: "EIO" });
      return await fn();
    } finally {
      if (this.inFlight.get(buf.buffer) === what) this.inFlight.delete(buf.buffer);
      this.active--;
    }
  }
}

interface Harness {
  readonly fake: NativeApi;
  readonly api: NativeApi;
  readonly tracker: Tracker;
  readonly gpu: GpuTier;
  readonly agent: TierAgent;
  readonly dir: string;
  liveMappings: number;
  openHandles: number;
  mapCalls: number;
  failMapCall: number | undefined;
  failAllocHost: ((nth: number) => boolean) | undefined;
  readonly registered: Set<Uint8Array>;
  pinnedLive(): number;
}

let h: Harness;
let dir: string;

/**
 * The fake native API with the CUDA copies tracked and a windowed file mapping (the fake maps
 * writable files whole only): a window is read from the file and written back on release.
 */
function harness(copy: Partial<GpuCopyOptions>): Harness {
  const fake = createFakeNativeApi({ cuda: { devices: 1, memoryBytes: 1 << 30 } });
  const tracker = new Tracker();
  const registered = new Set<Uint8Array>();
  let allocs = 0;
  const self: Harness = {
    fake,
    api: undefined as unknown as NativeApi,
    tracker,
    gpu: undefined as unknown as GpuTier,
    agent: undefined as unknown as TierAgent,
    dir,
    liveMappings: 0,
    openHandles: 0,
    mapCalls: 0,
    failMapCall: undefined,
    failAllocHost: undefined,
    registered,
    pinnedLive: () => fake.regionStats().byKind["cuda-host"]?.count ?? 0,
  };
  const cuda: CudaApi = {
    ...fake.cuda,
    copyHtoD: (device, dst, src, bytes) =>
      tracker.run("device", `HtoD#${tracker.deviceCalls + 1}`, src, () =>
        fake.cuda.copyHtoD(device, dst, src, bytes),
      ),
    copyDtoH: (device, dst, src, bytes) =>
      tracker.run("device", `DtoH#${tracker.deviceCalls + 1}`, dst, () =>
        fake.cuda.copyDtoH(device, dst, src, bytes),
      ),
    allocHost: (device, size) => {
      allocs++;
      if (self.failAllocHost?.(allocs))
        throw Object.assign(new Error("injected: pinned memory exhausted"), {
          code: "CUDA_ERROR_OUT_OF_MEMORY",
        });
      return fake.cuda.allocHost(device, size);
    },
    hostRegister: async (device, bytes, options) => {
      await fake.cuda.hostRegister(device, bytes, options);
      registered.add(bytes);
    },
    hostUnregister: async (device, bytes) => {
      await fake.cuda.hostUnregister(device, bytes);
      registered.delete(bytes);
    },
  };
  const mapFile = (path: string, o: MapOptions = {}): RegionMapping => {
    self.mapCalls++;
    if (self.mapCalls === self.failMapCall)
      throw Object.assign(new Error("injected: mmap failed"), { code: "ENOMEM" });
    const size = statSync(path).size;
    const offset = o.offset ?? 0;
    const length = o.length ?? size - offset;
    if (offset + length > size) throw Object.assign(new Error("window past the end"), { code: "EINVAL" });
    const fd = openSync(path, o.writable ? "r+" : "r");
    const bytes = Buffer.alloc(length);
    readSync(fd, bytes, 0, length, offset);
    self.liveMappings++;
    let released = false;
    return {
      get bytes() {
        return released ? Buffer.alloc(0) : bytes;
      },
      get released() {
        return released;
      },
      offset,
      length,
      writable: o.writable === true,
      release() {
        if (released) return;
        if (registered.has(bytes)) throw Object.assign(new Error("registered with CUDA"), { code: "EBUSY" });
        if (o.writable) writeSync(fd, bytes, 0, length, offset);
        closeSync(fd);
        released = true;
        self.liveMappings--;
      },
    };
  };
  const api: NativeApi = { ...fake, cuda, mapFile };
  fsHooks.wrap = (fh) => {
    self.openHandles++;
    return new Proxy(fh, {
      get(target, prop) {
        if (prop === "read")
          return (buf: Uint8Array, ...rest: unknown[]) =>
            tracker.run("host", `pread#${tracker.hostCalls + 1}`, buf, () =>
              (target.read as (...a: unknown[]) => Promise<unknown>)(buf, ...rest),
            );
        if (prop === "write")
          return (buf: Uint8Array, ...rest: unknown[]) =>
            tracker.run("host", `pwrite#${tracker.hostCalls + 1}`, buf, () =>
              (target.write as (...a: unknown[]) => Promise<unknown>)(buf, ...rest),
            );
        if (prop === "close")
          return async () => {
            await target.close();
            self.openHandles--;
          };
        const v = Reflect.get(target, prop, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
  };
  const gpu = new GpuTier(cuda, 0, 1 << 30, { chunkBytes: CHUNK, windowBytes: WINDOW, ...copy });
  const cfg = AgentConfigSchema.parse({ tiers: { ram: { dir: join(dir, "ram"), prefix: "pmgt-" } } });
  const agent = new TierAgent([ramTier(cfg.tiers.ram, undefined), gpu], [gpuCopier(api)]);
  Object.assign(self, { api, gpu, agent });
  return self;
}

const newId = () => randomUUID() as PayloadId;

/** A RAM region holding `bytes`. */
async function ramPayload(bytes: Buffer): Promise<PayloadId> {
  const id = newId();
  await h.agent.create(id, "RAM", bytes.length);
  writeFileSync(h.agent.backend("RAM").filePath(id)!, bytes);
  return id;
}

async function deviceBytes(id: PayloadId, size: number): Promise<Buffer> {
  const out = Buffer.alloc(size);
  await h.fake.cuda.copyDtoH(0, out, h.gpu.pointerOf(id), size);
  return out;
}

/** RAM → GPU → RAM, checking the bytes on the GPU and back in the file. */
async function roundTrip(size: number, seed: number): Promise<PayloadId> {
  const want = pattern(size, seed);
  const id = await ramPayload(want);
  await h.agent.copy(id, "RAM", "GPU", false);
  expect((await deviceBytes(id, size)).equals(want)).toBe(true);
  await h.agent.free(id, "RAM");
  await h.agent.copy(id, "GPU", "RAM", false);
  const back = readFileSync(h.agent.backend("RAM").filePath(id)!);
  expect(back.length).toBe(size);
  expect(back.equals(want)).toBe(true);
  return id;
}

/** Nothing held by a copy that is over: no operation in flight, no mapping, file or registration. */
function expectNothingHeld(): void {
  expect(h.tracker.active).toBe(0);
  expect(h.tracker.violations).toEqual([]);
  expect(h.liveMappings).toBe(0);
  expect(h.openHandles).toBe(0);
  expect(h.registered.size).toBe(0);
  expect(h.gpu.stagingPool().inUse()).toBe(0);
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "pm-gpu-copy-"));
});
afterEach(async () => {
  fsHooks.wrap = (fh) => fh;
  await h?.agent.close();
  rmSync(dir, { recursive: true, force: true });
});

const SIZES: Array<[string, number]> = [
  ["1 byte", 1],
  ["chunk - 1", CHUNK - 1],
  ["exactly one chunk", CHUNK],
  ["chunk + 1", CHUNK + 1],
  ["3.5 chunks", 3.5 * CHUNK],
  ["7 chunks + 3 (several mapping windows)", 7 * CHUNK + 3],
];

const MODES: Array<{
  name: string;
  copy: Partial<GpuCopyOptions>;
  /** Expected [host→GPU, GPU→host] choice. */
  ways: [{ mode: string; hostIo: string | undefined }, { mode: string; hostIo: string | undefined }];
}> = [
  {
    name: "register",
    copy: { mode: "register" },
    ways: [
      { mode: "register", hostIo: undefined },
      { mode: "register", hostIo: undefined },
    ],
  },
  {
    name: "staged, fd",
    copy: { mode: "staged", hostIo: "fd" },
    ways: [
      { mode: "staged", hostIo: "fd" },
      { mode: "staged", hostIo: "fd" },
    ],
  },
  {
    name: "staged, mmap",
    copy: { mode: "staged", hostIo: "mmap" },
    ways: [
      { mode: "staged", hostIo: "mmap" },
      { mode: "staged", hostIo: "mmap" },
    ],
  },
  // Measured on an H200: register wins host→GPU, staged/fd wins GPU→host.
  {
    name: "auto",
    copy: { mode: "auto" },
    ways: [
      { mode: "register", hostIo: undefined },
      { mode: "staged", hostIo: "fd" },
    ],
  },
];

describe.each(MODES)("GPU↔RAM copies, $name", ({ copy, ways }) => {
  it.each(SIZES)("round-trips %s", async (_, size) => {
    h = harness(copy);
    await roundTrip(size, size);
    const [up, down] = h.gpu.recentCopies();
    for (const [i, s] of [up!, down!].entries()) {
      const { mode, hostIo } = ways[i]!;
      expect(s).toMatchObject({ mode, hostIo, bytes: size, ok: true });
      expect(s.chunks).toBe(mode === "staged" ? Math.ceil(size / CHUNK) : 1);
      expect(s.totalMs).toBeGreaterThanOrEqual(s.transferMs);
    }
    expect(up!.direction).toBe("toGpu");
    expect(down!.direction).toBe("fromGpu");
    expectNothingHeld();
    // Staging buffers: at most two, allocated once and kept for the next copy; none for register.
    const staged = ways.some((w) => w.mode === "staged");
    expect(h.pinnedLive()).toBe(staged ? Math.min(2, Math.ceil(size / CHUNK)) : 0);
  });
});

describe("staged copies", () => {
  it("overlap the device copy of one chunk with the host side of another (both directions)", async () => {
    h = harness({ mode: "staged", hostIo: "fd" });
    h.tracker.deviceDelayMs = 3;
    h.tracker.hostDelayMs = 3;
    await roundTrip(6 * CHUNK, 1);
    expect(h.tracker.overlaps).toBeGreaterThanOrEqual(8);
    expectNothingHeld();
  });

  it("reuse the same two pinned buffers across copies and free them when the tier closes", async () => {
    h = harness({ mode: "staged" });
    for (let i = 0; i < 4; i++) await roundTrip(5 * CHUNK + i, i + 10);
    expect(h.pinnedLive()).toBe(2);
    expect(h.gpu.stagingBuffersAllocated()).toBe(2);
    await h.agent.close();
    expect(h.pinnedLive()).toBe(0);
  });

  it("allocate nothing pinned until the first staged copy", async () => {
    h = harness({ mode: "staged" });
    await h.agent.create(newId(), "GPU", 1 << 20);
    expect(h.pinnedLive()).toBe(0);
  });
});

describe("a failure in the middle of a copy", () => {
  const cases: Array<{
    name: string;
    copy: Partial<GpuCopyOptions>;
    direction: "up" | "down";
    inject: (x: Harness) => void;
  }> = [
    {
      name: "a device copy fails (GPU→RAM, staged, fd)",
      copy: { mode: "staged", hostIo: "fd" },
      direction: "down",
      inject: (x) => {
        x.tracker.failDeviceCall = 3;
      },
    },
    {
      name: "a pread fails (RAM→GPU, staged, fd)",
      copy: { mode: "staged", hostIo: "fd" },
      direction: "up",
      inject: (x) => {
        x.tracker.failHostCall = 2;
      },
    },
    {
      name: "a pwrite fails (GPU→RAM, staged, fd)",
      copy: { mode: "staged", hostIo: "fd" },
      direction: "down",
      inject: (x) => {
        x.tracker.failHostCall = 3;
      },
    },
    {
      name: "a device copy fails (RAM→GPU, staged, mmap)",
      copy: { mode: "staged", hostIo: "mmap" },
      direction: "up",
      inject: (x) => {
        x.tracker.failDeviceCall = 2;
      },
    },
    {
      name: "the second mapping window cannot be mapped (GPU→RAM, staged, mmap)",
      copy: { mode: "staged", hostIo: "mmap" },
      direction: "down",
      inject: (x) => {
        x.failMapCall = x.mapCalls + 2;
      },
    },
    {
      name: "the copy of a registered mapping fails (GPU→RAM, register)",
      copy: { mode: "register" },
      direction: "down",
      inject: (x) => {
        x.tracker.failDeviceCall = 1;
      },
    },
    {
      name: "the copy of a registered mapping fails (RAM→GPU, register)",
      copy: { mode: "register" },
      direction: "up",
      inject: (x) => {
        x.tracker.failDeviceCall = 1;
      },
    },
  ];

  it.each(cases)("$name: everything is released, nothing stays in flight, the next copy works", async (c) => {
    h = harness(c.copy);
    h.tracker.deviceDelayMs = 2;
    h.tracker.hostDelayMs = 1;
    const size = 5.5 * CHUNK;
    const want = pattern(size, 7);
    const id = await ramPayload(want);
    if (c.direction === "down") {
      await h.agent.copy(id, "RAM", "GPU", false);
      await h.agent.free(id, "RAM");
    }
    h.tracker.deviceCalls = 0;
    h.tracker.hostCalls = 0;
    c.inject(h);
    const [from, to] = c.direction === "up" ? (["RAM", "GPU"] as const) : (["GPU", "RAM"] as const);
    const err = await h.agent.copy(id, from, to, false).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TierError);
    expect((err as TierError).code).toBe("IO");
    expect((err as Error).message).toMatch(/injected/);
    // Checked right at the rejection: nothing may still be running on a staging buffer.
    expectNothingHeld();
    expect(await h.agent.backend(to).stat(id)).toBeUndefined(); // the failed target was freed
    const last = h.gpu.recentCopies().at(-1)!;
    expect(last.ok).toBe(false);
    expect(last.error).toMatch(/injected/);

    h.tracker.failDeviceCall = undefined;
    h.tracker.failHostCall = undefined;
    h.failMapCall = undefined;
    await h.agent.copy(id, from, to, false);
    const got =
      to === "GPU" ? await deviceBytes(id, size) : readFileSync(h.agent.backend("RAM").filePath(id)!);
    expect(got.equals(want)).toBe(true);
    expectNothingHeld();
    expect(h.pinnedLive()).toBeLessThanOrEqual(2);
  });

  it("pinned memory that cannot be allocated fails a staged copy and leaves the pool usable", async () => {
    h = harness({ mode: "staged" });
    h.failAllocHost = (nth) => nth === 2; // the second buffer of the first copy
    const id = await ramPayload(pattern(3 * CHUNK, 3));
    await expect(h.agent.copy(id, "RAM", "GPU", false)).rejects.toThrow(/pinned memory exhausted/);
    expect(h.pinnedLive()).toBe(1); // the first buffer waits in the pool for the next copy
    expectNothingHeld();
    h.failAllocHost = undefined;
    await h.agent.copy(id, "RAM", "GPU", false);
    expect(h.pinnedLive()).toBe(2);
  });

  it("auto falls back to registering the mapping when no pinned memory can be allocated", async () => {
    h = harness({ mode: "auto" });
    h.failAllocHost = () => true;
    await roundTrip(3 * CHUNK + 5, 4);
    expect(h.gpu.recentCopies().map((s) => s.mode)).toEqual(["register", "register"]);
    expect(h.pinnedLive()).toBe(0);
    expectNothingHeld();
  });
});

describe("concurrent copies", () => {
  it("never share a staging buffer: two copies take turns on a pool of two, both correct", async () => {
    h = harness({ mode: "staged", hostIo: "fd" });
    h.tracker.deviceDelayMs = 2;
    h.tracker.hostDelayMs = 2;
    const a = pattern(4.5 * CHUNK, 21);
    const b = pattern(3.5 * CHUNK, 22);
    const [ia, ib] = [await ramPayload(a), await ramPayload(b)];
    await Promise.all([h.agent.copy(ia, "RAM", "GPU", false), h.agent.copy(ib, "RAM", "GPU", false)]);
    expect((await deviceBytes(ia, a.length)).equals(a)).toBe(true);
    expect((await deviceBytes(ib, b.length)).equals(b)).toBe(true);
    await Promise.all([h.agent.free(ia, "RAM"), h.agent.free(ib, "RAM")]);
    await Promise.all([h.agent.copy(ia, "GPU", "RAM", false), h.agent.copy(ib, "GPU", "RAM", false)]);
    expect(readFileSync(h.agent.backend("RAM").filePath(ia)!).equals(a)).toBe(true);
    expect(readFileSync(h.agent.backend("RAM").filePath(ib)!).equals(b)).toBe(true);
    expect(h.tracker.violations).toEqual([]);
    expect(h.pinnedLive()).toBe(2);
    expectNothingHeld();
  });

  it("run side by side on a pool of four, still on separate buffers", async () => {
    h = harness({ mode: "staged", hostIo: "fd", stagingBuffers: 4 });
    h.tracker.deviceDelayMs = 2;
    h.tracker.hostDelayMs = 2;
    const payloads = [pattern(4 * CHUNK, 31), pattern(4 * CHUNK + 9, 32)];
    const ids = [];
    for (const p of payloads) ids.push(await ramPayload(p));
    await Promise.all(ids.map((id) => h.agent.copy(id, "RAM", "GPU", false)));
    for (const [i, id] of ids.entries())
      expect((await deviceBytes(id, payloads[i]!.length)).equals(payloads[i]!)).toBe(true);
    expect(h.pinnedLive()).toBe(4);
    expectNothingHeld();
  });

  it("closing the tier waits for a copy in flight, then frees its buffers", async () => {
    h = harness({ mode: "staged", hostIo: "fd" });
    h.tracker.deviceDelayMs = 5;
    const want = pattern(4 * CHUNK, 41);
    const id = await ramPayload(want);
    const copying = h.agent.copy(id, "RAM", "GPU", false);
    await sleep(1);
    const closing = h.gpu.close();
    await copying;
    await closing;
    expect(h.pinnedLive()).toBe(0);
    expect(h.tracker.active).toBe(0);
    await expect(h.agent.copy(newId(), "RAM", "GPU", false)).rejects.toBeInstanceOf(TierError);
  });
});

describe("StagingPool", () => {
  it("hands out buffers first come, first served, a multi-buffer request atomically", async () => {
    const fake = createFakeNativeApi({ cuda: {} });
    const pool = new StagingPool(fake.cuda, 0, CHUNK, 2);
    const order: string[] = [];
    const a = await pool.acquire(2);
    const b = pool.acquire(2).then((x) => {
      order.push("b");
      return x;
    });
    const c = pool.acquire(1).then((x) => {
      order.push("c");
      return x;
    });
    await sleep(1);
    expect(order).toEqual([]);
    pool.release(a);
    const bb = await b;
    await sleep(1);
    expect(order).toEqual(["b"]); // c waits behind b although one buffer would have been enough
    pool.release(bb);
    pool.release(await c);
    expect(new Set([...a, ...bb].map((x) => x.bytes.buffer)).size).toBe(2);
    expect(pool.allocatedBuffers()).toBe(2);
    await pool.close();
    expect(fake.regionStats().byKind["cuda-host"]?.count ?? 0).toBe(0);
  });

  it("close rejects waiting copies, waits for holders, and refuses new ones", async () => {
    const fake = createFakeNativeApi({ cuda: {} });
    const pool = new StagingPool(fake.cuda, 0, CHUNK, 1);
    const held = await pool.acquire(1);
    const waiting = pool.acquire(1);
    let closed = false;
    const closing = pool.close().then(() => {
      closed = true;
    });
    await expect(waiting).rejects.toThrow(/closed/);
    await sleep(1);
    expect(closed).toBe(false);
    pool.release(held);
    await closing;
    expect(fake.regionStats().byKind["cuda-host"]?.count ?? 0).toBe(0);
    await expect(pool.acquire(1)).rejects.toThrow(/closing/);
  });
});

describe("copy settings", () => {
  it("come from PM_GPU_COPY_* and are validated", () => {
    expect(gpuCopyOptionsFromEnv({})).toEqual({});
    expect(
      gpuCopyOptionsFromEnv({
        PM_GPU_COPY_MODE: "staged",
        PM_GPU_COPY_HOST_IO: "mmap",
        PM_GPU_COPY_CHUNK_BYTES: "8388608",
      }),
    ).toEqual({ mode: "staged", hostIo: "mmap", chunkBytes: 8 << 20 });
    expect(() => gpuCopyOptionsFromEnv({ PM_GPU_COPY_MODE: "fast" })).toThrow(/mode must be one of/);
    expect(() => gpuCopyOptionsFromEnv({ PM_GPU_COPY_CHUNK_BYTES: "12" })).toThrow(/chunkBytes/);
    const fake = createFakeNativeApi({ cuda: {} });
    const { tiers } = gpuTiers(fake, { enabled: true, devices: [0] }, { PM_GPU_COPY_MODE: "register" });
    expect(tiers[0]!.copyOptions.mode).toBe("register");
    expect(gpuTiers(fake, { enabled: true, devices: [0] }, {}).tiers[0]!.copyOptions.mode).toBe("auto");
  });

  it("can change between copies; a new staging size frees the old buffers", async () => {
    h = harness({ mode: "staged" });
    await roundTrip(3 * CHUNK, 51);
    expect(h.pinnedLive()).toBe(2);
    h.gpu.configureCopies({ chunkBytes: 2 * CHUNK });
    await sleep(1);
    expect(h.pinnedLive()).toBe(0);
    await roundTrip(3 * CHUNK, 52);
    expect(h.gpu.recentCopies().at(-1)!.chunks).toBe(2);
    h.gpu.configureCopies({ mode: "register" });
    await roundTrip(3 * CHUNK, 53);
    expect(() => h.gpu.configureCopies({ stagingBuffers: 0 })).toThrow(/stagingBuffers/);
  });

  it("a new staging size lets copies in flight and in line finish on the old buffers", async () => {
    h = harness({ mode: "staged", hostIo: "fd" });
    h.tracker.deviceDelayMs = 3;
    const a = pattern(3 * CHUNK, 61);
    const b = pattern(2 * CHUNK + 1, 62);
    const [ia, ib] = [await ramPayload(a), await ramPayload(b)];
    const first = h.agent.copy(ia, "RAM", "GPU", false);
    const second = h.agent.copy(ib, "RAM", "GPU", false);
    while (h.gpu.stagingPool().waiting() === 0) await sleep(1); // second waits for the two buffers
    h.gpu.configureCopies({ chunkBytes: 2 * CHUNK });
    await Promise.all([first, second]);
    expect((await deviceBytes(ia, a.length)).equals(a)).toBe(true);
    expect((await deviceBytes(ib, b.length)).equals(b)).toBe(true);
    expect(h.gpu.recentCopies().map((s) => s.chunks)).toEqual([3, 3]);
    await sleep(1);
    expect(h.pinnedLive()).toBe(0); // the old pool is gone; the new one allocates on first use
    await roundTrip(3 * CHUNK, 63);
    expect(h.gpu.recentCopies().at(-1)!.chunks).toBe(2);
  });
});
