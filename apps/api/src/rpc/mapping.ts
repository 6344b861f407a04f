import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { locationToPb } from "@pm/agents";
import {
  type DescriptorView,
  DomainError,
  type EvictionPolicy,
  type EvictionPriority,
  idFromBytes,
  invalidArgument,
  type LeaseId,
  type PayloadId,
  type PayloadState,
  type StorageTier,
  type Tier,
  uuidToBytes,
} from "@pm/domain";
import {
  EvictionPolicySchema,
  LeaseIDSchema,
  type PayloadDescriptor,
  PayloadDescriptorSchema,
  type PayloadID,
  PayloadIDSchema,
  type EvictionPolicy as PbEvictionPolicy,
  EvictionPriority as PbPriority,
  PromotionPolicy as PbPromotion,
  SpillPolicy as PbSpill,
  PayloadState as PbState,
  Tier as PbTier,
} from "@pm/rpc";

// Proto types stop here: everything below converts between the wire schema and the domain.

const TIER_FROM_PB: Record<number, Tier> = {
  [PbTier.GPU]: "GPU",
  [PbTier.RAM]: "RAM",
  [PbTier.DISK]: "DISK",
  [PbTier.OBJECT]: "OBJECT",
  [PbTier.VOID]: "VOID",
};
const TIER_TO_PB: Record<Tier, PbTier> = {
  GPU: PbTier.GPU,
  RAM: PbTier.RAM,
  DISK: PbTier.DISK,
  OBJECT: PbTier.OBJECT,
  VOID: PbTier.VOID,
};

/** UNSPECIFIED → undefined; unknown numbers (proto3 enums are open) → INVALID_ARGUMENT. */
export function tierFromPb(t: PbTier, field: string): Tier | undefined {
  if (t === PbTier.UNSPECIFIED) return undefined;
  const tier = TIER_FROM_PB[t];
  if (!tier)
    throw invalidArgument(
      `${field} has unknown tier value ${t}; use TIER_GPU, TIER_RAM, TIER_DISK, TIER_OBJECT or TIER_VOID`,
      { field },
    );
  return tier;
}

export function storageTierFromPb(t: PbTier, field: string): StorageTier | undefined {
  const tier = tierFromPb(t, field);
  if (tier === "VOID") throw invalidArgument(`${field} cannot be TIER_VOID here`, { field });
  return tier;
}

export const tierToPb = (t: Tier): PbTier => TIER_TO_PB[t];

const STATE_TO_PB: Record<PayloadState, PbState> = {
  ALLOCATED: PbState.ALLOCATED,
  ACTIVE: PbState.ACTIVE,
  SPILLING: PbState.SPILLING,
  DURABLE: PbState.DURABLE,
  DELETING: PbState.DELETING,
  EXPIRED: PbState.EXPIRED,
};
export const stateToPb = (s: PayloadState): PbState => STATE_TO_PB[s];

export function stateFromPb(s: PbState, field: string): PayloadState | undefined {
  if (s === PbState.UNSPECIFIED) return undefined;
  const found = (Object.entries(STATE_TO_PB) as [PayloadState, PbState][]).find(([, v]) => v === s);
  if (!found) {
    throw invalidArgument(
      `${field} value ${s} is not a state payloads can be listed by (ALLOCATED, ACTIVE, SPILLING, DURABLE, DELETING, EXPIRED)`,
      { field },
    );
  }
  return found[0];
}

const PRIORITY_FROM_PB: Record<number, EvictionPriority> = {
  [PbPriority.UNSPECIFIED]: "NORMAL",
  [PbPriority.LOW]: "LOW",
  [PbPriority.NORMAL]: "NORMAL",
  [PbPriority.HIGH]: "HIGH",
  [PbPriority.NEVER]: "NEVER",
};
const PRIORITY_TO_PB: Record<EvictionPriority, PbPriority> = {
  LOW: PbPriority.LOW,
  NORMAL: PbPriority.NORMAL,
  HIGH: PbPriority.HIGH,
  NEVER: PbPriority.NEVER,
};

export function evictionPolicyFromPb(p: PbEvictionPolicy | undefined): EvictionPolicy | undefined {
  if (!p) return undefined;
  const priority = PRIORITY_FROM_PB[p.priority];
  if (!priority)
    throw invalidArgument(`eviction_policy.priority has unknown value ${p.priority}`, {
      field: "eviction_policy.priority",
    });
  return {
    priority,
    requireDurable: p.requireDurable,
    spillTarget: tierFromPb(p.spillTarget, "eviction_policy.spill_target"),
    minResidencyTier: storageTierFromPb(p.minResidencyTier, "eviction_policy.min_residency_tier"),
  };
}

export function evictionPolicyToPb(p: EvictionPolicy): PbEvictionPolicy {
  return create(EvictionPolicySchema, {
    priority: PRIORITY_TO_PB[p.priority],
    requireDurable: p.requireDurable,
    spillTarget: p.spillTarget ? TIER_TO_PB[p.spillTarget] : PbTier.UNSPECIFIED,
    minResidencyTier: p.minResidencyTier ? TIER_TO_PB[p.minResidencyTier] : PbTier.UNSPECIFIED,
  });
}

export function promotionFromPb(p: PbPromotion): "BEST_EFFORT" | "BLOCKING" {
  if (p === PbPromotion.BLOCKING) return "BLOCKING";
  if (p === PbPromotion.BEST_EFFORT || p === PbPromotion.UNSPECIFIED) return "BEST_EFFORT";
  throw invalidArgument(`promotion policy has unknown value ${p}`, { field: "policy" });
}

export function spillPolicyFromPb(p: PbSpill): "BEST_EFFORT" | "BLOCKING" {
  if (p === PbSpill.BLOCKING) return "BLOCKING";
  if (p === PbSpill.BEST_EFFORT || p === PbSpill.UNSPECIFIED) return "BEST_EFFORT";
  throw invalidArgument(`spill policy has unknown value ${p}`, { field: "policy" });
}

export const payloadIdFromPb = (id: PayloadID | undefined, field = "id"): PayloadId =>
  idFromBytes(id?.value, field) as PayloadId;
export const leaseIdFromPb = (id: { value: Uint8Array } | undefined, field = "lease_id"): LeaseId =>
  idFromBytes(id?.value, field) as LeaseId;
export const payloadIdToPb = (id: string): PayloadID => create(PayloadIDSchema, { value: uuidToBytes(id) });
export const leaseIdToPb = (id: string) => create(LeaseIDSchema, { value: uuidToBytes(id) });

export const msToTimestamp = (ms: number): Timestamp => timestampFromMs(ms);
export const timestampToMs = (t: Timestamp | undefined): number | undefined =>
  t ? timestampDate(t).getTime() : undefined;

/** Converts a uint64 from the wire to a JS number, refusing values past 2^53. */
export function u64(v: bigint, field: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw invalidArgument(`${field} ${v} is too large`, { field });
  }
  return Number(v);
}

export function descriptorToPb(view: DescriptorView): PayloadDescriptor {
  const p = view.payload;
  const pl = p.placement;
  return create(PayloadDescriptorSchema, {
    payloadId: payloadIdToPb(p.id),
    tier: TIER_TO_PB[pl.tier],
    state: STATE_TO_PB[p.state],
    location: locationToPb(pl.location, pl.lengthBytes, view.url ?? "", view.urlExpiresAt),
    version: BigInt(p.version),
    createdAt: msToTimestamp(p.createdAt),
    expiresAt: p.expiresAt === undefined ? undefined : msToTimestamp(p.expiresAt),
    evictionPolicy: evictionPolicyToPb(p.evictionPolicy),
    agentId: pl.agentId,
    host: pl.host,
    sizeBytes: BigInt(p.sizeBytes),
  });
}

export const unimplemented = (what: string): DomainError =>
  new DomainError("UNIMPLEMENTED", `${what} is not implemented by this server yet`);
