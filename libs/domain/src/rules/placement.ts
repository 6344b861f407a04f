import type { AgentRecord } from "../model/catalog-records.ts";
import type { StorageTier } from "../model/tier.ts";

export interface PlacementRequest {
  readonly tier: StorageTier;
  readonly sizeBytes: number;
  readonly preferredHost: string | undefined;
  readonly now: number;
  /** An agent whose last heartbeat is older than this is considered dead. */
  readonly agentTtlMs: number;
}

export type PlacementDecision =
  | { readonly ok: true; readonly agents: readonly AgentRecord[] }
  | { readonly ok: false; readonly reason: "NO_AGENT" | "NO_CAPACITY"; readonly message: string };

export const isAgentLive = (a: AgentRecord, now: number, ttlMs: number): boolean =>
  now - a.lastHeartbeatAt <= ttlMs;

/**
 * Orders the live agents that could hold the region, best first: the hinted host first, then the
 * most free bytes on the tier. The caller tries them in order (an agent may still refuse if its
 * heartbeat was stale).
 */
export function chooseAgents(agents: readonly AgentRecord[], req: PlacementRequest): PlacementDecision {
  const withTier = agents
    .filter((a) => isAgentLive(a, req.now, req.agentTtlMs))
    .flatMap((a) => {
      const t = a.tiers.find((u) => u.tier === req.tier);
      return t ? [{ agent: a, free: t.capacityBytes - t.usedBytes }] : [];
    });
  if (withTier.length === 0) {
    return {
      ok: false,
      reason: "NO_AGENT",
      message: `no live tier agent offers the ${req.tier} tier; start a tier agent with that tier enabled or allocate on another tier`,
    };
  }
  const fitting = withTier.filter((c) => c.free >= req.sizeBytes);
  if (fitting.length === 0) {
    const most = Math.max(...withTier.map((c) => c.free));
    return {
      ok: false,
      reason: "NO_CAPACITY",
      message: `no agent has ${req.sizeBytes} bytes free on the ${req.tier} tier (largest free: ${Math.max(0, most)} bytes); free or spill payloads, or allocate on a slower tier`,
    };
  }
  fitting.sort((x, y) => {
    const hx = req.preferredHost && x.agent.host === req.preferredHost ? 0 : 1;
    const hy = req.preferredHost && y.agent.host === req.preferredHost ? 0 : 1;
    return hx - hy || y.free - x.free || x.agent.agentId.localeCompare(y.agent.agentId);
  });
  return { ok: true, agents: fitting.map((c) => c.agent) };
}
