/**
 * The raw shape of `build/Release/pm_native.node`, exactly as the C++ code
 * exports it. Application code uses the typed facade (`createNativeApi`,
 * `NativeApi`) instead; this type exists for the loader and the facade.
 *
 * Sizes are JS numbers (exact up to 2^53); device pointers are bigints.
 * Every function throws (or rejects with) an Error carrying a string `code`.
 */
export interface NativeBinding {
  readonly abiVersion: number;

  release(bytes: Uint8Array): boolean;
  regionStats(): { count: number; bytes: number; byKind: Record<string, { count: number; bytes: number }> };
  allocAligned(
    size: number,
    options?: { alignment?: number; hugePages?: boolean; prefault?: boolean },
  ): Buffer;

  shmCreate(
    name: string,
    size: number,
    options?: { mode?: number; reserve?: boolean },
  ): Promise<{ name: string; size: number; reserved: boolean }>;
  shmResize(
    name: string,
    size: number,
    options?: { allowShrink?: boolean; reserve?: boolean },
  ): Promise<{ name: string; size: number }>;
  shmOpen(name: string, writable: boolean): number;
  shmUnlink(name: string): void;
  shmStat(name: string): BindingShmInfo;
  mapShm(name: string, options?: BindingMapOptions): Buffer;
  listShm(prefix?: string): BindingShmInfo[];

  fileCreate(
    path: string,
    size: number,
    options?: { mode?: number; exclusive?: boolean },
  ): Promise<{ path: string; size: number; preallocated: boolean }>;
  fileCreateMany(
    files: readonly { path: string; size: number; mode?: number }[],
    options?: { exclusive?: boolean },
  ): Promise<({ path: string; size: number; preallocated: boolean } | Error)[]>;
  mapFile(path: string, options?: BindingMapOptions): Buffer;
  mapFd(fd: number, options?: BindingMapOptions): Buffer;
  fsyncPath(path: string): Promise<void>;
  copyFile(
    src: string,
    dst: string,
    options?: { fsync?: boolean; mode?: number; exclusive?: boolean },
  ): Promise<number>;
  statFs(path: string): {
    type: string;
    pageSize: number;
    blockSize: number;
    totalBytes: number;
    freeBytes: number;
    availableBytes: number;
  };

  checksum(source: Uint8Array | string, algorithm?: string): Promise<string>;
  checksumSync(bytes: Uint8Array, algorithm?: string): string;

  cudaAvailable(): { available: boolean; reason: string; driverVersion: number; deviceCount: number };
  cudaDevices(): Array<{
    ordinal: number;
    name: string;
    totalMemory: number;
    computeCapability: string;
    multiprocessors: number;
    pciBusId: string;
  }>;
  cudaMemGetInfo(device: number): { free: number; total: number };
  cuMemAlloc(device: number, size: number): bigint;
  cuMemFree(device: number, ptr: bigint): void;
  cuIpcGetMemHandle(device: number, ptr: bigint): Buffer;
  cuIpcOpenMemHandle(device: number, handle: Uint8Array): bigint;
  cuIpcCloseMemHandle(device: number, ptr: bigint): void;
  cuMemcpyHtoD(device: number, dst: bigint, src: Uint8Array, bytes?: number): Promise<BindingCopyTiming>;
  cuMemcpyDtoH(device: number, dst: Uint8Array, src: bigint, bytes?: number): Promise<BindingCopyTiming>;
  cuMemcpyDtoD(device: number, dst: bigint, src: bigint, bytes: number): Promise<BindingCopyTiming>;
  cuMemHostRegister(
    device: number,
    bytes: Uint8Array,
    options?: { portable?: boolean; deviceMap?: boolean; readOnly?: boolean },
  ): Promise<void>;
  cuMemHostUnregister(device: number, bytes: Uint8Array): Promise<void>;
  cuMemAllocHost(device: number, size: number): Buffer;
  cuCtxSynchronize(device: number): Promise<void>;
}

export interface BindingMapOptions {
  writable?: boolean;
  copyOnWrite?: boolean;
  offset?: number;
  length?: number;
  prefault?: boolean;
  hugePages?: boolean;
}

export interface BindingShmInfo {
  name: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
}

export interface BindingCopyTiming {
  bytes: number;
  deviceMs: number;
  wallMs: number;
}
