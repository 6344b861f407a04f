import type { PayloadId } from "@pm/domain";
import type { KnownRegions, Logger } from "./registration.ts";
import type { TierAgent } from "./tier-agent.ts";

export interface ReconcileReport {
  readonly adopted: number;
  readonly orphans: number;
  readonly freed: number;
}

/**
 * Matches the regions on this host with what the catalog knows. Known regions are adopted as they
 * are. Unknown ones (a crash between creating a region and storing its row, a payload deleted
 * while the agent was down) are freed only if they are still unknown after `graceMs`: an
 * allocation may be in flight when the first snapshot is taken.
 */
export async function reconcile(
  agent: TierAgent,
  fetchKnown: () => Promise<KnownRegions>,
  graceMs: number,
  log: Logger,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): Promise<ReconcileReport> {
  const known = await fetchKnown();
  const orphans: { id: PayloadId; tier: string }[] = [];
  let adopted = 0;
  for (const b of agent.tiers()) {
    for (const r of await b.list()) {
      if (known.has(`${r.payloadId}@${b.tier}`)) adopted++;
      else orphans.push({ id: r.payloadId, tier: b.tier });
    }
  }
  if (orphans.length === 0) return { adopted, orphans: 0, freed: 0 };
  log.info(
    { orphans: orphans.length, graceMs },
    "regions unknown to the catalog; freeing them after the grace period",
  );
  await sleep(graceMs);
  const stillKnown = await fetchKnown();
  let freed = 0;
  for (const o of orphans) {
    if (stillKnown.has(`${o.id}@${o.tier}`)) continue;
    const backend = agent.tiers().find((b) => b.tier === o.tier);
    if (!backend) continue;
    await backend.free(o.id);
    freed++;
  }
  log.info({ adopted, freed }, "reconciliation finished");
  return { adopted, orphans: orphans.length, freed };
}
