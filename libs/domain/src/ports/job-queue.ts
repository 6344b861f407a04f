import type { PayloadId } from "../model/ids.ts";
import type { Tier } from "../model/tier.ts";

/** Work the domain hands to the worker. Job ids are deterministic so duplicates collapse. */
export type DomainJob =
  | { readonly name: "finalize-deletion"; readonly payloadId: PayloadId }
  | {
      readonly name: "move";
      readonly payloadId: PayloadId;
      readonly toTier: Tier;
      readonly reason: "spill" | "promote" | "prefetch" | "evict";
      readonly fsync: boolean;
      /** Version the move was decided on; a stale job is a no-op. */
      readonly version: number;
    };

export function jobIdOf(job: DomainJob): string {
  switch (job.name) {
    case "finalize-deletion":
      return `finalize-deletion:${job.payloadId}`;
    case "move":
      return `move:${job.payloadId}:${job.version}:${job.toTier}`;
  }
}

export interface JobQueue {
  /** Enqueues a job; `delayMs` postpones it. Enqueuing a job id that is pending is a no-op. */
  enqueue(job: DomainJob, opts?: { readonly delayMs?: number }): Promise<void>;
}
