/** Timer handle; opaque to callers. */
export type TimerHandle = unknown;

/**
 * The timers the in-process runner schedules delays, retries and periodic jobs with. Real timers
 * in production; tests drive a manual implementation from a fake clock (`@pm/queue/testing`).
 */
export interface Timers {
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** Node timers, unref'd: a pending delayed job never keeps a process alive on its own. */
export const realTimers: Timers = {
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};
