import type { PayloadId } from "./ids.ts";

/**
 * What identifies a stream: the owning tenant (the caller's `RequestContext.namespace`, from its
 * bearer token) plus the wire `StreamID` (`namespace`, `name`). `StreamID.namespace` is a free
 * sub-scope *inside* a tenant ("" is valid), so two tenants may both have `cams/front` and neither
 * ever sees the other's.
 */
export interface StreamKey {
  readonly tenant: string;
  readonly namespace: string;
  readonly name: string;
}

/** One stream row. Times are Unix epoch milliseconds. */
export interface StreamRecord {
  /**
   * Surrogate id. A stream deleted and created again under the same key gets a new id, so its
   * entries, commits and subscribers never mix with the old one's.
   */
  readonly id: number;
  readonly key: StreamKey;
  /** Keep at most this many entries; 0 = unlimited. */
  readonly retentionMaxEntries: number;
  /** Drop entries appended longer ago than this; 0 = unlimited. */
  readonly retentionMaxAgeSec: number;
  readonly createdAt: number;
  /** The offset the next appended entry gets; only ever grows, so offsets are never reused. */
  readonly nextOffset: number;
}

/** What a producer appends: a reference to a committed payload, never bytes. */
export interface NewStreamEntry {
  readonly payloadId: PayloadId;
  /** Producer capture time (ms), informational; undefined when the producer sent none. */
  readonly eventTime: number | undefined;
  readonly durationNs: number;
  readonly tags: Readonly<Record<string, string>>;
}

/** One entry of a stream's log. */
export interface StreamEntry extends NewStreamEntry {
  readonly offset: number;
  /** When the server appended it (ms); what retention by age and `not_before` compare with. */
  readonly appendTime: number;
}

/**
 * A stream with its current extent. Retention only ever drops the oldest entries, so the retained
 * offsets are exactly `firstOffset..lastOffset`; all three are 0 when nothing is retained.
 */
export interface StreamInfo {
  readonly stream: StreamRecord;
  readonly firstOffset: number;
  readonly lastOffset: number;
  readonly entryCount: number;
}

/**
 * The key as one string, for notifier channels and maps. JSON of the three parts, so no choice of
 * names can make two keys collide.
 */
export const streamKeyString = (k: StreamKey): string => JSON.stringify([k.tenant, k.namespace, k.name]);
