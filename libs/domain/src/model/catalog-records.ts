import type { PayloadId } from "./ids.ts";
import type { StorageTier } from "./tier.ts";

export interface PayloadMetadata {
  readonly payloadId: PayloadId;
  readonly data: Uint8Array;
  readonly schema: string;
  readonly updatedAt: number;
}

export interface MetadataEvent {
  readonly payloadId: PayloadId;
  /** Monotonic per catalog; orders events recorded in the same millisecond. */
  readonly seq: number;
  readonly ts: number;
  readonly data: Uint8Array;
  readonly schema: string;
  readonly source: string;
  readonly version: string;
}

export interface LineageEdge {
  readonly parent: PayloadId;
  readonly child: PayloadId;
  readonly operation: string;
  readonly role: string;
  readonly parameters: Uint8Array;
}

export interface TierUsage {
  readonly tier: StorageTier;
  readonly capacityBytes: number;
  readonly usedBytes: number;
  readonly highWatermark: number;
  readonly lowWatermark: number;
}

/** A tier agent as the control plane knows it (from register + heartbeats). */
export interface AgentRecord {
  readonly agentId: string;
  readonly host: string;
  readonly endpoint: string;
  readonly tiers: readonly TierUsage[];
  readonly lastHeartbeatAt: number;
  readonly registeredAt: number;
}

export interface TierStats {
  readonly tier: StorageTier;
  readonly payloads: number;
  readonly bytes: number;
}
