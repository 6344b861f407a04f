import type { StorageTier } from "./tier.ts";

/** Where a payload's bytes are. One variant per storage tier. */
export type Location =
  | { readonly kind: "gpu"; readonly deviceId: number; readonly ipcHandle: Uint8Array }
  | { readonly kind: "ram"; readonly shmName: string }
  | { readonly kind: "disk"; readonly path: string; readonly offsetBytes: number }
  | { readonly kind: "object"; readonly bucket: string; readonly key: string };

/** A region that holds a payload's bytes: which tier, which agent, which location. */
export interface Placement {
  readonly tier: StorageTier;
  /** Tier agent that owns the region; empty for the object store. */
  readonly agentId: string;
  readonly host: string;
  readonly location: Location;
  readonly lengthBytes: number;
}

export function locationTier(l: Location): StorageTier {
  switch (l.kind) {
    case "gpu":
      return "GPU";
    case "ram":
      return "RAM";
    case "disk":
      return "DISK";
    case "object":
      return "OBJECT";
  }
}
