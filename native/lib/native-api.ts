/**
 * The typed surface of `@pm/native`: POSIX shared memory and file regions,
 * checksums, and the CUDA driver API. Implemented by the addon
 * (`createNativeApi`) and by a pure-JS fake (`@pm/native/testing`).
 *
 * Errors: every operation throws (or rejects with) an `Error` whose string
 * `code` is an errno name (`ENOENT`, `EEXIST`, `EACCES`, `ENOSPC`, `EINVAL`,
 * `EBUSY`, ...), a CUDA driver error name (`CUDA_ERROR_OUT_OF_MEMORY`, ...) or
 * `CUDA_UNAVAILABLE`, and whose message says what to do next.
 */

/** Checksum algorithms; results are written `"<algorithm>:<hex digest>"`. */
export type ChecksumAlgorithm = "xxh64" | "crc32c";

/** An error raised by the native layer (or its fake). */
export interface NativeError extends Error {
  /** `ENOENT`, `EINVAL`, `CUDA_ERROR_*`, `CUDA_UNAVAILABLE`, ... */
  code: string;
  /** The system or driver call that failed, when there was one. */
  syscall?: string;
}

/** True when `error` carries a string `code` (native errors and their fakes do). */
export function isNativeError(error: unknown): error is NativeError {
  return error instanceof Error && typeof (error as { code?: unknown }).code === "string";
}

/** How to map a region. */
export interface MapOptions {
  /**
   * Map read-write and shared (MAP_SHARED). Default false: a read-only
   * (PROT_READ) mapping — writing through it ends the process with SIGSEGV, so
   * use `copyOnWrite` when a reader needs scratch writes.
   */
  writable?: boolean;
  /** Private copy-on-write mapping: writes stay in this process and never reach the region. */
  copyOnWrite?: boolean;
  /** Byte offset into the region (any value; page alignment is handled). Default 0. */
  offset?: number;
  /** Bytes to map. Default: to the end of the region. offset+length must lie inside the region. */
  length?: number;
  /**
   * Populate page tables now (MAP_POPULATE) instead of faulting page by page on
   * first touch: costs time at map, pays off when the whole window is read.
   */
  prefault?: boolean;
  /** Ask for transparent huge pages (MADV_HUGEPAGE); effective on anonymous memory and `huge=advise` tmpfs. */
  hugePages?: boolean;
}

/** Memory owned by the addon and exposed as a Buffer (staging buffers, pinned memory). */
export interface OwnedBuffer {
  /** The bytes. Zero-length once released. */
  readonly bytes: Buffer;
  /** Whether release() has freed the memory. */
  readonly released: boolean;
  /**
   * Frees the memory now rather than at garbage collection. Every view of
   * `bytes` becomes zero-length first, so no stale access is possible.
   * Idempotent. Throws `EBUSY` while an async operation or a CUDA host
   * registration uses the memory.
   */
  release(): void;
}

/** A mapped window of a shared memory segment or file. */
export interface RegionMapping extends OwnedBuffer {
  /** Offset of the window in the region. */
  readonly offset: number;
  /** Length of the window in bytes (as mapped; `bytes.length` is 0 after release). */
  readonly length: number;
  readonly writable: boolean;
}

export interface ShmCreateOptions {
  /** File mode of the segment. Default 0o600 (owner only), applied regardless of umask. */
  mode?: number;
  /**
   * Reserve the pages now with fallocate (default true) so a full /dev/shm
   * fails here with ENOSPC instead of killing a writer with SIGBUS later.
   */
  reserve?: boolean;
}

export interface ShmResizeOptions {
  /** Permit shrinking. Off by default: a process mapping the tail would get SIGBUS. */
  allowShrink?: boolean;
  /** Reserve the added pages (default true). */
  reserve?: boolean;
}

export interface ShmSegment {
  name: string;
  size: number;
  /** Whether the pages were reserved with fallocate. */
  reserved: boolean;
}

export interface ShmInfo {
  /** Segment name with its leading "/". */
  name: string;
  size: number;
  /** Permission bits, e.g. 0o600. */
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
}

export interface FileCreateOptions {
  /** File mode. Default 0o600, applied regardless of umask. */
  mode?: number;
  /** Fail with EEXIST when the file exists (default true); false resizes an existing file. */
  exclusive?: boolean;
}

export interface FileRegion {
  path: string;
  /** Size in bytes (rounded up to whole huge pages on hugetlbfs). */
  size: number;
  /** Whether the blocks were reserved with fallocate (false: sparse file, e.g. fallocate unsupported). */
  preallocated: boolean;
}

export interface CopyFileOptions {
  /** fsync the destination and its directory before resolving. Default false. */
  fsync?: boolean;
  /** Mode of a newly created destination. Default 0o600. */
  mode?: number;
  /** Fail with EEXIST instead of overwriting an existing destination. Default false. */
  exclusive?: boolean;
}

export type FsType = "tmpfs" | "hugetlbfs" | "ext4" | "xfs" | "btrfs" | "overlayfs" | "nfs" | "other";

export interface FsInfo {
  type: FsType;
  /** The page size mappings use here: the huge page size on hugetlbfs. */
  pageSize: number;
  blockSize: number;
  totalBytes: number;
  freeBytes: number;
  availableBytes: number;
}

export interface AlignedAllocOptions {
  /** Power of two, at least the page size. Default: page size (2 MiB with hugePages). */
  alignment?: number;
  hugePages?: boolean;
  prefault?: boolean;
}

export interface RegionStats {
  /** Live addon-owned regions (mappings, staging and pinned buffers). */
  count: number;
  bytes: number;
  byKind: Record<string, { count: number; bytes: number }>;
}

export interface CudaAvailability {
  available: boolean;
  /** Why not (mentions libcuda when the driver library is absent), or what was found. */
  reason: string;
  driverVersion: number;
  deviceCount: number;
}

export interface CudaDevice {
  ordinal: number;
  name: string;
  totalMemory: number;
  /** "9.0" for H100/H200. */
  computeCapability: string;
  multiprocessors: number;
  pciBusId: string;
}

/** A device address in the calling process (from `alloc` or `ipcOpenHandle`). */
export type DevicePointer = bigint;

/** One completed copy: `deviceMs` from CUDA events around it, `wallMs` until the stream synchronized. */
export interface CopyTiming {
  bytes: number;
  deviceMs: number;
  wallMs: number;
}

export interface HostRegisterOptions {
  /** Usable from every context (default true). */
  portable?: boolean;
  /** Also map into the device address space. Default false. */
  deviceMap?: boolean;
  /** The range is only read by the device (required for read-only mappings). Default false. */
  readOnly?: boolean;
}

/**
 * The CUDA driver API, through `dlopen("libcuda.so.1")`. When the library or
 * a device is missing, `availability()` says why and everything else throws
 * `CUDA_UNAVAILABLE`. Each call makes the device's primary context current on
 * the thread that runs it; copies run off the JS thread on their own stream.
 */
export interface CudaApi {
  availability(): CudaAvailability;
  devices(): CudaDevice[];
  memInfo(device: number): { free: number; total: number };
  /** cuMemAlloc. The allocation lives until `free` or process exit. */
  alloc(device: number, size: number): DevicePointer;
  free(device: number, ptr: DevicePointer): void;
  /** cuIpcGetMemHandle: 64 bytes another process on this host can open while this one lives. */
  ipcGetHandle(device: number, ptr: DevicePointer): Buffer;
  /** cuIpcOpenMemHandle. Not in the allocating process; close with `ipcCloseHandle`. */
  ipcOpenHandle(device: number, handle: Uint8Array): DevicePointer;
  ipcCloseHandle(device: number, ptr: DevicePointer): void;
  /** Host to device; `bytes` defaults to `src.length`. Fast only from pinned or registered memory. */
  copyHtoD(device: number, dst: DevicePointer, src: Uint8Array, bytes?: number): Promise<CopyTiming>;
  /** Device to host; `bytes` defaults to `dst.length`. */
  copyDtoH(device: number, dst: Uint8Array, src: DevicePointer, bytes?: number): Promise<CopyTiming>;
  copyDtoD(device: number, dst: DevicePointer, src: DevicePointer, bytes: number): Promise<CopyTiming>;
  /**
   * cuMemHostRegister on existing memory, e.g. a shm mapping used for staging.
   * The memory stays referenced (and cannot be released) until `hostUnregister`.
   */
  hostRegister(device: number, bytes: Uint8Array, options?: HostRegisterOptions): Promise<void>;
  hostUnregister(device: number, bytes: Uint8Array): Promise<void>;
  /** cuMemAllocHost: pinned staging memory. */
  allocHost(device: number, size: number): OwnedBuffer;
  /** cuCtxSynchronize on the device's primary context. */
  synchronize(device: number): Promise<void>;
}

/** The operations the tier agent and the client SDK need from the host. */
export interface NativeApi {
  /**
   * Creates a shared memory segment exclusively (O_CREAT|O_EXCL): EEXIST when
   * the name is taken. Names are "/" plus 1-255 of `[A-Za-z0-9._:@+=-]`.
   */
  createShm(name: string, size: number, options?: ShmCreateOptions): Promise<ShmSegment>;
  resizeShm(name: string, size: number, options?: ShmResizeOptions): Promise<{ name: string; size: number }>;
  /** Removes the name; existing mappings stay valid until released. */
  unlinkShm(name: string): void;
  statShm(name: string): ShmInfo;
  /** Segments whose name starts with `prefix` (default "/"), sorted by name. */
  listShm(prefix?: string): ShmInfo[];
  mapShm(name: string, options?: MapOptions): RegionMapping;

  /**
   * Creates a file region of `size` bytes with its blocks reserved
   * (fallocate; sparse ftruncate where unsupported). On a tmpfs (`huge=always`)
   * or hugetlbfs mount this makes a RAM region backed by huge pages.
   */
  createFile(path: string, size: number, options?: FileCreateOptions): Promise<FileRegion>;
  /**
   * Many createFile()s in one trip off the JS thread (one libuv pool task, not one each). Each
   * file succeeds or fails on its own: the answer holds its FileRegion or its Error (with the
   * `code` createFile would have rejected with), in the order given.
   */
  createFiles(
    files: readonly { path: string; size: number; mode?: number }[],
    options?: { exclusive?: boolean },
  ): Promise<(FileRegion | Error)[]>;
  mapFile(path: string, options?: MapOptions): RegionMapping;
  statFs(path: string): FsInfo;
  /** fsync a file or directory, off the JS thread. */
  fsync(path: string): Promise<void>;
  /** Copies a regular file off the JS thread (copy_file_range, else aligned read/write); resolves to bytes copied. */
  copyFile(src: string, dst: string, options?: CopyFileOptions): Promise<number>;

  /** Checksums bytes or a file off the JS thread: `"xxh64:<16 hex>"` or `"crc32c:<8 hex>"`. */
  checksum(source: Uint8Array | string, algorithm?: ChecksumAlgorithm): Promise<string>;
  /** The same on the calling thread, for small buffers. */
  checksumSync(bytes: Uint8Array, algorithm?: ChecksumAlgorithm): string;

  /** Zeroed, page-aligned (or `alignment`-aligned) staging memory. */
  allocAligned(size: number, options?: AlignedAllocOptions): OwnedBuffer;
  regionStats(): RegionStats;

  readonly cuda: CudaApi;
}
