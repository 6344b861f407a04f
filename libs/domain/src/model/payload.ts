import type { PayloadId } from "./ids.ts";
import type { Placement } from "./placement.ts";
import type { StorageTier, Tier } from "./tier.ts";

/**
 * Lifecycle states. ALLOCATED → ACTIVE (GPU/RAM) or DURABLE (DISK/OBJECT); SPILLING while a move is
 * in flight (still readable from the source); DELETING while bytes are freed; EXPIRED when TTL fired.
 */
export type PayloadState = "ALLOCATED" | "ACTIVE" | "SPILLING" | "DURABLE" | "DELETING" | "EXPIRED";

export type EvictionPriority = "LOW" | "NORMAL" | "HIGH" | "NEVER";

export interface EvictionPolicy {
  readonly priority: EvictionPriority;
  readonly requireDurable: boolean;
  /** Where to go when displaced; undefined = next slower tier. */
  readonly spillTarget: Tier | undefined;
  /** Keep on this tier or a faster one; undefined = no floor. */
  readonly minResidencyTier: StorageTier | undefined;
}

export const DEFAULT_EVICTION_POLICY: EvictionPolicy = {
  priority: "NORMAL",
  requireDurable: false,
  spillTarget: undefined,
  minResidencyTier: undefined,
};

/** One payload row of the catalog. Times are Unix epoch milliseconds. */
export interface Payload {
  readonly id: PayloadId;
  /** Tenant namespace the payload belongs to. */
  readonly namespace: string;
  readonly sizeBytes: number;
  readonly state: PayloadState;
  /** Fencing token: +1 on every state or placement change. */
  readonly version: number;
  readonly placement: Placement;
  /** Destination region while SPILLING (the move's target), else undefined. */
  readonly pendingPlacement: Placement | undefined;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly expiresAt: number | undefined;
  readonly lastAccessAt: number;
  readonly noEvict: boolean;
  readonly evictionPolicy: EvictionPolicy;
  /** Writer-reported checksum (`<algorithm>:<hex>`), if any. */
  readonly checksum: string | undefined;
}

/** States in which a read lease may be granted and a descriptor is readable. */
export const READABLE_STATES: ReadonlySet<PayloadState> = new Set<PayloadState>([
  "ACTIVE",
  "SPILLING",
  "DURABLE",
]);

export const isReadable = (p: Payload): boolean => READABLE_STATES.has(p.state);
