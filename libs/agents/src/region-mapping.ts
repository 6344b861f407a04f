import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Location, Placement, StorageTier } from "@pm/domain";
import { type Region, RegionSchema, Tier } from "@pm/rpc";

const TIER_OF: Record<number, StorageTier> = {
  [Tier.GPU]: "GPU",
  [Tier.RAM]: "RAM",
  [Tier.DISK]: "DISK",
  [Tier.OBJECT]: "OBJECT",
};
export const TIER_TO_PB: Record<StorageTier, Tier> = {
  GPU: Tier.GPU,
  RAM: Tier.RAM,
  DISK: Tier.DISK,
  OBJECT: Tier.OBJECT,
};

export function tierOfPb(t: Tier): StorageTier {
  const tier = TIER_OF[t];
  if (!tier) throw new Error(`agent answered with tier ${t}, which is not a storage tier`);
  return tier;
}

/** The location an agent reported for a region, as the domain records it. */
export function locationFromRegion(r: Region): Location {
  switch (r.location.case) {
    case "ram":
      return { kind: "ram", shmName: r.location.value.shmName };
    case "disk":
      return { kind: "disk", path: r.location.value.path, offsetBytes: Number(r.location.value.offsetBytes) };
    case "gpu":
      return { kind: "gpu", deviceId: r.location.value.deviceId, ipcHandle: r.location.value.ipcHandle };
    case "object":
      return { kind: "object", bucket: r.location.value.bucket, key: r.location.value.key };
    default:
      throw new Error("agent answered with a region that has no location");
  }
}

export function placementFromRegion(r: Region, agentId: string, host: string): Placement {
  return {
    tier: tierOfPb(r.tier),
    agentId,
    host,
    location: locationFromRegion(r),
    lengthBytes: Number(r.sizeBytes),
  };
}

/** A region message for a location (used by agents to answer). */
export function regionOf(payloadId: Uint8Array, tier: StorageTier, sizeBytes: number, l: Location): Region {
  const length = BigInt(sizeBytes);
  let location: Region["location"];
  switch (l.kind) {
    case "ram":
      location = {
        case: "ram",
        value: {
          $typeName: "payload.manager.core.v1.RamLocation",
          shmName: l.shmName,
          slabId: 0,
          blockIndex: 0n,
          lengthBytes: length,
        },
      };
      break;
    case "disk":
      location = {
        case: "disk",
        value: {
          $typeName: "payload.manager.core.v1.DiskLocation",
          path: l.path,
          offsetBytes: BigInt(l.offsetBytes),
          lengthBytes: length,
        },
      };
      break;
    case "gpu":
      location = {
        case: "gpu",
        value: {
          $typeName: "payload.manager.core.v1.GpuLocation",
          deviceId: l.deviceId,
          ipcHandle: l.ipcHandle,
          lengthBytes: length,
        },
      };
      break;
    case "object":
      location = {
        case: "object",
        value: {
          $typeName: "payload.manager.core.v1.ObjectLocation",
          bucket: l.bucket,
          key: l.key,
          url: "",
          urlExpiresAt: timestampFromMs(0),
          lengthBytes: length,
        },
      };
      break;
  }
  return create(RegionSchema, {
    payloadId: { value: payloadId },
    tier: TIER_TO_PB[tier],
    sizeBytes: length,
    location,
  });
}
