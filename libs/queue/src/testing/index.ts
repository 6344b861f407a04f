export { clearRedisPrefix } from "./clear-redis-prefix.ts";
export { type AdvanceableClock, ManualTimers } from "./manual-timers.ts";
