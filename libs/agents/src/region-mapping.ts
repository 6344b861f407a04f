import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Location, Placement, StorageTier } from "@pm/domain";
import {
  DiskLocationSchema,
  GpuLocationSchema,
  ObjectLocationSchema,
  RamLocationSchema,
  type Region,
  RegionSchema,
  Tier,
} from "@pm/rpc";

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

/** The `location` oneof shared by descriptors and agent regions (core.v1 location messages). */
export type LocationPb = Region["location"];

/**
 * The wire form of a location. `url`/`urlExpiresAtMs` fill an object location's presigned URL
 * (descriptors); agents leave them empty.
 */
export function locationToPb(
  l: Location,
  lengthBytes: number,
  url = "",
  urlExpiresAtMs?: number,
): LocationPb {
  const length = BigInt(lengthBytes);
  switch (l.kind) {
    case "ram":
      return {
        case: "ram",
        value: create(RamLocationSchema, {
          shmName: l.shmName,
          slabId: 0,
          blockIndex: 0n,
          lengthBytes: length,
        }),
      };
    case "disk":
      return {
        case: "disk",
        value: create(DiskLocationSchema, {
          path: l.path,
          offsetBytes: BigInt(l.offsetBytes),
          lengthBytes: length,
        }),
      };
    case "gpu":
      return {
        case: "gpu",
        value: create(GpuLocationSchema, {
          deviceId: l.deviceId,
          ipcHandle: l.ipcHandle,
          lengthBytes: length,
        }),
      };
    case "object":
      return {
        case: "object",
        value: create(ObjectLocationSchema, {
          bucket: l.bucket,
          key: l.key,
          url,
          urlExpiresAt: urlExpiresAtMs === undefined ? undefined : timestampFromMs(urlExpiresAtMs),
          lengthBytes: length,
        }),
      };
  }
}

/** A region message for a location (used by agents to answer). */
export function regionOf(payloadId: Uint8Array, tier: StorageTier, sizeBytes: number, l: Location): Region {
  return create(RegionSchema, {
    payloadId: { value: payloadId },
    tier: TIER_TO_PB[tier],
    sizeBytes: BigInt(sizeBytes),
    location: locationToPb(l, sizeBytes),
  });
}
