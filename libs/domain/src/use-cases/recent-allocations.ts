import type { PayloadId } from "../model/ids.ts";
import type { Payload } from "../model/payload.ts";

/**
 * The payloads this process allocated and that have not been committed yet, as it stored them,
 * so that CommitPayload can skip reading the row back: it compare-and-sets against the
 * remembered row (version, state and updatedAt), and reads the row only if that fails (the
 * payload changed meanwhile: reaped, deleted) or nothing is remembered (the commit came to
 * another replica, the entry was evicted or has expired). The compare-and-set is what decides;
 * a stale entry costs one failed attempt, never a wrong answer.
 *
 * Bounded: the oldest entries go first beyond `capacity`, and an entry older than `maxAgeMs` is
 * not used (an allocation not committed in time is reaped anyway).
 */
export class RecentAllocations {
  private readonly entries = new Map<PayloadId, { readonly payload: Payload; readonly at: number }>();

  constructor(
    private readonly capacity: number,
    private readonly maxAgeMs: number,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  remember(payload: Payload, now: number): void {
    this.entries.delete(payload.id);
    this.entries.set(payload.id, { payload, at: now });
    if (this.entries.size > this.capacity) {
      // Maps iterate in insertion order: the first key is the oldest entry.
      this.entries.delete(this.entries.keys().next().value as PayloadId);
    }
  }

  /** The remembered row of `id` (forgotten on the way), unless there is none or it is too old. */
  take(id: PayloadId, now: number): Payload | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    this.entries.delete(id);
    return now - e.at <= this.maxAgeMs ? e.payload : undefined;
  }
}
