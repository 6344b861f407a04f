import type { TierUsage } from "../model/catalog-records.ts";
import type { EvictionPriority, Payload } from "../model/payload.ts";
import { isFaster, nextSlower, type Tier } from "../model/tier.ts";

/**
 * Access times are kept to this resolution: a lease within it of the recorded access does not
 * rewrite the payload row. Eviction orders by least recent access, where a second is plenty, and a
 * hot payload then costs one row write per second instead of one per lease.
 */
export const ACCESS_TIME_RESOLUTION_MS = 1_000;

export interface EvictionCandidate {
  readonly payload: Payload;
  readonly liveLeases: number;
  readonly pinned: boolean;
}

const PRIORITY_ORDER: Record<EvictionPriority, number> = { LOW: 0, NORMAL: 1, HIGH: 2, NEVER: 3 };

/**
 * Where a displaced payload goes: its own spill target, else the next slower tier. A spill target
 * that is no longer slower than where the payload is (it was already displaced there, or moved
 * past it) cannot take it further down, so the next slower tier applies.
 */
export function spillTargetOf(p: Payload): Tier {
  const own = p.evictionPolicy.spillTarget;
  return own !== undefined && isFaster(p.placement.tier, own) ? own : nextSlower(p.placement.tier);
}

/** Why a payload may not be moved off its tier automatically, or undefined when it may. */
export function evictionBlocker(c: EvictionCandidate): string | undefined {
  const p = c.payload;
  if (p.noEvict || p.evictionPolicy.priority === "NEVER") return "no-evict";
  if (c.pinned) return "pinned";
  if (c.liveLeases > 0) return "leased";
  if (p.state !== "ACTIVE" && p.state !== "DURABLE") return `state ${p.state}`;
  const target = spillTargetOf(p);
  const floor = p.evictionPolicy.minResidencyTier;
  if (floor && target !== "VOID" && isFaster(floor, target)) return "min-residency";
  if (target === "VOID" && p.evictionPolicy.requireDurable) return "require-durable";
  return undefined;
}

/**
 * Picks what to evict from a tier over its high watermark: lower priority first, then least
 * recently accessed, skipping pinned, leased and no-evict payloads, until usage would fall to the
 * low watermark. Returns nothing when usage is at or under the high watermark.
 */
export function selectEvictions(usage: TierUsage, candidates: readonly EvictionCandidate[]): Payload[] {
  const high = usage.capacityBytes * usage.highWatermark;
  if (usage.usedBytes <= high) return [];
  const target = usage.capacityBytes * usage.lowWatermark;
  const eligible = candidates
    .filter((c) => c.payload.placement.tier === usage.tier && evictionBlocker(c) === undefined)
    .map((c) => c.payload)
    .sort(
      (a, b) =>
        PRIORITY_ORDER[a.evictionPolicy.priority] - PRIORITY_ORDER[b.evictionPolicy.priority] ||
        a.lastAccessAt - b.lastAccessAt ||
        a.id.localeCompare(b.id),
    );
  const chosen: Payload[] = [];
  let used = usage.usedBytes;
  for (const p of eligible) {
    if (used <= target) break;
    chosen.push(p);
    used -= p.sizeBytes;
  }
  return chosen;
}
