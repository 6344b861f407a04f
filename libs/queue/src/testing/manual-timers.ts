import type { TimerHandle, Timers } from "../timers.ts";

/** The clock ManualTimers moves; `FakeClock` from `@pm/domain/testing` fits. */
export interface AdvanceableClock {
  now(): number;
  advance(ms: number): void;
}

interface Pending {
  readonly seq: number;
  readonly dueAt: number;
  readonly fn: () => void;
}

/**
 * Timers that fire only when a test advances a fake clock, in due order, with the clock set to
 * each timer's due time when it fires. `advance` lets the work each timer started settle before
 * firing the next, so a test of delays, retries and periodic jobs runs deterministically and fast.
 */
export class ManualTimers implements Timers {
  private readonly pending = new Map<number, Pending>();
  private seq = 0;

  constructor(private readonly clock: AdvanceableClock) {}

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const seq = ++this.seq;
    this.pending.set(seq, { seq, dueAt: this.clock.now() + Math.max(0, ms), fn });
    return seq;
  }

  clearTimeout(handle: TimerHandle): void {
    this.pending.delete(handle as number);
  }

  /** Timers not yet fired. */
  get size(): number {
    return this.pending.size;
  }

  /**
   * Moves the clock forward by `ms`, firing every timer that falls due on the way (including ones
   * those timers set), each followed by `settle` (e.g. `() => queue.idle()`).
   */
  async advance(ms: number, settle: () => Promise<void> = flush): Promise<void> {
    const end = this.clock.now() + ms;
    // Work already started may still set timers that fall due within this advance.
    await settle();
    for (;;) {
      const next = this.nextDue(end);
      if (!next) break;
      this.pending.delete(next.seq);
      if (next.dueAt > this.clock.now()) this.clock.advance(next.dueAt - this.clock.now());
      next.fn();
      await settle();
    }
    if (end > this.clock.now()) this.clock.advance(end - this.clock.now());
    await settle();
  }

  private nextDue(end: number): Pending | undefined {
    let best: Pending | undefined;
    for (const p of this.pending.values()) {
      if (p.dueAt > end) continue;
      if (!best || p.dueAt < best.dueAt || (p.dueAt === best.dueAt && p.seq < best.seq)) best = p;
    }
    return best;
  }
}

/** Lets queued promise callbacks run (everything short of real I/O and real timers). */
function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
