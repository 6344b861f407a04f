import type { LeaseId, PayloadId } from "./ids.ts";

/**
 * A read lease: a promise that the bytes stay where the descriptor at `version` says until
 * `expiresAt`. A revoked lease (force delete) can no longer be renewed, but still protects the
 * bytes until it expires or is released.
 */
export interface Lease {
  readonly id: LeaseId;
  readonly payloadId: PayloadId;
  readonly namespace: string;
  /** Payload version (placement) the lease was granted on. */
  readonly version: number;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly revoked: boolean;
}

export const isLive = (l: Lease, now: number): boolean => l.expiresAt > now;

/** A pin keeps a payload from being spilled or evicted (not from explicit delete). */
export interface Pin {
  readonly payloadId: PayloadId;
  /** undefined = until Unpin. */
  readonly expiresAt: number | undefined;
}

export const isPinLive = (p: Pin, now: number): boolean => p.expiresAt === undefined || p.expiresAt > now;
