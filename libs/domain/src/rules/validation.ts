import { invalidArgument } from "../errors.ts";
import type { StorageTier, Tier } from "../model/tier.ts";

export const GIB = 1024 ** 3;
/** Largest payload the product accepts (product.md §4). */
export const MAX_PAYLOAD_BYTES = 128 * GIB;

export function validateSize(sizeBytes: number): void {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 1) {
    throw invalidArgument(`size_bytes must be at least 1 byte, got ${sizeBytes}`, { field: "size_bytes" });
  }
  if (sizeBytes > MAX_PAYLOAD_BYTES) {
    throw invalidArgument(
      `size_bytes ${sizeBytes} exceeds the 128 GiB limit (${MAX_PAYLOAD_BYTES}); split the payload into parts and link them with lineage`,
      { field: "size_bytes" },
    );
  }
}

export function validateAllocationTier(tier: Tier | undefined): StorageTier {
  if (tier === undefined) {
    throw invalidArgument("preferred_tier is required: one of TIER_GPU, TIER_RAM, TIER_DISK, TIER_OBJECT", {
      field: "preferred_tier",
    });
  }
  if (tier === "VOID") {
    throw invalidArgument(
      "TIER_VOID cannot be allocated: it only names a spill destination that discards bytes",
      {
        field: "preferred_tier",
      },
    );
  }
  return tier;
}

/** Checksums are `<algorithm>:<hex>`; the algorithm is free text, the digest is hex. */
export function validateChecksum(checksum: string): void {
  if (checksum === "") return;
  if (!/^[a-z0-9-]{1,32}:[0-9a-f]{8,256}$/.test(checksum)) {
    throw invalidArgument(
      `checksum "${checksum.slice(0, 80)}" must look like <algorithm>:<lowercase hex>, e.g. sha256:9f86d08…`,
      { field: "checksum" },
    );
  }
}
