import type { Location, PayloadId, StorageTier } from "@pm/domain";

/** Thrown by a backend with a code the service maps to a wire code. */
export class TierError extends Error {
  constructor(
    readonly code: "FULL" | "EXISTS" | "NOT_FOUND" | "INVALID" | "IO" | "UNSUPPORTED",
    message: string,
  ) {
    super(message);
    this.name = "TierError";
  }
}

export interface RegionInfo {
  readonly payloadId: PayloadId;
  readonly location: Location;
  readonly sizeBytes: number;
}

/**
 * One storage tier on this host. Region names and paths are derived only from validated payload
 * ids; a backend never accepts a caller-supplied name or path.
 */
export interface TierBackend {
  readonly tier: StorageTier;
  readonly capacityBytes: number;
  usedBytes(): number;
  /** Creates a region of `sizeBytes` exclusively; FULL when over capacity, EXISTS when present. */
  create(id: PayloadId, sizeBytes: number): Promise<RegionInfo>;
  /** Frees a region; a missing one is fine. */
  free(id: PayloadId): Promise<void>;
  stat(id: PayloadId): Promise<RegionInfo | undefined>;
  /** Every region this backend holds (for reconciliation). */
  list(): Promise<RegionInfo[]>;
  /** Path of a file-backed region (RAM on tmpfs, DISK), for host-local copies; undefined otherwise. */
  filePath(id: PayloadId): string | undefined;
  /** Returns when the backend has released everything it holds open. */
  close(): Promise<void>;
}
