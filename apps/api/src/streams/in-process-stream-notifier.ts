import type { StreamNotifier } from "@pm/domain";

/**
 * Stream notifications inside one process: a map of listener sets, no I/O, no Node APIs, so it
 * runs wherever `createApp` does. Reaches only subscribers of this process (and of this isolate in
 * Workers); other replicas' subscribers pick changes up on their fallback re-check until a
 * cross-replica notifier (Postgres LISTEN/NOTIFY) is wired instead.
 */
export class InProcessStreamNotifier implements StreamNotifier {
  private readonly listeners = new Map<string, Set<{ readonly fn: () => void }>>();

  subscribe(streamKey: string, listener: () => void): () => void {
    const entry = { fn: listener };
    let set = this.listeners.get(streamKey);
    if (!set) {
      set = new Set();
      this.listeners.set(streamKey, set);
    }
    set.add(entry);
    return () => {
      const current = this.listeners.get(streamKey);
      if (!current) return;
      current.delete(entry);
      if (current.size === 0) this.listeners.delete(streamKey);
    };
  }

  async notify(streamKey: string): Promise<void> {
    const set = this.listeners.get(streamKey);
    if (!set) return;
    for (const { fn } of [...set]) {
      try {
        fn();
      } catch {
        // A listener only flags its subscriber for a re-read; one failing must not starve the rest.
      }
    }
  }

  /** How many subscriptions are registered, over all streams (tests, metrics). */
  get subscriberCount(): number {
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }
}
