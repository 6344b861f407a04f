import { isUuidText, type PayloadId, type StorageTier } from "@pm/domain";
import type { CudaApi, DevicePointer, NativeApi } from "@pm/native";
import type { RegionCopier } from "../tier-agent.ts";
import { type RegionInfo, type TierBackend, TierError } from "./tier-backend.ts";

interface Allocation {
  readonly ptr: DevicePointer;
  readonly sizeBytes: number;
  readonly handle: Uint8Array;
}

/**
 * The GPU tier: one cuMemAlloc per payload on one device, handed to clients as a CUDA IPC handle.
 * Allocations live in this process — the agent must stay up while clients use them (a CUDA rule),
 * and they are gone after an agent restart.
 */
export class GpuTier implements TierBackend {
  readonly tier: StorageTier = "GPU";
  private readonly allocations = new Map<string, Allocation>();
  private used = 0;

  constructor(
    private readonly cuda: CudaApi,
    readonly deviceId: number,
    readonly capacityBytes: number,
  ) {}

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

  async close(): Promise<void> {
    for (const id of [...this.allocations.keys()]) await this.free(id as PayloadId);
  }
}

/**
 * Copies between the GPU and a file-backed tier (RAM or DISK) of this host: the file is mapped,
 * registered with CUDA as pinned memory (full PCIe/NVLink speed instead of the pageable ~7-10
 * GB/s), and copied with one async memcpy off the JS thread.
 */
export function gpuCopier(native: NativeApi): RegionCopier {
  return async (from, to, id, sizeBytes) => {
    const toGpu = to instanceof GpuTier;
    const fromGpu = from instanceof GpuTier;
    if (toGpu === fromGpu) return false;
    const gpu = (toGpu ? to : from) as GpuTier;
    const hostPath = (toGpu ? from : to).filePath(id);
    if (!hostPath) return false;
    const m = native.mapFile(hostPath, { writable: fromGpu, length: sizeBytes, prefault: true });
    try {
      let pinned = false;
      try {
        await native.cuda.hostRegister(gpu.deviceId, m.bytes, { portable: true, readOnly: toGpu });
        pinned = true;
      } catch {
        // Registration can fail (locked-memory limits); a pageable copy is slower but correct.
      }
      try {
        if (toGpu) await native.cuda.copyHtoD(gpu.deviceId, gpu.pointerOf(id), m.bytes, sizeBytes);
        else await native.cuda.copyDtoH(gpu.deviceId, m.bytes, gpu.pointerOf(id), sizeBytes);
      } finally {
        if (pinned) await native.cuda.hostUnregister(gpu.deviceId, m.bytes);
      }
    } finally {
      m.release();
    }
    return true;
  };
}

/** Builds GPU tiers for the configured devices when CUDA is usable; says why not otherwise. */
export function gpuTiers(
  native: NativeApi,
  cfg: { enabled: boolean | "auto"; devices: readonly number[]; capacityBytes?: number | undefined },
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
    tiers: [new GpuTier(native.cuda, device, cfg.capacityBytes ?? Math.floor(total * 0.9))],
    reason: undefined,
  };
}
