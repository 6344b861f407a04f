import { type FileHandle, open } from "node:fs/promises";
import { isUuidText, type PayloadId, type StorageTier } from "@pm/domain";
import type { CudaApi, DevicePointer, NativeApi, OwnedBuffer, RegionMapping } from "@pm/native";
import type { RegionCopier } from "../tier-agent.ts";
import { type RegionInfo, type TierBackend, TierError } from "./tier-backend.ts";

/*
 * How bytes move between a GPU region and a file-backed region (RAM on tmpfs, DISK) of this host.
 *
 * "register": map the whole region file (MAP_POPULATE), cuMemHostRegister the mapping, one async copy,
 *   unregister, unmap. The copy itself runs at the pinned rate, but every copy pays page by page: 1 GiB
 *   of 4 KiB tmpfs pages is 262,144 pages populated (written ones faulted in for write), pinned and
 *   mapped for DMA, then unpinned. Measured on an H200 (one run): pinned H2D/D2H 55 GB/s, pageable
 *   7.6/12.6 GB/s, yet a 1 GiB spill GPU→RAM through the agent took 700 ms (1.5 GB/s) and the promote
 *   RAM→GPU 215 ms (5.0 GB/s) end to end.
 *
 * "staged": a pool of reusable pinned buffers (cuMemAllocHost, 2 × 64 MiB by default, allocated on
 *   first use and kept by the GPU tier until it closes), and the payload copied in chunks with double
 *   buffering: the device copy of one chunk runs while the host side of the previous (GPU→host) or next
 *   (host→GPU) chunk runs on the other buffer. Nothing is pinned or populated per copy. The host side:
 *   - "fd": pwrite/pread on the region file, on the libuv pool (off the JS thread; the kernel copies
 *     into the page cache the tier reserved with fallocate, no page-table work), or
 *   - "mmap": memcpy (Buffer.copy, on the JS thread) through mapping windows of 256 MiB, writable
 *     windows without MAP_POPULATE. hugetlbfs has no write(2), so writes there always use this.
 *
 * Host-side figures from the build machine (2-core VM, 1 GiB in /dev/shm, the addon's real files and
 * mappings, the device simulated as 55 GB/s DMA that costs no CPU and no pinning; median of 5, ms):
 *
 *                     spill copier   promote copier
 *     register             863            240        (+ the real cuMemHostRegister/Unregister cost)
 *     staged, fd           311            397
 *     staged, mmap         991            567
 *
 *   Writing a fresh tmpfs mapping (populated or faulted) is the dominant host cost of a spill; pwrite
 *   avoids it. A promote reads pages that are already there, so register spends its time pinning, and
 *   staged/fd spends it in pread (about memcpy speed). A 64 MiB device copy at 55 GB/s takes 1.2 ms,
 *   so a staged copy runs at the host side's speed; creating the RAM region (fallocate, 350-500 ms
 *   for 1 GiB here) is part of every spill whatever the mode.
 *
 * Measured on an H200 (1 GiB, /dev/shm, median of 3, tests/gpu/agent-gpu-check.ts, agent-side copy):
 *
 *                     spill (GPU→RAM)         promote (RAM→GPU)
 *     register        562 ms  (1.9 GB/s)      125 ms  (8.6 GB/s)   pin+unpin 58 / 46 ms
 *     staged, fd      306 ms  (3.5 GB/s)      327 ms  (3.3 GB/s)
 *     staged, mmap    719 ms  (1.5 GB/s)      294 ms  (3.7 GB/s)
 *
 * "auto" (the default) therefore chooses per direction: staged with fd I/O for GPU→host (writing a
 *   fresh mapping is what register pays for), register for host→GPU (the pages already exist; pinning
 *   them is cheaper than copying through staging). On hugetlbfs, register both ways: a GiB is 512
 *   pages to populate and pin there. If the staging buffers cannot be allocated (pinned-memory
 *   limits), auto falls back to register, and register falls back to a pageable copy when
 *   registration fails. PM_GPU_COPY_MODE / PM_GPU_COPY_HOST_IO override the choice.
 */

/** How GPU↔host copies are made (see the comment above). */
export type GpuCopyMode = "auto" | "register" | "staged";
/** How a staged copy reads or writes the region file. */
export type GpuHostIo = "auto" | "fd" | "mmap";

export interface GpuCopyOptions {
  readonly mode: GpuCopyMode;
  readonly hostIo: GpuHostIo;
  /** Size of one pinned staging buffer, and so of one chunk. */
  readonly chunkBytes: number;
  /** Pinned staging buffers per GPU tier; a copy uses two (one when it fits in a single chunk). */
  readonly stagingBuffers: number;
  /** Mapping window for "mmap" host I/O. */
  readonly windowBytes: number;
}

export const DEFAULT_GPU_COPY_OPTIONS: GpuCopyOptions = {
  mode: "auto",
  hostIo: "auto",
  chunkBytes: 64 << 20,
  stagingBuffers: 2,
  windowBytes: 256 << 20,
};

const MODES: readonly GpuCopyMode[] = ["auto", "register", "staged"];
const HOST_IOS: readonly GpuHostIo[] = ["auto", "fd", "mmap"];

function checkCopyOptions(o: GpuCopyOptions): GpuCopyOptions {
  const problems: string[] = [];
  if (!MODES.includes(o.mode)) problems.push(`mode must be one of ${MODES.join(", ")} (got ${o.mode})`);
  if (!HOST_IOS.includes(o.hostIo))
    problems.push(`hostIo must be one of ${HOST_IOS.join(", ")} (got ${o.hostIo})`);
  if (!Number.isSafeInteger(o.chunkBytes) || o.chunkBytes < 4096 || o.chunkBytes > 2 ** 30)
    problems.push(`chunkBytes must be an integer from 4096 to 2^30 (got ${o.chunkBytes})`);
  if (!Number.isSafeInteger(o.stagingBuffers) || o.stagingBuffers < 1 || o.stagingBuffers > 16)
    problems.push(`stagingBuffers must be an integer from 1 to 16 (got ${o.stagingBuffers})`);
  if (!Number.isSafeInteger(o.windowBytes) || o.windowBytes < 4096)
    problems.push(`windowBytes must be an integer of at least 4096 (got ${o.windowBytes})`);
  if (problems.length > 0) throw new Error(`invalid GPU copy options: ${problems.join("; ")}`);
  return o;
}

/**
 * GPU copy settings from the environment (until the agent config has a field for them):
 * PM_GPU_COPY_MODE=auto|register|staged, PM_GPU_COPY_HOST_IO=auto|fd|mmap,
 * PM_GPU_COPY_CHUNK_BYTES=<bytes per pinned staging buffer>.
 */
export function gpuCopyOptionsFromEnv(
  env: Readonly<Record<string, string | undefined>>,
): Partial<GpuCopyOptions> {
  const out: { -readonly [K in keyof GpuCopyOptions]?: GpuCopyOptions[K] } = {};
  if (env.PM_GPU_COPY_MODE) out.mode = env.PM_GPU_COPY_MODE as GpuCopyMode;
  if (env.PM_GPU_COPY_HOST_IO) out.hostIo = env.PM_GPU_COPY_HOST_IO as GpuHostIo;
  if (env.PM_GPU_COPY_CHUNK_BYTES) out.chunkBytes = Number(env.PM_GPU_COPY_CHUNK_BYTES);
  checkCopyOptions({ ...DEFAULT_GPU_COPY_OPTIONS, ...out });
  return out;
}

/** One GPU↔host copy as the GPU tier saw it (agent side, without the RPC and region creation). */
export interface GpuCopyStats {
  readonly direction: "toGpu" | "fromGpu";
  /** "pageable": register was chosen but cuMemHostRegister failed. */
  readonly mode: "register" | "staged" | "pageable";
  readonly hostIo: "fd" | "mmap" | undefined;
  readonly bytes: number;
  readonly ok: boolean;
  readonly error: string | undefined;
  /** From the copier's start to its end. */
  readonly totalMs: number;
  /** register: map + cuMemHostRegister; staged: waiting for (and first allocating) staging + open. */
  readonly setupMs: number;
  /** The copy: one async copy (register), or the chunk pipeline (staged). */
  readonly transferMs: number;
  /** register: cuMemHostUnregister + unmap; staged: close. */
  readonly teardownMs: number;
  /** register: cuMemHostRegister + cuMemHostUnregister alone (the per-page pinning cost). */
  readonly pinMs: number;
  /** CUDA event time of the device copies, summed over chunks. */
  readonly deviceMs: number;
  /** Host side of a staged copy (pread/pwrite or memcpy), summed over chunks. */
  readonly hostMs: number;
  readonly chunks: number;
}

interface Waiter {
  readonly count: number;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

/**
 * Reusable pinned staging buffers of one device, handed out whole to one copy at a time: a FIFO
 * semaphore over `count` permits, so concurrent copies never share a buffer, and a copy that takes
 * several buffers takes them at once (no deadlock between two copies each holding one).
 * Buffers are allocated on first use and freed by close(), after the copies holding them finish.
 */
export class StagingPool {
  private readonly idle: OwnedBuffer[] = [];
  private allocated = 0;
  private permits: number;
  private readonly waiters: Waiter[] = [];
  private closing: Promise<void> | undefined;
  private drained: (() => void) | undefined;

  constructor(
    private readonly cuda: CudaApi,
    readonly deviceId: number,
    readonly bufferBytes: number,
    readonly count: number,
  ) {
    this.permits = count;
  }

  /** Pinned buffers allocated now (idle or in use). */
  allocatedBuffers(): number {
    return this.allocated;
  }

  /** Copies waiting in line for buffers now. */
  waiting(): number {
    return this.waiters.length;
  }

  /** Buffers held by copies now. */
  inUse(): number {
    return this.count - this.permits;
  }

  /** Takes `n` buffers (allocating them on first use), waiting in line for them. */
  async acquire(n: number): Promise<OwnedBuffer[]> {
    if (!Number.isInteger(n) || n < 1 || n > this.count)
      throw new Error(`a copy may take 1 to ${this.count} staging buffers (asked for ${n})`);
    if (this.closing) throw new TierError("IO", "the GPU tier is closing: its staging buffers are gone");
    if (this.waiters.length === 0 && this.permits >= n) this.permits -= n;
    else
      await new Promise<void>((resolve, reject) => {
        this.waiters.push({ count: n, resolve, reject });
      });
    const out: OwnedBuffer[] = [];
    try {
      while (out.length < n) {
        const b = this.idle.pop();
        if (b) out.push(b);
        else {
          out.push(this.cuda.allocHost(this.deviceId, this.bufferBytes));
          this.allocated++;
        }
      }
    } catch (e) {
      this.release(out);
      this.permits += n - out.length;
      this.wake();
      throw e;
    }
    return out;
  }

  /** Gives buffers back; only once every operation using them has settled. */
  release(buffers: readonly OwnedBuffer[]): void {
    for (const b of buffers) this.idle.push(b);
    this.permits += buffers.length;
    this.wake();
  }

  private wake(): void {
    while (this.waiters.length > 0 && this.waiters[0]!.count <= this.permits) {
      const w = this.waiters.shift()!;
      this.permits -= w.count;
      w.resolve();
    }
    if (this.permits === this.count) this.drained?.();
  }

  /**
   * Refuses new copies, waits for those holding buffers (and, unless `rejectWaiting`, serves those
   * already waiting), then frees every buffer. Idempotent.
   */
  close(rejectWaiting = true): Promise<void> {
    this.closing ??= (async () => {
      if (rejectWaiting)
        for (const w of this.waiters.splice(0))
          w.reject(new TierError("IO", "the GPU tier closed while this copy waited for staging buffers"));
      if (this.permits < this.count) await new Promise<void>((r) => (this.drained = r));
      const errors: unknown[] = [];
      for (const b of this.idle.splice(0)) {
        try {
          b.release();
          this.allocated--;
        } catch (e) {
          errors.push(e);
        }
      }
      if (errors.length > 0)
        throw new Error(`could not free ${errors.length} staging buffer(s): ${(errors[0] as Error).message}`);
    })();
    return this.closing;
  }
}

interface Allocation {
  readonly ptr: DevicePointer;
  readonly sizeBytes: number;
  readonly handle: Uint8Array;
}

const RECENT_COPIES = 32;

/**
 * The GPU tier: one cuMemAlloc per payload on one device, handed to clients as a CUDA IPC handle.
 * Allocations live in this process — the agent must stay up while clients use them (a CUDA rule),
 * and they are gone after an agent restart. The tier also owns the pinned staging buffers of
 * GPU↔host copies and their settings (see {@link gpuCopier}).
 */
export class GpuTier implements TierBackend {
  readonly tier: StorageTier = "GPU";
  private readonly allocations = new Map<string, Allocation>();
  private used = 0;
  private copyOpts: GpuCopyOptions;
  private pool: StagingPool | undefined;
  private readonly closingPools = new Set<Promise<void>>();
  private readonly recent: GpuCopyStats[] = [];
  private closed = false;

  constructor(
    private readonly cuda: CudaApi,
    readonly deviceId: number,
    readonly capacityBytes: number,
    copyOptions: Partial<GpuCopyOptions> = {},
  ) {
    this.copyOpts = checkCopyOptions({ ...DEFAULT_GPU_COPY_OPTIONS, ...copyOptions });
  }

  usedBytes(): number {
    return this.used;
  }

  async create(id: PayloadId, sizeBytes: number): Promise<RegionInfo> {
    if (!isUuidText(id)) throw new TierError("INVALID", `${JSON.stringify(id)} is not a payload id`);
    if (this.allocations.has(id)) throw new TierError("EXISTS", `a GPU region for ${id} already exists`);
    if (this.used + sizeBytes > this.capacityBytes) {
      throw new TierError(
        "FULL",
        `GPU ${this.deviceId} tier has ${this.capacityBytes - this.used} of ${this.capacityBytes} bytes free; ${sizeBytes} requested`,
      );
    }
    let ptr: DevicePointer;
    try {
      ptr = this.cuda.alloc(this.deviceId, sizeBytes);
    } catch (e) {
      const code = (e as { code?: string }).code ?? "";
      if (code === "CUDA_ERROR_OUT_OF_MEMORY")
        throw new TierError("FULL", `GPU ${this.deviceId} is out of memory for ${sizeBytes} bytes`);
      throw new TierError(
        "IO",
        `cuMemAlloc of ${sizeBytes} bytes on GPU ${this.deviceId} failed: ${(e as Error).message}`,
      );
    }
    let handle: Uint8Array;
    try {
      handle = new Uint8Array(this.cuda.ipcGetHandle(this.deviceId, ptr));
    } catch (e) {
      this.cuda.free(this.deviceId, ptr);
      throw new TierError("IO", `cuIpcGetMemHandle failed: ${(e as Error).message}`);
    }
    this.allocations.set(id, { ptr, sizeBytes, handle });
    this.used += sizeBytes;
    return this.info(id);
  }

  private info(id: PayloadId): RegionInfo {
    const a = this.allocations.get(id)!;
    return {
      payloadId: id,
      sizeBytes: a.sizeBytes,
      location: { kind: "gpu", deviceId: this.deviceId, ipcHandle: a.handle },
    };
  }

  pointerOf(id: PayloadId): DevicePointer {
    const a = this.allocations.get(id);
    if (!a) throw new TierError("NOT_FOUND", `no GPU region for payload ${id} on this agent`);
    return a.ptr;
  }

  async free(id: PayloadId): Promise<void> {
    const a = this.allocations.get(id);
    if (!a) return;
    this.cuda.free(this.deviceId, a.ptr);
    this.allocations.delete(id);
    this.used -= a.sizeBytes;
  }

  async stat(id: PayloadId): Promise<RegionInfo | undefined> {
    return this.allocations.has(id) ? this.info(id) : undefined;
  }

  async list(): Promise<RegionInfo[]> {
    return [...this.allocations.keys()].map((id) => this.info(id as PayloadId));
  }

  filePath(): undefined {
    return undefined;
  }

  /** The settings GPU↔host copies use now. */
  get copyOptions(): GpuCopyOptions {
    return this.copyOpts;
  }

  /**
   * Changes how later copies are made (copies in flight finish as they started). A new staging
   * geometry replaces the pool: the old buffers are freed once the copies using them finish.
   */
  configureCopies(changes: Partial<GpuCopyOptions>): void {
    const next = checkCopyOptions({ ...this.copyOpts, ...changes });
    if (
      this.pool &&
      (next.chunkBytes !== this.copyOpts.chunkBytes || next.stagingBuffers !== this.copyOpts.stagingBuffers)
    ) {
      const closing = this.pool.close(false).catch(() => undefined);
      this.closingPools.add(closing);
      void closing.then(() => this.closingPools.delete(closing));
      this.pool = undefined;
    }
    this.copyOpts = next;
  }

  /** The staging pool of this device (created on first use; buffers are allocated on first acquire). */
  stagingPool(): StagingPool {
    if (this.closed) throw new TierError("IO", "the GPU tier is closed");
    this.pool ??= new StagingPool(
      this.cuda,
      this.deviceId,
      this.copyOpts.chunkBytes,
      this.copyOpts.stagingBuffers,
    );
    return this.pool;
  }

  /** Pinned staging buffers allocated now. */
  stagingBuffersAllocated(): number {
    return this.pool?.allocatedBuffers() ?? 0;
  }

  /** The last copies between this GPU and host regions, newest last (at most 32). */
  recentCopies(): readonly GpuCopyStats[] {
    return [...this.recent];
  }

  recordCopy(stats: GpuCopyStats): void {
    this.recent.push(stats);
    if (this.recent.length > RECENT_COPIES) this.recent.shift();
  }

  async close(): Promise<void> {
    this.closed = true;
    // Staged copies in flight finish before their buffers and device memory go.
    const pool = this.pool;
    this.pool = undefined;
    await Promise.all([pool?.close(), ...this.closingPools]);
    for (const id of [...this.allocations.keys()]) await this.free(id as PayloadId);
  }
}

/** The host side of a staged copy: reads or writes the region file at an offset. */
interface HostSide {
  readonly io: "fd" | "mmap";
  /** Region bytes [position, position+length) into `dst` from its start. */
  read(dst: Buffer, length: number, position: number): Promise<void>;
  /** `src` bytes [0, length) into the region at `position`. */
  write(src: Buffer, length: number, position: number): Promise<void>;
  close(): Promise<void>;
}

async function fdHost(path: string, writable: boolean): Promise<HostSide> {
  const fh: FileHandle = await open(path, writable ? "r+" : "r");
  return {
    io: "fd",
    async read(dst, length, position) {
      for (let done = 0; done < length; ) {
        const { bytesRead } = await fh.read(dst, done, length - done, position + done);
        if (bytesRead === 0)
          throw new Error(`${path} ends at byte ${position + done}, before the region's end`);
        done += bytesRead;
      }
    },
    async write(src, length, position) {
      for (let done = 0; done < length; ) {
        const { bytesWritten } = await fh.write(src, done, length - done, position + done);
        if (bytesWritten === 0)
          throw new Error(`write to ${path} at byte ${position + done} made no progress`);
        done += bytesWritten;
      }
    },
    close: () => fh.close(),
  };
}

function mmapHost(
  native: NativeApi,
  path: string,
  writable: boolean,
  sizeBytes: number,
  windowBytes: number,
): HostSide {
  let win: RegionMapping | undefined;
  const windowAt = (position: number): RegionMapping => {
    if (win && position >= win.offset && position < win.offset + win.length) return win;
    const old = win;
    win = undefined;
    old?.release();
    const offset = Math.floor(position / windowBytes) * windowBytes;
    // Writes fault pages in as they go; MAP_POPULATE would only move that cost (see above).
    win = native.mapFile(path, {
      writable,
      offset,
      length: Math.min(windowBytes, sizeBytes - offset),
      prefault: !writable,
    });
    return win;
  };
  const each = (
    length: number,
    position: number,
    fn: (region: Buffer, at: number, n: number, done: number) => void,
  ) => {
    for (let done = 0; done < length; ) {
      const w = windowAt(position + done);
      const at = position + done - w.offset;
      const n = Math.min(length - done, w.length - at);
      fn(w.bytes, at, n, done);
      done += n;
    }
  };
  return {
    io: "mmap",
    async read(dst, length, position) {
      each(length, position, (region, at, n, done) => region.copy(dst, done, at, at + n));
    },
    async write(src, length, position) {
      each(length, position, (region, at, n, done) => src.copy(region, at, done, done + n));
    },
    async close() {
      const old = win;
      win = undefined;
      old?.release();
    },
  };
}

/**
 * Runs `first(i)` then `second(i)` for chunks 0..n-1 on `slots` buffers. With two slots, step s
 * runs first(s) and second(s-1) at once on different buffers; a buffer is reused only after both
 * operations of its previous step settled, and a failure is raised only once nothing is in flight.
 */
async function pipeline(
  n: number,
  slots: number,
  first: (i: number, slot: number) => Promise<void>,
  second: (i: number, slot: number) => Promise<void>,
): Promise<void> {
  if (slots < 2) {
    for (let i = 0; i < n; i++) {
      await first(i, 0);
      await second(i, 0);
    }
    return;
  }
  // Called through an async function so that a synchronous throw is a rejection like any other.
  const run = async (op: (i: number, slot: number) => Promise<void>, i: number) => op(i, i % 2);
  for (let s = 0; s <= n; s++) {
    const ops: Promise<void>[] = [];
    if (s < n) ops.push(run(first, s));
    if (s > 0) ops.push(run(second, s - 1));
    const settled = await Promise.allSettled(ops);
    for (const r of settled) if (r.status === "rejected") throw r.reason;
  }
}

interface CopyJob {
  readonly gpu: GpuTier;
  readonly toGpu: boolean;
  readonly ptr: DevicePointer;
  readonly hostPath: string;
  readonly sizeBytes: number;
}

type Timing = { -readonly [K in keyof GpuCopyStats]: GpuCopyStats[K] };

async function stagedCopy(
  native: NativeApi,
  job: CopyJob,
  buffers: readonly OwnedBuffer[],
  hostIo: "fd" | "mmap",
  t: Timing,
): Promise<void> {
  const { gpu, toGpu, ptr, sizeBytes } = job;
  const device = gpu.deviceId;
  const chunk = buffers[0]!.bytes.length;
  const bytes = buffers.map((b) => b.bytes);
  const n = Math.ceil(sizeBytes / chunk);
  const lengthOf = (i: number) => Math.min(chunk, sizeBytes - i * chunk);
  const t0 = performance.now();
  const host =
    hostIo === "fd"
      ? await fdHost(job.hostPath, !toGpu)
      : mmapHost(native, job.hostPath, !toGpu, sizeBytes, gpu.copyOptions.windowBytes);
  const t1 = performance.now();
  t.setupMs += t1 - t0;
  t.chunks = n;
  const hostOp = async (fn: () => Promise<void>) => {
    const h0 = performance.now();
    await fn();
    t.hostMs += performance.now() - h0;
  };
  const deviceOp = async (copy: Promise<{ deviceMs: number }>) => {
    t.deviceMs += (await copy).deviceMs;
  };
  try {
    if (toGpu) {
      await pipeline(
        n,
        bytes.length,
        (i, s) => hostOp(() => host.read(bytes[s]!, lengthOf(i), i * chunk)),
        (i, s) => deviceOp(native.cuda.copyHtoD(device, ptr + BigInt(i * chunk), bytes[s]!, lengthOf(i))),
      );
    } else {
      await pipeline(
        n,
        bytes.length,
        (i, s) => deviceOp(native.cuda.copyDtoH(device, bytes[s]!, ptr + BigInt(i * chunk), lengthOf(i))),
        (i, s) => hostOp(() => host.write(bytes[s]!, lengthOf(i), i * chunk)),
      );
    }
  } finally {
    const t2 = performance.now();
    t.transferMs += t2 - t1;
    await host.close();
    t.teardownMs += performance.now() - t2;
  }
}

async function registeredCopy(native: NativeApi, job: CopyJob, t: Timing): Promise<void> {
  const { gpu, toGpu, ptr, sizeBytes } = job;
  const t0 = performance.now();
  const m = native.mapFile(job.hostPath, { writable: !toGpu, length: sizeBytes, prefault: true });
  try {
    let pinned = false;
    const r0 = performance.now();
    try {
      await native.cuda.hostRegister(gpu.deviceId, m.bytes, { portable: true, readOnly: toGpu });
      pinned = true;
    } catch {
      // Registration can fail (locked-memory limits); a pageable copy is slower but correct.
      t.mode = "pageable";
    }
    const t1 = performance.now();
    t.pinMs += t1 - r0;
    t.setupMs += t1 - t0;
    t.chunks = 1;
    try {
      const timing = toGpu
        ? await native.cuda.copyHtoD(gpu.deviceId, ptr, m.bytes, sizeBytes)
        : await native.cuda.copyDtoH(gpu.deviceId, m.bytes, ptr, sizeBytes);
      t.deviceMs += timing.deviceMs;
    } finally {
      const t2 = performance.now();
      t.transferMs += t2 - t1;
      try {
        if (pinned) await native.cuda.hostUnregister(gpu.deviceId, m.bytes);
      } finally {
        t.teardownMs += performance.now() - t2;
        t.pinMs += performance.now() - t2;
      }
    }
  } finally {
    const t3 = performance.now();
    m.release();
    t.teardownMs += performance.now() - t3;
  }
}

/**
 * Copies between the GPU and a file-backed tier (RAM or DISK) of this host, staged through the GPU
 * tier's pinned buffers or by registering the mapped region file with CUDA; how is decided per copy
 * from the tier's copy options and the file system (see the comment at the top of this file).
 */
export function gpuCopier(native: NativeApi): RegionCopier {
  return async (from, to, id, sizeBytes) => {
    const toGpu = to instanceof GpuTier;
    const fromGpu = from instanceof GpuTier;
    if (toGpu === fromGpu) return false;
    const gpu = (toGpu ? to : from) as GpuTier;
    const hostPath = (toGpu ? from : to).filePath(id);
    if (!hostPath) return false;
    const opts = gpu.copyOptions;
    const hugetlb = native.statFs(hostPath).type === "hugetlbfs";
    let mode: "register" | "staged" =
      opts.mode === "auto" ? (hugetlb || toGpu ? "register" : "staged") : opts.mode;
    // hugetlbfs has no write(2): regions there are written through a mapping.
    const hostIo: "fd" | "mmap" =
      (hugetlb && !toGpu) || opts.hostIo === "mmap" || (opts.hostIo === "auto" && hugetlb) ? "mmap" : "fd";
    const job: CopyJob = { gpu, toGpu, ptr: gpu.pointerOf(id), hostPath, sizeBytes };
    const started = performance.now();
    const t: Timing = {
      direction: toGpu ? "toGpu" : "fromGpu",
      mode,
      hostIo: undefined,
      bytes: sizeBytes,
      ok: false,
      error: undefined,
      totalMs: 0,
      setupMs: 0,
      transferMs: 0,
      teardownMs: 0,
      pinMs: 0,
      deviceMs: 0,
      hostMs: 0,
      chunks: 0,
    };
    try {
      let buffers: OwnedBuffer[] | undefined;
      if (mode === "staged") {
        const pool = gpu.stagingPool();
        const need = Math.min(2, pool.count, Math.ceil(sizeBytes / pool.bufferBytes));
        try {
          buffers = await pool.acquire(need);
        } catch (e) {
          // Pinned memory may be short (RLIMIT_MEMLOCK, cgroup limits): auto falls back to register.
          if (opts.mode !== "auto" || e instanceof TierError) throw e;
          mode = "register";
          t.mode = mode;
        }
        t.setupMs += performance.now() - started;
        if (buffers) {
          t.hostIo = hostIo;
          try {
            await stagedCopy(native, job, buffers, hostIo, t);
          } finally {
            pool.release(buffers);
          }
        }
      }
      if (mode === "register") await registeredCopy(native, job, t);
      t.ok = true;
    } catch (e) {
      t.error = (e as Error).message;
      throw e;
    } finally {
      t.totalMs = performance.now() - started;
      gpu.recordCopy(t);
    }
    return true;
  };
}

/**
 * Builds GPU tiers for the configured devices when CUDA is usable; says why not otherwise. Copy
 * settings come from `env` (see {@link gpuCopyOptionsFromEnv}).
 */
export function gpuTiers(
  native: NativeApi,
  cfg: { enabled: boolean | "auto"; devices: readonly number[]; capacityBytes?: number | undefined },
  env: Readonly<Record<string, string | undefined>> = process.env,
): { tiers: GpuTier[]; reason: string | undefined } {
  if (cfg.enabled === false) return { tiers: [], reason: "disabled in config" };
  const avail = native.cuda.availability();
  if (!avail.available || avail.deviceCount === 0) {
    if (cfg.enabled === true)
      throw new Error(`the GPU tier is enabled but CUDA is not usable: ${avail.reason}`);
    return { tiers: [], reason: avail.reason || "no CUDA device" };
  }
  // One GPU tier per agent today (the catalog keys a region by payload and tier); the first
  // configured device holds it.
  const device = cfg.devices[0] ?? 0;
  const total = native.cuda.memInfo(device).total;
  return {
    tiers: [
      new GpuTier(
        native.cuda,
        device,
        cfg.capacityBytes ?? Math.floor(total * 0.9),
        gpuCopyOptionsFromEnv(env),
      ),
    ],
    reason: undefined,
  };
}
