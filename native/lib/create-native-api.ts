import { resolve } from "node:path";
import type { NativeBinding } from "./binding.ts";
import type { CudaApi, FsInfo, MapOptions, NativeApi, OwnedBuffer, RegionMapping } from "./native-api.ts";

function owned(binding: NativeBinding, bytes: Buffer): OwnedBuffer {
  let released = false;
  return {
    bytes,
    get released() {
      return released;
    },
    release() {
      if (released) return;
      binding.release(bytes);
      released = true;
    },
  };
}

function mapping(binding: NativeBinding, bytes: Buffer, options: MapOptions): RegionMapping {
  const base = owned(binding, bytes);
  return {
    get bytes() {
      return base.bytes;
    },
    get released() {
      return base.released;
    },
    release: () => base.release(),
    offset: options.offset ?? 0,
    length: bytes.length,
    writable: options.writable === true,
  };
}

// The addon validates arguments synchronously; an async operation should
// still report every failure through its promise.
function settle<T>(start: () => Promise<T>): Promise<T> {
  try {
    return start();
  } catch (error) {
    return Promise.reject(error);
  }
}

/** The facade over a loaded addon. Relative file paths are resolved against the working directory. */
export function createNativeApi(binding: NativeBinding): NativeApi {
  const cuda: CudaApi = {
    availability: () => binding.cudaAvailable(),
    devices: () => binding.cudaDevices(),
    memInfo: (device) => binding.cudaMemGetInfo(device),
    alloc: (device, size) => binding.cuMemAlloc(device, size),
    free: (device, ptr) => binding.cuMemFree(device, ptr),
    ipcGetHandle: (device, ptr) => binding.cuIpcGetMemHandle(device, ptr),
    ipcOpenHandle: (device, handle) => binding.cuIpcOpenMemHandle(device, handle),
    ipcCloseHandle: (device, ptr) => binding.cuIpcCloseMemHandle(device, ptr),
    copyHtoD: (device, dst, src, bytes) => settle(() => binding.cuMemcpyHtoD(device, dst, src, bytes)),
    copyDtoH: (device, dst, src, bytes) => settle(() => binding.cuMemcpyDtoH(device, dst, src, bytes)),
    copyDtoD: (device, dst, src, bytes) => settle(() => binding.cuMemcpyDtoD(device, dst, src, bytes)),
    hostRegister: (device, bytes, options) => settle(() => binding.cuMemHostRegister(device, bytes, options)),
    hostUnregister: (device, bytes) => settle(() => binding.cuMemHostUnregister(device, bytes)),
    allocHost: (device, size) => owned(binding, binding.cuMemAllocHost(device, size)),
    synchronize: (device) => settle(() => binding.cuCtxSynchronize(device)),
  };
  return {
    createShm: (name, size, options) => settle(() => binding.shmCreate(name, size, options)),
    resizeShm: (name, size, options) => settle(() => binding.shmResize(name, size, options)),
    unlinkShm: (name) => binding.shmUnlink(name),
    statShm: (name) => binding.shmStat(name),
    listShm: (prefix) => binding.listShm(prefix),
    mapShm: (name, options = {}) => mapping(binding, binding.mapShm(name, options), options),
    createFile: (path, size, options) => settle(() => binding.fileCreate(resolve(path), size, options)),
    createFiles: (files, options) =>
      settle(() =>
        binding.fileCreateMany(
          // Malformed lists go to the addon as given: it refuses them with EINVAL.
          Array.isArray(files)
            ? files.map((f) => (typeof f?.path === "string" ? { ...f, path: resolve(f.path) } : f))
            : files,
          options,
        ),
      ),
    mapFile: (path, options = {}) => mapping(binding, binding.mapFile(resolve(path), options), options),
    statFs: (path) => binding.statFs(resolve(path)) as FsInfo,
    fsync: (path) => settle(() => binding.fsyncPath(resolve(path))),
    copyFile: (src, dst, options) => settle(() => binding.copyFile(resolve(src), resolve(dst), options)),
    checksum: (source, algorithm) =>
      settle(() => binding.checksum(typeof source === "string" ? resolve(source) : source, algorithm)),
    checksumSync: (bytes, algorithm) => binding.checksumSync(bytes, algorithm),
    allocAligned: (size, options) => owned(binding, binding.allocAligned(size, options)),
    regionStats: () => binding.regionStats(),
    cuda,
  };
}
