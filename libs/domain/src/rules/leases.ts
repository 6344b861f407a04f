export interface LeaseLimits {
  /** Duration granted when the client asks for none (product.md: 20 s). */
  readonly defaultLeaseMs: number;
  /** Longest lease any client may hold (product.md default: 120 s). */
  readonly maxLeaseMs: number;
}

/** The duration to grant: the client's minimum if given, never above the cap. */
export function leaseDuration(requestedMs: number, limits: LeaseLimits): number {
  const wanted = requestedMs > 0 ? requestedMs : limits.defaultLeaseMs;
  return Math.min(wanted, limits.maxLeaseMs);
}
