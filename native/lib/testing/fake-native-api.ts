/**
 * A pure-JS {@link NativeApi} for tests that must run without the addon.
 *
 * Shared memory lives in memory on a {@link FakeHost}; mappings of a segment
 * are views of one Buffer, so writes through one mapping are seen by the
 * others, as with the real thing. Files are real files; a mapping is a copy
 * of the file that a writable mapping writes back on `fsync(path)` and on
 * `release()`. CUDA is off unless asked for; then device memory is simulated
 * on the host, and each fake API instance acts as one process (an IPC handle
 * cannot be opened by the instance that allocated it).
 *
 * Same validation, error codes and checksum strings as the addon.
 */
import {
  closeSync,
  constants,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  statfsSync,
  writeFileSync,
} from "node:fs";
import { chmod, copyFile as fsCopyFile, open, stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import type {
  ChecksumAlgorithm,
  CopyTiming,
  CudaApi,
  CudaAvailability,
  FsType,
  MapOptions,
  NativeApi,
  NativeError,
  OwnedBuffer,
  RegionMapping,
  ShmInfo,
} from "../native-api.ts";
import { checksumText, createChecksum } from "./js-checksums.ts";

function fail(code: string, message: string): never {
  const error = new Error(message) as NativeError;
  error.code = code;
  throw error;
}

function checkSize(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    fail("EINVAL", `${what} must be a non-negative safe integer`);
  }
  if (value === 0) fail("EINVAL", `${what} must be greater than 0`);
  return value;
}

const FS_TYPES: Record<number, FsType> = {
  16914836: "tmpfs",
  2508478710: "hugetlbfs",
  61267: "ext4",
  1481003842: "xfs",
  2435016766: "btrfs",
  2035054128: "overlayfs",
  26985: "nfs",
};

const SHM_NAME = /^\/[A-Za-z0-9._:@+=-]{1,255}$/;

function checkName(name: unknown): string {
  if (typeof name !== "string" || !SHM_NAME.test(name) || name === "/." || name === "/..") {
    fail(
      "EINVAL",
      `invalid shared memory name ${JSON.stringify(name)}: use "/" plus 1-255 of [A-Za-z0-9._:@+=-]`,
    );
  }
  return name;
}

function checkAlgorithm(algorithm: unknown): ChecksumAlgorithm {
  if (algorithm === undefined) return "xxh64";
  if (algorithm !== "xxh64" && algorithm !== "crc32c") {
    fail("EINVAL", `unknown checksum algorithm ${JSON.stringify(algorithm)}: use "xxh64" or "crc32c"`);
  }
  return algorithm;
}

function window(size: number, options: MapOptions, label: string): { offset: number; length: number } {
  const offset = options.offset ?? 0;
  if (!Number.isSafeInteger(offset) || offset < 0)
    fail("EINVAL", "option offset must be a non-negative safe integer");
  if (size === 0) fail("EINVAL", `${label} is empty (0 bytes): resize it before mapping`);
  if (offset >= size) fail("EINVAL", `offset ${offset} is beyond the end of ${label} (${size} bytes)`);
  const length = options.length === undefined ? size - offset : checkSize(options.length, "option length");
  if (length > size - offset) {
    fail("EINVAL", `offset+length (${offset + length}) is beyond the end of ${label} (${size} bytes)`);
  }
  if (options.writable && options.copyOnWrite)
    fail("EINVAL", "writable and copyOnWrite are exclusive: pick one");
  return { offset, length };
}

function fsError(error: unknown, path: string): never {
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") fail(code, `${path}: ${(error as Error).message}`);
  throw error;
}

interface Segment {
  bytes: Buffer;
  mode: number;
  mtimeMs: number;
}

interface Allocation {
  device: number;
  bytes: Buffer;
  owner: number;
  freed: boolean;
}

/** State shared by fake API instances that stand for processes on one host. */
export interface FakeHost {
  readonly segments: Map<string, Segment>;
  readonly allocations: Map<bigint, Allocation>;
  nextPointer: bigint;
  nextProcess: number;
}

export function createFakeHost(): FakeHost {
  return { segments: new Map(), allocations: new Map(), nextPointer: 0x7f00_0000_0000n, nextProcess: 1 };
}

export interface FakeNativeOptions {
  /** Share shm segments and device memory with other instances (default: a new host). */
  host?: FakeHost;
  /** Simulate CUDA devices; omitted or false: CUDA unavailable. */
  cuda?: false | { devices?: number; memoryBytes?: number };
}

const HANDLE_MAGIC = "PMFAKEIPC";

/** Creates a fake native API; see the module comment for what it simulates. */
export function createFakeNativeApi(options: FakeNativeOptions = {}): NativeApi {
  const host = options.host ?? createFakeHost();
  const processId = host.nextProcess++;
  const live = new Set<{ kind: string; bytes: number }>();
  const pinned = new Set<ArrayBufferLike>();

  function owned(bytes: Buffer, kind: string, onRelease?: () => void): OwnedBuffer {
    const entry = { kind, bytes: bytes.length };
    live.add(entry);
    let released = false;
    return {
      get bytes() {
        return released ? Buffer.alloc(0) : bytes;
      },
      get released() {
        return released;
      },
      release() {
        if (released) return;
        if (pinned.has(bytes.buffer)) {
          fail("EBUSY", "the region is registered with CUDA: call cuda.hostUnregister first, then release");
        }
        onRelease?.();
        released = true;
        live.delete(entry);
      },
    };
  }

  function mapping(bytes: Buffer, kind: string, options: MapOptions, offset: number, onRelease?: () => void) {
    const base = owned(bytes, kind, onRelease);
    const result: RegionMapping = {
      get bytes() {
        return base.bytes;
      },
      get released() {
        return base.released;
      },
      release: () => base.release(),
      offset,
      length: bytes.length,
      writable: options.writable === true,
    };
    return result;
  }

  // Writable file mappings, written back on fsync(path) and release().
  const fileMappings = new Map<string, Set<Buffer>>();

  function writeBack(path: string): void {
    for (const bytes of fileMappings.get(path) ?? []) writeFileSync(path, bytes);
  }

  const cudaConfig = options.cuda === undefined || options.cuda === false ? undefined : options.cuda;
  const deviceCount = cudaConfig?.devices ?? 1;
  const memoryBytes = cudaConfig?.memoryBytes ?? 8 * 2 ** 30;
  const imports = new Map<bigint, bigint>(); // imported pointer -> allocation pointer
  const registered = new Set<Uint8Array>();

  function useDevice(device: number): void {
    if (cudaConfig === undefined) {
      fail("CUDA_UNAVAILABLE", "CUDA is not available: the fake native API was created without cuda");
    }
    if (!Number.isInteger(device) || device < 0 || device >= deviceCount) {
      fail("CUDA_ERROR_INVALID_DEVICE", `device ${device} does not exist (${deviceCount} visible)`);
    }
  }

  // Resolves a device pointer valid in this "process" to its bytes.
  function deviceBytes(device: number, ptr: bigint, length: number): Buffer {
    if (typeof ptr !== "bigint" || ptr === 0n) fail("EINVAL", "device pointers are non-zero bigints");
    const starts: Array<[bigint, Allocation | undefined]> = [
      ...[...host.allocations].filter(([, a]) => a.owner === processId),
      ...[...imports].map(([imported, base]): [bigint, Allocation | undefined] => [
        imported,
        host.allocations.get(base),
      ]),
    ];
    for (const [start, alloc] of starts) {
      if (alloc === undefined || alloc.freed || alloc.device !== device) continue;
      const delta = ptr - start;
      if (delta >= 0n && delta + BigInt(length) <= BigInt(alloc.bytes.length)) {
        return alloc.bytes.subarray(Number(delta), Number(delta) + length);
      }
    }
    return fail(
      "CUDA_ERROR_INVALID_VALUE",
      "the device pointer is not inside a live allocation of this process",
    );
  }

  async function timed(bytes: number, copy: () => void): Promise<CopyTiming> {
    const t0 = performance.now();
    copy();
    const ms = performance.now() - t0;
    return { bytes, deviceMs: ms, wallMs: ms };
  }

  function hostLength(buffer: Uint8Array, bytes: number | undefined): number {
    const n = bytes ?? buffer.length;
    if (n === 0) fail("EINVAL", "nothing to copy: the host buffer is empty");
    if (n > buffer.length) fail("EINVAL", `bytes (${n}) exceeds the host buffer (${buffer.length} bytes)`);
    return n;
  }

  const cuda: CudaApi = {
    availability(): CudaAvailability {
      if (cudaConfig === undefined) {
        return {
          available: false,
          reason: "fake native API without cuda (a stand-in for a host where libcuda.so.1 is absent)",
          driverVersion: 0,
          deviceCount: 0,
        };
      }
      return { available: true, reason: "fake CUDA devices", driverVersion: 13000, deviceCount };
    },
    devices() {
      useDevice(0);
      return Array.from({ length: deviceCount }, (_, ordinal) => ({
        ordinal,
        name: `Fake CUDA Device ${ordinal}`,
        totalMemory: memoryBytes,
        computeCapability: "9.0",
        multiprocessors: 132,
        pciBusId: `0000:${(ordinal + 1).toString(16).padStart(2, "0")}:00.0`,
      }));
    },
    memInfo(device) {
      useDevice(device);
      let used = 0;
      for (const a of host.allocations.values()) if (!a.freed && a.device === device) used += a.bytes.length;
      return { free: memoryBytes - used, total: memoryBytes };
    },
    alloc(device, size) {
      useDevice(device);
      checkSize(size, "size");
      if (size > cuda.memInfo(device).free)
        fail("CUDA_ERROR_OUT_OF_MEMORY", "the fake device is out of memory");
      const ptr = host.nextPointer;
      host.nextPointer += BigInt(Math.ceil(size / 2 ** 21) * 2 ** 21);
      host.allocations.set(ptr, { device, bytes: Buffer.alloc(size), owner: processId, freed: false });
      return ptr;
    },
    free(device, ptr) {
      useDevice(device);
      const alloc = host.allocations.get(ptr);
      if (alloc === undefined || alloc.owner !== processId || alloc.freed) {
        fail("CUDA_ERROR_INVALID_VALUE", "cuMemFree: not the start of a live allocation of this process");
      }
      alloc.freed = true;
      host.allocations.delete(ptr);
    },
    ipcGetHandle(device, ptr) {
      useDevice(device);
      deviceBytes(device, ptr, 1);
      const base = [...host.allocations.keys()].filter((b) => b <= ptr).sort((x, y) => (x < y ? 1 : -1))[0]!;
      const handle = Buffer.alloc(64);
      handle.write(HANDLE_MAGIC, 0, "latin1");
      handle.writeBigUInt64LE(base, 16);
      handle.writeUInt32LE(device, 24);
      return handle;
    },
    ipcOpenHandle(device, handle) {
      useDevice(device);
      if (handle.length !== 64) fail("EINVAL", `an IPC handle is exactly 64 bytes (got ${handle.length})`);
      const buf = Buffer.from(handle);
      if (buf.toString("latin1", 0, HANDLE_MAGIC.length) !== HANDLE_MAGIC) {
        fail("CUDA_ERROR_INVALID_VALUE", "not an IPC handle");
      }
      const base = buf.readBigUInt64LE(16);
      const alloc = host.allocations.get(base);
      if (alloc === undefined || alloc.freed)
        fail("CUDA_ERROR_MAP_FAILED", "the allocation behind this handle is gone");
      if (alloc.owner === processId) {
        fail("CUDA_ERROR_INVALID_CONTEXT", "an IPC handle cannot be opened in the process that allocated it");
      }
      const imported = host.nextPointer;
      host.nextPointer += BigInt(Math.ceil(alloc.bytes.length / 2 ** 21) * 2 ** 21);
      imports.set(imported, base);
      return imported;
    },
    ipcCloseHandle(device, ptr) {
      useDevice(device);
      if (!imports.delete(ptr)) fail("CUDA_ERROR_INVALID_VALUE", "not a pointer returned by ipcOpenHandle");
    },
    async copyHtoD(device, dst, src, bytes) {
      useDevice(device);
      const n = hostLength(src, bytes);
      const target = deviceBytes(device, dst, n);
      return timed(n, () => target.set(src.subarray(0, n)));
    },
    async copyDtoH(device, dst, src, bytes) {
      useDevice(device);
      const n = hostLength(dst, bytes);
      const source = deviceBytes(device, src, n);
      return timed(n, () => dst.set(source));
    },
    async copyDtoD(device, dst, src, bytes) {
      useDevice(device);
      checkSize(bytes, "bytes");
      const source = deviceBytes(device, src, bytes);
      const target = deviceBytes(device, dst, bytes);
      return timed(bytes, () => target.set(source));
    },
    async hostRegister(device, bytes) {
      useDevice(device);
      if (bytes.length === 0) fail("EINVAL", "cannot register an empty (or released) buffer");
      if (registered.has(bytes)) {
        fail("CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED", "this buffer is already registered");
      }
      registered.add(bytes);
      pinned.add(bytes.buffer);
    },
    async hostUnregister(device, bytes) {
      useDevice(device);
      if (!registered.delete(bytes)) {
        fail("CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED", "this buffer is not registered");
      }
      pinned.delete(bytes.buffer);
    },
    allocHost(device, size) {
      useDevice(device);
      return owned(Buffer.alloc(checkSize(size, "size")), "cuda-host");
    },
    async synchronize(device) {
      useDevice(device);
    },
  };

  const api: NativeApi = {
    async createShm(name, size, opts = {}) {
      checkName(name);
      checkSize(size, "size");
      if (host.segments.has(name)) {
        fail("EEXIST", `shm_open ${name} failed: a segment with this name already exists`);
      }
      host.segments.set(name, { bytes: Buffer.alloc(size), mode: opts.mode ?? 0o600, mtimeMs: Date.now() });
      return { name, size, reserved: opts.reserve ?? true };
    },
    async resizeShm(name, size, opts = {}) {
      checkName(name);
      checkSize(size, "size");
      const seg = host.segments.get(name) ?? fail("ENOENT", `shm_open ${name} failed: no such segment`);
      if (size < seg.bytes.length && !opts.allowShrink) {
        fail("EINVAL", `refusing to shrink ${name}: pass allowShrink: true once no mapping covers the tail`);
      }
      const bytes = Buffer.alloc(size);
      seg.bytes.copy(bytes, 0, 0, Math.min(size, seg.bytes.length));
      seg.bytes = bytes;
      seg.mtimeMs = Date.now();
      return { name, size };
    },
    unlinkShm(name) {
      checkName(name);
      if (!host.segments.delete(name)) fail("ENOENT", `shm_unlink ${name} failed: no such segment`);
    },
    statShm(name) {
      checkName(name);
      const seg = host.segments.get(name) ?? fail("ENOENT", `stat ${name} failed: no such segment`);
      return info(name, seg);
    },
    listShm(prefix = "/") {
      if (!prefix.startsWith("/") || prefix.indexOf("/", 1) !== -1) {
        fail("EINVAL", 'prefix must start with "/" and contain no other "/"');
      }
      return [...host.segments.entries()]
        .filter(([name]) => name.startsWith(prefix))
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([name, seg]) => info(name, seg));
    },
    mapShm(name, opts = {}) {
      checkName(name);
      const seg = host.segments.get(name) ?? fail("ENOENT", `shm_open ${name} failed: no such segment`);
      const { offset, length } = window(seg.bytes.length, opts, name);
      const view = seg.bytes.subarray(offset, offset + length);
      return mapping(opts.copyOnWrite ? Buffer.from(view) : view, "shm", opts, offset);
    },

    async createFile(path, size, opts = {}) {
      const file = resolve(path);
      checkSize(size, "size");
      const mode = opts.mode ?? 0o600;
      const existed = opts.exclusive === false && existsSync(file);
      const handle = await open(file, opts.exclusive === false ? "a+" : "wx+", mode).catch((e) =>
        fsError(e, file),
      );
      try {
        await handle.truncate(size);
        if (!existed) await handle.chmod(mode);
      } finally {
        await handle.close();
      }
      return { path: file, size, preallocated: false };
    },
    async createFiles(files, opts = {}) {
      return Promise.all(
        files.map((f) =>
          api
            .createFile(f.path, f.size, { mode: f.mode ?? 0o600, exclusive: opts.exclusive ?? true })
            .catch((e: Error) => e),
        ),
      );
    },
    mapFile(path, opts = {}) {
      const file = resolve(path);
      let content: Buffer;
      try {
        content = readFileSync(file);
      } catch (e) {
        fsError(e, file);
      }
      const { offset, length } = window(content.length, opts, file);
      const view = content.subarray(offset, offset + length);
      if (!opts.writable) return mapping(view, "file", opts, offset);
      if (offset !== 0 || length !== content.length) {
        fail("EINVAL", "the fake maps writable files whole (offset 0, full length) only");
      }
      const set = fileMappings.get(file) ?? new Set();
      set.add(view);
      fileMappings.set(file, set);
      return mapping(view, "file", opts, offset, () => {
        writeBack(file);
        set.delete(view);
      });
    },
    statFs(path) {
      const file = resolve(path);
      let fs: ReturnType<typeof statfsSync>;
      try {
        fs = statfsSync(file);
      } catch (e) {
        fsError(e, file);
      }
      const type = FS_TYPES[fs.type] ?? "other";
      return {
        type,
        pageSize: type === "hugetlbfs" ? fs.bsize : 4096,
        blockSize: fs.bsize,
        totalBytes: fs.blocks * fs.bsize,
        freeBytes: fs.bfree * fs.bsize,
        availableBytes: fs.bavail * fs.bsize,
      };
    },
    async fsync(path) {
      const file = resolve(path);
      writeBack(file);
      let fd: number;
      try {
        fd = openSync(file, "r");
      } catch (e) {
        fsError(e, file);
      }
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    },
    async copyFile(src, dst, opts = {}) {
      const from = resolve(src);
      const to = resolve(dst);
      if (from === to) fail("EINVAL", "src and dst are the same file");
      const info = await stat(from).catch((e) => fsError(e, from));
      if (!info.isFile()) fail("EINVAL", `${from} is not a regular file: copyFile copies regular files only`);
      await fsCopyFile(from, to, opts.exclusive ? constants.COPYFILE_EXCL : 0).catch((e) => fsError(e, to));
      await chmod(to, opts.mode ?? 0o600);
      if (opts.fsync) {
        await api.fsync(to);
        await api.fsync(dirname(to));
      }
      return info.size;
    },

    async checksum(source, algorithm) {
      const alg = checkAlgorithm(algorithm);
      if (typeof source !== "string") return checksumText(source, alg);
      const file = resolve(source);
      const h = createChecksum(alg);
      const handle = await open(file, "r").catch((e) => fsError(e, file));
      try {
        for await (const chunk of handle.createReadStream({ highWaterMark: 1 << 20 }))
          h.update(chunk as Buffer);
      } finally {
        await handle.close().catch(() => undefined);
      }
      return h.text();
    },
    checksumSync(bytes, algorithm) {
      return checksumText(bytes, checkAlgorithm(algorithm));
    },

    allocAligned(size, opts = {}) {
      checkSize(size, "size");
      const alignment = opts.alignment ?? 4096;
      if (alignment < 4096 || (alignment & (alignment - 1)) !== 0) {
        fail("EINVAL", "alignment must be a power of two between the page size and 1 GiB");
      }
      return owned(Buffer.alloc(size), "aligned");
    },
    regionStats() {
      const byKind: Record<string, { count: number; bytes: number }> = {};
      let bytes = 0;
      for (const entry of live) {
        const k = byKind[entry.kind] ?? { count: 0, bytes: 0 };
        byKind[entry.kind] = k;
        k.count++;
        k.bytes += entry.bytes;
        bytes += entry.bytes;
      }
      return { count: live.size, bytes, byKind };
    },
    cuda,
  };
  return api;
}

function info(name: string, seg: Segment): ShmInfo {
  return {
    name,
    size: seg.bytes.length,
    mode: seg.mode,
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    mtimeMs: seg.mtimeMs,
  };
}
