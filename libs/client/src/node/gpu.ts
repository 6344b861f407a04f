import { type DevicePointer, nativeApi, type OwnedBuffer } from "@pm/native";
import { type PayloadDescriptor, Tier } from "@pm/rpc";
import { idBytes, idText, type PayloadClient } from "../index.ts";

/** A GPU payload opened in this process through its CUDA IPC handle. */
export interface GpuRegion {
  readonly deviceId: number;
  /** Device pointer valid in this process until close(). */
  readonly ptr: DevicePointer;
  readonly sizeBytes: number;
  close(): void;
}

/**
 * Opens the GPU allocation a descriptor names (cuIpcOpenMemHandle). Only works in a process other
 * than the tier agent that allocated it, on the same host, while the agent runs.
 */
export function openGpu(d: PayloadDescriptor): GpuRegion {
  if (d.location.case !== "gpu") {
    throw new Error(
      `payload is on ${Tier[d.tier]}, not the GPU; lease it with min_tier TIER_GPU to promote it first`,
    );
  }
  const { deviceId, ipcHandle } = d.location.value;
  const cuda = nativeApi().cuda;
  const ptr = cuda.ipcOpenHandle(deviceId, ipcHandle);
  let open = true;
  return {
    deviceId,
    ptr,
    sizeBytes: Number(d.sizeBytes),
    close() {
      if (!open) return;
      open = false;
      cuda.ipcCloseHandle(deviceId, ptr);
    },
  };
}

/** Writes host bytes into a new GPU payload (allocate → open handle → copy to device → commit). */
export async function putGpu(
  client: PayloadClient,
  bytes: Uint8Array,
  opts: { ttlMs?: number } = {},
): Promise<{ id: string; descriptor: PayloadDescriptor }> {
  const res = await client.catalog.allocatePayload({
    sizeBytes: BigInt(bytes.byteLength),
    preferredTier: Tier.GPU,
    ttlMs: BigInt(opts.ttlMs ?? 0),
  });
  const d = res.payloadDescriptor!;
  try {
    const g = openGpu(d);
    try {
      await nativeApi().cuda.copyHtoD(g.deviceId, g.ptr, bytes, bytes.byteLength);
    } finally {
      g.close();
    }
    const c = await client.catalog.commitPayload({ id: d.payloadId });
    return { id: idText(d.payloadId), descriptor: c.payloadDescriptor ?? d };
  } catch (e) {
    await client.catalog.delete({ id: d.payloadId, force: true }).catch(() => undefined);
    throw e;
  }
}

/** Leases a GPU payload and copies it into pinned host memory (for verification or host use). */
export async function readGpuToHost(client: PayloadClient, id: string): Promise<OwnedBuffer> {
  const lease = await client.data.acquireReadLease({
    id: idBytes(id),
    minTier: Tier.GPU,
    minLeaseDurationMs: 60_000n,
  });
  try {
    const g = openGpu(lease.payloadDescriptor!);
    try {
      const host = nativeApi().cuda.allocHost(g.deviceId, g.sizeBytes);
      await nativeApi().cuda.copyDtoH(g.deviceId, host.bytes, g.ptr, g.sizeBytes);
      return host;
    } finally {
      g.close();
    }
  } finally {
    await client.data.releaseLease({ leaseId: lease.leaseId });
  }
}
