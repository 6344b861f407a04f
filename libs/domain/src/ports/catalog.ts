import type {
  AgentRecord,
  LineageEdge,
  MetadataEvent,
  PayloadMetadata,
  TierStats,
} from "../model/catalog-records.ts";
import type { LeaseId, PayloadId } from "../model/ids.ts";
import type { Lease, Pin } from "../model/lease.ts";
import type { Payload, PayloadState } from "../model/payload.ts";
import type { Placement } from "../model/placement.ts";
import type { StreamEntry, StreamInfo, StreamKey, StreamRecord } from "../model/stream.ts";
import type { StorageTier } from "../model/tier.ts";

/** Keyset cursor for newest-first listing: (createdAt, id) of the last row of the previous page. */
export interface ListCursor {
  readonly createdAt: number;
  readonly id: string;
}

export interface ListPayloadsQuery {
  readonly namespace: string;
  readonly tier: StorageTier | undefined;
  readonly state: PayloadState | undefined;
  readonly limit: number;
  readonly after: ListCursor | undefined;
  /** Leases expiring after this instant count as live. */
  readonly now: number;
}

export interface PayloadListItem {
  readonly payload: Payload;
  readonly liveLeases: number;
}

export interface ListMetadataEventsQuery {
  readonly payloadId: PayloadId;
  readonly limit: number;
  /** Only events with seq below this (paging newest first). */
  readonly beforeSeq: number | undefined;
  readonly since: number | undefined;
  readonly until: number | undefined;
}

/** A region that a move or delete left behind; freed once no lease on `version` remains. */
export interface RetiredRegion {
  readonly id: string;
  readonly payloadId: PayloadId;
  readonly version: number;
  readonly placement: Placement;
  readonly retiredAt: number;
}

/** A stream to create; it starts empty with `nextOffset` 0. */
export interface NewStream {
  readonly key: StreamKey;
  readonly retentionMaxEntries: number;
  readonly retentionMaxAgeSec: number;
  readonly createdAt: number;
}

export interface ReadStreamQuery {
  readonly streamId: number;
  /** First offset to return. */
  readonly fromOffset: number;
  /** Last offset to return, inclusive; undefined = no upper bound. */
  readonly toOffset: number | undefined;
  /** Only entries appended at or after this instant; undefined = no time filter. */
  readonly appendedSince: number | undefined;
  readonly limit: number;
}

export interface ListStreamsQuery {
  readonly tenant: string;
  /** Only this `StreamID.namespace`; undefined = every namespace of the tenant. */
  readonly namespace: string | undefined;
  /** Keyset cursor: only streams whose surrogate id is greater. */
  readonly afterId: number;
  readonly limit: number;
}

/**
 * Everything a use case may read or write inside one transaction. `lockPayload` takes a row
 * lock (SELECT … FOR UPDATE in Postgres; the single writer in SQLite and memory) so decisions
 * about one payload are serialised across every API replica.
 */
export interface CatalogTx {
  getPayload(id: PayloadId): Promise<Payload | undefined>;
  lockPayload(id: PayloadId): Promise<Payload | undefined>;
  insertPayload(p: Payload): Promise<void>;
  updatePayload(p: Payload): Promise<void>;
  /**
   * Writes `p` only if the row still has `expected`'s version, state and updatedAt (every state
   * or placement change moves at least one of them); returns whether it did. A compare-and-set
   * that needs no lock held across round trips: read, decide, write in one statement. It writes
   * the whole row: a concurrent change that moves none of the three (the access-time bump) is
   * overwritten, so use it where that cannot matter (CommitPayload: ALLOCATED is never leased).
   */
  updatePayloadIf(p: Payload, expected: Pick<Payload, "version" | "state" | "updatedAt">): Promise<boolean>;
  /** Removes the row and everything hanging off it: leases, pins, metadata, events, lineage. */
  deletePayload(id: PayloadId): Promise<void>;
  listPayloads(q: ListPayloadsQuery): Promise<{ items: PayloadListItem[]; total: number }>;

  insertLease(l: Lease): Promise<void>;
  getLease(id: LeaseId): Promise<Lease | undefined>;
  /** Updates a lease; one that was released (deleted) meanwhile stays gone. */
  updateLease(l: Lease): Promise<void>;
  /** Returns whether a lease was removed. */
  deleteLease(id: LeaseId): Promise<boolean>;
  /** Leases of a payload that have not expired at `now` (revoked ones included). */
  liveLeases(payloadId: PayloadId, now: number): Promise<Lease[]>;
  /** Removes leases that expired at or before `now`; returns how many. */
  deleteExpiredLeases(now: number, limit: number): Promise<number>;

  getPin(payloadId: PayloadId): Promise<Pin | undefined>;
  putPin(pin: Pin): Promise<void>;
  deletePin(payloadId: PayloadId): Promise<void>;

  getMetadata(payloadId: PayloadId): Promise<PayloadMetadata | undefined>;
  putMetadata(m: PayloadMetadata): Promise<void>;
  appendMetadataEvent(e: Omit<MetadataEvent, "seq">): Promise<MetadataEvent>;
  /** Newest first. */
  listMetadataEvents(q: ListMetadataEventsQuery): Promise<MetadataEvent[]>;

  /** Adds edges; an edge with the same (parent, child, operation, role) is kept once. */
  addLineage(edges: readonly LineageEdge[]): Promise<void>;
  /** Edges whose child (upstream) or parent (downstream) is one of `ids`. */
  lineageEdges(ids: readonly PayloadId[], upstream: boolean): Promise<LineageEdge[]>;

  upsertAgent(a: AgentRecord): Promise<void>;
  getAgent(agentId: string): Promise<AgentRecord | undefined>;
  listAgents(): Promise<AgentRecord[]>;
  /** Payload ids placed (or pending) on an agent, with their tier. */
  placementsOnAgent(agentId: string): Promise<{ payloadId: PayloadId; tier: StorageTier }[]>;

  /** Per-tier counts and bytes of payloads that hold bytes (every state but DELETING). */
  tierStats(namespace: string | undefined): Promise<TierStats[]>;

  /** Payloads whose TTL passed at `now` and that are not yet being deleted. */
  findExpired(now: number, limit: number): Promise<PayloadId[]>;
  /** ALLOCATED payloads created before `createdBefore` (never committed). */
  findAbandoned(createdBefore: number, limit: number): Promise<PayloadId[]>;
  /** Payloads in DELETING or EXPIRED, waiting for their bytes to be freed. */
  findDeleting(limit: number): Promise<PayloadId[]>;
  /** SPILLING payloads last updated at or before `updatedBefore` (a move whose executor died). */
  findStuckMoves(updatedBefore: number, limit: number): Promise<PayloadId[]>;

  addRetiredRegion(r: RetiredRegion): Promise<void>;
  listRetiredRegions(limit: number): Promise<RetiredRegion[]>;
  deleteRetiredRegion(id: string): Promise<void>;

  /** Inserts an empty stream; returns undefined (and changes nothing) when its key is taken. */
  createStream(s: NewStream): Promise<StreamRecord | undefined>;
  getStream(key: StreamKey): Promise<StreamRecord | undefined>;
  /**
   * Reads the stream and row-locks it to the end of the transaction, like `lockPayload`: appends,
   * commits and the delete of one stream are serialised across every API replica.
   */
  lockStream(key: StreamKey): Promise<StreamRecord | undefined>;
  /** Removes the stream with all its entries and commits; returns whether it existed. */
  deleteStream(key: StreamKey): Promise<boolean>;
  /**
   * Inserts entries whose offsets run contiguously from the stream's `nextOffset`, and moves
   * `nextOffset` past the last. The caller holds `lockStream`; entries that do not start at
   * `nextOffset` are a bug and throw.
   */
  appendStreamEntries(streamId: number, entries: readonly StreamEntry[]): Promise<void>;
  /** Entries in offset order. */
  readStreamEntries(q: ReadStreamQuery): Promise<StreamEntry[]>;
  /** Offset of the oldest entry appended at or after `appendedSince`, if any. */
  firstStreamOffsetSince(streamId: number, appendedSince: number): Promise<number | undefined>;
  /** Drops every entry with an offset below `belowOffset` (retention); returns how many. */
  trimStream(streamId: number, belowOffset: number): Promise<number>;
  /** Stores (or replaces) a consumer group's checkpoint. */
  putStreamCommit(streamId: number, consumerGroup: string, offset: number): Promise<void>;
  getStreamCommit(streamId: number, consumerGroup: string): Promise<number | undefined>;
  /** A tenant's streams with their extents, in creation (surrogate id) order. */
  listStreams(q: ListStreamsQuery): Promise<StreamInfo[]>;
  /** Streams that have a retention limit, in id order after `afterId`, for the retention sweep. */
  streamsWithRetention(afterId: number, limit: number): Promise<StreamRecord[]>;
}

/**
 * A read lease to grant in one step (AcquireReadLease's catalog work). The caller decides the
 * rules (which states and tiers may be read, the lease's times); the catalog applies them to the
 * payload as it is when locked, so the decision and the insert are atomic.
 */
export interface LeaseGrantRequest {
  readonly leaseId: LeaseId;
  readonly payloadId: PayloadId;
  /** The caller's namespace: a payload of another namespace is reported as absent. */
  readonly namespace: string;
  /** Becomes the lease's createdAt, and the payload's lastAccessAt when that is touched. */
  readonly now: number;
  readonly expiresAt: number;
  /** Grant only while the payload is in one of these states… */
  readonly states: readonly PayloadState[];
  /** …and placed on one of these tiers. */
  readonly tiers: readonly StorageTier[];
  /** On a grant, set lastAccessAt to `now` when it is at or before this instant. */
  readonly touchIfAccessedAtOrBefore: number;
}

export interface LeaseGrantResult {
  /** The payload as the decision saw it (with the touched access time); undefined: not found. */
  readonly payload: Payload | undefined;
  /** The lease, when granted (its version is the payload's); undefined: state or tier refused it. */
  readonly lease: Lease | undefined;
}

/** What ReleaseLease removed: the lease's payload and that payload's state, if it still exists. */
export interface LeaseReleaseResult {
  readonly payloadId: PayloadId;
  readonly payloadState: PayloadState | undefined;
}

/** The catalog: the one source of truth, shared by every API and worker replica. */
export interface Catalog {
  /**
   * Runs `fn` in one transaction: all of its writes land or none do. Adapters retry serialization
   * failures; infrastructure faults surface as DomainError UNAVAILABLE.
   */
  transaction<T>(fn: (tx: CatalogTx) => Promise<T>): Promise<T>;
  /**
   * Runs `fn` with every statement committed on its own, without the BEGIN/COMMIT round trips:
   * for one read, or one write that nothing else has to land with (`fn` may run again after a
   * deadlock, so it must be a single statement). No row lock outlives its
   * statement, and two statements may see different data. Adapters with no round trips to save
   * run it as a transaction.
   */
  autocommit<T>(fn: (tx: CatalogTx) => Promise<T>): Promise<T>;
  /**
   * The hot path of AcquireReadLease as one atomic step, so an adapter can coalesce concurrent
   * calls into one statement (group commit). Each call gets its own result or error. Adapters
   * without a set-based form run `grantLeaseInTx` in a transaction.
   */
  grantLease(req: LeaseGrantRequest): Promise<LeaseGrantResult>;
  /**
   * Removes the lease if it exists in `namespace`; undefined when there was none (idempotent).
   * Coalescible like `grantLease`; the transactional form is `releaseLeaseInTx`.
   */
  releaseLease(leaseId: LeaseId, namespace: string): Promise<LeaseReleaseResult | undefined>;
  /** Cheap liveness probe for /readyz; throws UNAVAILABLE when the database cannot be reached. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
