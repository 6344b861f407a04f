import { type MapOptions, mapFile, mapShm, type RegionMapping } from "@pm/native";
import { type PayloadDescriptor, Tier } from "@pm/rpc";

/**
 * Maps the bytes a descriptor points at into this process, without copying them: a RAM region is a
 * POSIX shm segment (or, on a huge-page tmpfs, a file path), a DISK region a file at an offset.
 * `offset`/`length` select a window of the payload (for payloads larger than memory).
 */
export function mapDescriptor(
  d: PayloadDescriptor,
  opts: { writable: boolean; offset?: number; length?: number; prefault?: boolean },
): RegionMapping {
  const size = Number(d.sizeBytes);
  const offset = opts.offset ?? 0;
  const length = opts.length ?? size - offset;
  const map: MapOptions = {
    writable: opts.writable,
    offset,
    length,
    prefault: opts.prefault ?? !opts.writable,
  };
  switch (d.location.case) {
    case "ram": {
      const name = d.location.value.shmName;
      // A name with a second "/" is an absolute path on a huge-page tmpfs rather than an shm name.
      return name.indexOf("/", 1) === -1 ? mapShm(name, map) : mapFile(name, map);
    }
    case "disk":
      return mapFile(d.location.value.path, {
        ...map,
        offset: Number(d.location.value.offsetBytes) + offset,
      });
    default:
      throw new Error(
        `payload is on ${Tier[d.tier]}, which cannot be mapped into host memory; use the GPU helpers or the object URL, or lease with min_tier TIER_RAM`,
      );
  }
}
