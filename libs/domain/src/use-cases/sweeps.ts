import type { UseCaseDeps } from "./deps.ts";
import { expirePayload, finalizeDeletion, reapAbandoned } from "./lifecycle.ts";
import { freeRetiredRegions, repairStuckMove } from "./tiering.ts";

export interface SweepReport {
  readonly expired: number;
  readonly reaped: number;
  readonly finalized: number;
  readonly leasesSwept: number;
  readonly regionsFreed: number;
  /** Moves stuck SPILLING past `moveTimeoutMs` that were rolled back (pending region freed). */
  readonly movesRepaired: number;
}

/**
 * One pass of housekeeping: TTL expiry, abandoned-allocation reaping, finishing deletions whose
 * leases ended, sweeping expired leases and freeing retired regions. Idempotent; each step is
 * bounded by `batch` so a pass stays short. The worker runs it periodically; it also repairs what a
 * crash left behind (a payload stuck DELETING, a region retired but never freed, a payload stuck
 * SPILLING with a partial copy in its pending region).
 */
export async function sweep(deps: UseCaseDeps, batch = 500): Promise<SweepReport> {
  const now = deps.clock.now();
  const ids = await deps.catalog.transaction(async (tx) => ({
    expired: await tx.findExpired(now, batch),
    abandoned: await tx.findAbandoned(now - deps.config.allocationTimeoutMs, batch),
  }));
  let expired = 0;
  for (const id of ids.expired) if (await expirePayload(deps, id)) expired++;
  let reaped = 0;
  for (const id of ids.abandoned) if (await reapAbandoned(deps, id)) reaped++;
  const deleting = await deps.catalog.transaction((tx) => tx.findDeleting(batch));
  let finalized = 0;
  for (const id of deleting) if ((await finalizeDeletion(deps, id)).status === "done") finalized++;
  const leasesSwept = await deps.catalog.transaction((tx) => tx.deleteExpiredLeases(deps.clock.now(), batch));
  const regionsFreed = await freeRetiredRegions(deps, batch);
  const stuckBefore = deps.clock.now() - deps.config.moveTimeoutMs;
  const stuck = await deps.catalog.transaction((tx) => tx.findStuckMoves(stuckBefore, batch));
  let movesRepaired = 0;
  for (const id of stuck) {
    // One agent or the object store being down must not stop the rest of the pass.
    const outcome = await repairStuckMove(deps, id, stuckBefore).catch(() => "failed");
    if (outcome === "repaired") movesRepaired++;
  }
  return { expired, reaped, finalized, leasesSwept, regionsFreed, movesRepaired };
}
