import {
  openSubscription,
  type RequestContext,
  readSubscription,
  type StreamDeps,
  type StreamEntry,
  type StreamIdInput,
  SUBSCRIBE_BATCH,
  type SubscribeStart,
} from "@pm/domain";

/**
 * How long a subscriber waits without a notification before it looks anyway. Notifications are
 * the fast path; this slow re-check only heals lost ones (a notifier connection that dropped, an
 * append on a replica the notifier does not reach), bounding their delay.
 */
export const SUBSCRIBE_FALLBACK_MS = 5_000;

export interface FollowOptions {
  /** Ends the feed (normally) when aborted: the client went away or the server shuts down. */
  readonly signal: AbortSignal;
  readonly fallbackMs?: number;
  readonly batch?: number;
}

/**
 * Subscribe's feed: replays from the requested start, then follows the stream live. Between reads
 * it sleeps until the notifier reports a change of this stream (or the fallback timer fires), then
 * re-reads from its own last offset — so there is no per-subscriber polling loop, and a missed or
 * coalesced notification costs only delay, never an entry. Ends with STREAM_NOT_FOUND once the
 * stream is deleted (deletes notify too). Backpressure comes from the consumer: the next batch is
 * read only after the previous one was taken, so `max_inflight` is not needed and is ignored.
 */
export async function* followStream(
  deps: StreamDeps,
  ctx: RequestContext,
  req: { readonly stream: StreamIdInput; readonly start: SubscribeStart },
  opts: FollowOptions,
): AsyncGenerator<StreamEntry, void, undefined> {
  const { signal } = opts;
  const fallbackMs = opts.fallbackMs ?? SUBSCRIBE_FALLBACK_MS;
  const batch = opts.batch ?? SUBSCRIBE_BATCH;
  let sub = await openSubscription(deps, ctx, req);
  // Listen before the first read, so nothing appended between that read and the wait is missed.
  let pending = true;
  let wake: (() => void) | undefined;
  const poke = () => {
    pending = true;
    const w = wake;
    wake = undefined;
    w?.();
  };
  const unsubscribe = deps.notifier.subscribe(sub.notifyKey, poke);
  signal.addEventListener("abort", poke);
  try {
    while (!signal.aborted) {
      if (!pending) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            wake = undefined;
            resolve();
          }, fallbackMs);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        if (signal.aborted) return;
      }
      pending = false;
      const { entries, next } = await readSubscription(deps, sub, batch);
      sub = next;
      for (const e of entries) {
        if (signal.aborted) return;
        yield e;
      }
      // A full batch means more is probably there already: read on without waiting.
      if (entries.length === batch) pending = true;
    }
  } finally {
    wake = undefined;
    unsubscribe();
    signal.removeEventListener("abort", poke);
  }
}
