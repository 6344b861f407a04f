/**
 * CUDA round trip across two processes, printed as one JSON line; used by
 * native.int.test.ts against the real driver (when a GPU is present) and
 * against test/fake-libcuda.c (LD_LIBRARY_PATH) everywhere else.
 *
 * parent: alloc, fill from a registered shm mapping, export an IPC handle,
 *         spawn the child, compare checksums, exercise error paths.
 * child <hex handle> <bytes>: open the handle, copy out into pinned memory and
 *         through a device-to-device copy, checksum both.
 */
import { spawnSync } from "node:child_process";
import { randomFillSync } from "node:crypto";
import { fileURLToPath } from "node:url";
import { nativeApi } from "../index.ts";

const api = nativeApi();
const device = 0;
const [mode = "parent", hexHandle = "", size = "0"] = process.argv.slice(2);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

async function child(): Promise<void> {
  const bytes = Number(size);
  const ptr = api.cuda.ipcOpenHandle(device, Buffer.from(hexHandle, "hex"));
  const pinned = api.cuda.allocHost(device, bytes);
  await api.cuda.copyDtoH(device, pinned.bytes, ptr);
  const own = api.cuda.alloc(device, bytes);
  await api.cuda.copyDtoD(device, own, ptr, bytes);
  const back = api.allocAligned(bytes);
  await api.cuda.copyDtoH(device, back.bytes, own);
  const result = {
    viaIpc: await api.checksum(pinned.bytes),
    viaDeviceCopy: await api.checksum(back.bytes),
  };
  api.cuda.free(device, own);
  api.cuda.ipcCloseHandle(device, ptr);
  pinned.release();
  console.log(JSON.stringify(result));
}

async function parent(): Promise<void> {
  const availability = api.cuda.availability();
  if (!availability.available) {
    console.log(JSON.stringify({ available: false, reason: availability.reason }));
    return;
  }
  const bytes = 4 << 20;
  const name = `/pm-cuda-roundtrip-${process.pid}`;
  await api.createShm(name, bytes);
  try {
    const region = api.mapShm(name, { writable: true });
    randomFillSync(region.bytes);
    const expected = await api.checksum(region.bytes);
    await api.cuda.hostRegister(device, region.bytes);
    const releaseWhileRegistered = codeOf(() => region.release());
    const ptr = api.cuda.alloc(device, bytes);
    const upload = await api.cuda.copyHtoD(device, ptr, region.bytes);
    const handle = api.cuda.ipcGetHandle(device, ptr);
    const run = spawnSync(
      process.execPath,
      [...process.execArgv, fileURLToPath(import.meta.url), "child", handle.toString("hex"), String(bytes)],
      { encoding: "utf8" },
    );
    const childResult = JSON.parse(run.stdout.trim().split("\n").pop() ?? "{}");
    const result = {
      available: true,
      devices: api.cuda.devices(),
      expected,
      child: childResult,
      childStderr: run.stderr,
      uploadBytes: upload.bytes,
      handleLength: handle.length,
      releaseWhileRegistered,
      openInAllocatingProcess: codeOf(() => api.cuda.ipcOpenHandle(device, handle)),
      freeBogusPointer: codeOf(() => api.cuda.free(device, 0x1234n)),
      badDevice: codeOf(() => api.cuda.alloc(99, 10)),
      shortHandle: codeOf(() => api.cuda.ipcOpenHandle(device, Buffer.alloc(10))),
    };
    api.cuda.free(device, ptr);
    await api.cuda.hostUnregister(device, region.bytes);
    region.release();
    console.log(JSON.stringify(result));
  } finally {
    api.unlinkShm(name);
  }
}

await (mode === "child" ? child() : parent());
