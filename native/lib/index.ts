/**
 * `@pm/native`: shared memory and file regions, checksums and the CUDA driver
 * API for the tier agent and the client SDK, behind a typed facade.
 *
 * ```ts
 * import { createShm, mapShm, cuda } from "@pm/native";
 * await createShm("/pm-1234", 64 << 20);
 * const region = mapShm("/pm-1234", { writable: true });
 * region.bytes.fill(1);
 * region.release();
 * ```
 *
 * The top-level functions load the addon on first use and throw a
 * {@link NativeAddonError} (`NATIVE_ADDON_MISSING`) when it is not built; call
 * {@link tryNativeApi} first to run without it. Tests that must run without the
 * addon use `createFakeNativeApi` from `@pm/native/testing`.
 */
import { createNativeApi } from "./create-native-api.ts";
import { loadNative, type NativeAddonError, tryLoadNative } from "./load.ts";
import type { CudaApi, CudaAvailability, NativeApi } from "./native-api.ts";

export type { NativeBinding } from "./binding.ts";
export { createNativeApi } from "./create-native-api.ts";
export {
  loadNative,
  NATIVE_ABI_VERSION,
  NATIVE_ADDON_ENV,
  NativeAddonError,
  type NativeAddonErrorCode,
  type NativeLoadResult,
  nativeAddonCandidates,
  tryLoadNative,
} from "./load.ts";
export * from "./native-api.ts";

let api: NativeApi | undefined;

/** The facade over the built addon; throws {@link NativeAddonError} when it is missing or unloadable. */
export function nativeApi(): NativeApi {
  api ??= createNativeApi(loadNative());
  return api;
}

/** Like {@link nativeApi} but never throws: `{ ok: false, error }` when the addon cannot be used. */
export function tryNativeApi(): { ok: true; api: NativeApi } | { ok: false; error: NativeAddonError } {
  if (api !== undefined) return { ok: true, api };
  const loaded = tryLoadNative();
  if (!loaded.ok) return loaded;
  api = createNativeApi(loaded.addon);
  return { ok: true, api };
}

/** {@link NativeApi.createShm} on the built addon. */
export const createShm: NativeApi["createShm"] = (name, size, options) =>
  nativeApi().createShm(name, size, options);
/** {@link NativeApi.resizeShm} on the built addon. */
export const resizeShm: NativeApi["resizeShm"] = (name, size, options) =>
  nativeApi().resizeShm(name, size, options);
/** {@link NativeApi.unlinkShm} on the built addon. */
export const unlinkShm: NativeApi["unlinkShm"] = (name) => nativeApi().unlinkShm(name);
/** {@link NativeApi.statShm} on the built addon. */
export const statShm: NativeApi["statShm"] = (name) => nativeApi().statShm(name);
/** {@link NativeApi.listShm} on the built addon. */
export const listShm: NativeApi["listShm"] = (prefix) => nativeApi().listShm(prefix);
/** {@link NativeApi.mapShm} on the built addon. */
export const mapShm: NativeApi["mapShm"] = (name, options) => nativeApi().mapShm(name, options);
/** {@link NativeApi.createFile} on the built addon. */
export const createFile: NativeApi["createFile"] = (path, size, options) =>
  nativeApi().createFile(path, size, options);
/** {@link NativeApi.mapFile} on the built addon. */
export const mapFile: NativeApi["mapFile"] = (path, options) => nativeApi().mapFile(path, options);
/** {@link NativeApi.statFs} on the built addon. */
export const statFs: NativeApi["statFs"] = (path) => nativeApi().statFs(path);
/** {@link NativeApi.fsync} on the built addon. */
export const fsync: NativeApi["fsync"] = (path) => nativeApi().fsync(path);
/** {@link NativeApi.copyFile} on the built addon. */
export const copyFile: NativeApi["copyFile"] = (src, dst, options) => nativeApi().copyFile(src, dst, options);
/** {@link NativeApi.checksum} on the built addon. */
export const checksum: NativeApi["checksum"] = (source, algorithm) => nativeApi().checksum(source, algorithm);
/** {@link NativeApi.checksumSync} on the built addon. */
export const checksumSync: NativeApi["checksumSync"] = (bytes, algorithm) =>
  nativeApi().checksumSync(bytes, algorithm);
/** {@link NativeApi.allocAligned} on the built addon. */
export const allocAligned: NativeApi["allocAligned"] = (size, options) =>
  nativeApi().allocAligned(size, options);
/** {@link NativeApi.regionStats} on the built addon. */
export const regionStats: NativeApi["regionStats"] = () => nativeApi().regionStats();

/**
 * {@link CudaApi} on the built addon. `availability()` never throws: without
 * the addon it reports `available: false` with the reason.
 */
export const cuda: CudaApi = {
  availability(): CudaAvailability {
    const loaded = tryNativeApi();
    if (loaded.ok) return loaded.api.cuda.availability();
    return { available: false, reason: loaded.error.message, driverVersion: 0, deviceCount: 0 };
  },
  devices: () => nativeApi().cuda.devices(),
  memInfo: (device) => nativeApi().cuda.memInfo(device),
  alloc: (device, size) => nativeApi().cuda.alloc(device, size),
  free: (device, ptr) => nativeApi().cuda.free(device, ptr),
  ipcGetHandle: (device, ptr) => nativeApi().cuda.ipcGetHandle(device, ptr),
  ipcOpenHandle: (device, handle) => nativeApi().cuda.ipcOpenHandle(device, handle),
  ipcCloseHandle: (device, ptr) => nativeApi().cuda.ipcCloseHandle(device, ptr),
  copyHtoD: (device, dst, src, bytes) => nativeApi().cuda.copyHtoD(device, dst, src, bytes),
  copyDtoH: (device, dst, src, bytes) => nativeApi().cuda.copyDtoH(device, dst, src, bytes),
  copyDtoD: (device, dst, src, bytes) => nativeApi().cuda.copyDtoD(device, dst, src, bytes),
  hostRegister: (device, bytes, options) => nativeApi().cuda.hostRegister(device, bytes, options),
  hostUnregister: (device, bytes) => nativeApi().cuda.hostUnregister(device, bytes),
  allocHost: (device, size) => nativeApi().cuda.allocHost(device, size),
  synchronize: (device) => nativeApi().cuda.synchronize(device),
};
