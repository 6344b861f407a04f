import {
  type AgentRecord,
  type EvictionCandidate,
  isAgentLive,
  isPinLive,
  type PayloadId,
  type StorageTier,
  selectEvictions,
  spillTargetOf,
  type TierUsage,
  type UseCaseDeps,
} from "@pm/domain";
import type { JobHandler } from "@pm/queue";

/** What the catalog says about one agent's tier. */
export interface TierView {
  /** Bytes that will still be on the tier once in-flight work ends (settled, allocated, incoming). */
  stayingBytes: number;
  /** Bytes already on their way off it: moving away, being deleted, retired regions awaiting free. */
  leavingBytes: number;
  /** Settled payloads on the tier, with what may block their eviction. */
  readonly candidates: EvictionCandidate[];
}

const overHighWatermark = (t: TierUsage) => t.usedBytes > t.capacityBytes * t.highWatermark;

/**
 * Pressure tiering (product.md §6). For every live agent's tier whose heartbeat reports usage over
 * its high watermark, picks least-recently-accessed unpinned, unleased payloads, lower priority
 * first (the domain's selectEvictions), until usage falls to the low watermark, and queues an
 * `evict` move for each to its spill target (VOID deletes). The move job re-checks at run time.
 *
 * The heartbeat is a few seconds old, so the usage used for the decision is
 * min(reported − bytes already leaving, bytes the catalog says stay): work queued on an earlier
 * tick, and regions freed since the heartbeat, are not evicted for a second time.
 */
export const pressureJob: JobHandler<"pressure"> = async (deps, _payload, ctx) => {
  const now = deps.clock.now();
  const agents = await deps.catalog.transaction((tx) => tx.listAgents());
  let tiersOver = 0;
  let queued = 0;
  for (const agent of agents) {
    if (!isAgentLive(agent, now, deps.config.agentTtlMs)) continue;
    const hot = agent.tiers.filter(overHighWatermark);
    if (hot.length === 0) continue;
    const views = await tierViews(deps, agent, now);
    for (const usage of hot) {
      tiersOver++;
      const view = views.get(usage.tier) ?? { stayingBytes: 0, leavingBytes: 0, candidates: [] };
      const usedBytes = Math.max(0, Math.min(usage.usedBytes - view.leavingBytes, view.stayingBytes));
      const chosen = selectEvictions({ ...usage, usedBytes }, view.candidates);
      for (const p of chosen) {
        await deps.jobs.enqueue({
          name: "move",
          payloadId: p.id,
          toTier: spillTargetOf(p),
          reason: "evict",
          fsync: p.evictionPolicy.requireDurable,
          version: p.version,
        });
      }
      queued += chosen.length;
      ctx.log.info(
        {
          agentId: agent.agentId,
          tier: usage.tier,
          capacityBytes: usage.capacityBytes,
          reportedBytes: usage.usedBytes,
          effectiveBytes: usedBytes,
          evictions: chosen.length,
          eligible: view.candidates.length,
        },
        "tier over its high watermark",
      );
    }
  }
  return { tiersOverWatermark: tiersOver, evictionsQueued: queued };
};

/**
 * Builds the catalog's view of an agent's tiers in one transaction. The Catalog port has no
 * "payloads on agent X, tier T, with lease counts and pins" query, so this walks
 * placementsOnAgent and reads each payload, its live leases and pin: one round trip per payload.
 */
export async function tierViews(
  deps: UseCaseDeps,
  agent: AgentRecord,
  now: number,
): Promise<Map<StorageTier, TierView>> {
  return deps.catalog.transaction(async (tx) => {
    const views = new Map<StorageTier, TierView>();
    const view = (t: StorageTier) => {
      let v = views.get(t);
      if (!v) {
        v = { stayingBytes: 0, leavingBytes: 0, candidates: [] };
        views.set(t, v);
      }
      return v;
    };
    // A payload can hold several regions on one agent: its placement, a move's destination, and
    // regions retired by earlier moves.
    const regions = new Map<PayloadId, StorageTier[]>();
    for (const r of await tx.placementsOnAgent(agent.agentId)) {
      const list = regions.get(r.payloadId) ?? [];
      list.push(r.tier);
      regions.set(r.payloadId, list);
    }
    for (const [id, tiers] of regions) {
      const p = await tx.getPayload(id);
      // Retired regions of a deleted payload: their size is gone with the row; the sweep frees them.
      if (!p) continue;
      const take = (t: StorageTier) => {
        const i = tiers.indexOf(t);
        if (i >= 0) tiers.splice(i, 1);
        return i >= 0;
      };
      if (p.placement.agentId === agent.agentId && take(p.placement.tier)) {
        const v = view(p.placement.tier);
        if (p.state === "ACTIVE" || p.state === "DURABLE") {
          v.stayingBytes += p.sizeBytes;
          const pin = await tx.getPin(p.id);
          v.candidates.push({
            payload: p,
            liveLeases: (await tx.liveLeases(p.id, now)).length,
            pinned: pin !== undefined && isPinLive(pin, now),
          });
        } else if (p.state === "ALLOCATED") {
          v.stayingBytes += p.sizeBytes;
        } else {
          // SPILLING (moving off this tier), DELETING, EXPIRED.
          v.leavingBytes += p.sizeBytes;
        }
      }
      const pending = p.pendingPlacement;
      if (pending && pending.agentId === agent.agentId && take(pending.tier)) {
        view(pending.tier).stayingBytes += p.sizeBytes;
      }
      for (const t of tiers) view(t).leavingBytes += p.sizeBytes;
    }
    return views;
  });
}
