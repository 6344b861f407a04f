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
  /** Removes the row and everything hanging off it: leases, pins, metadata, events, lineage. */
  deletePayload(id: PayloadId): Promise<void>;
  listPayloads(q: ListPayloadsQuery): Promise<{ items: PayloadListItem[]; total: number }>;

  insertLease(l: Lease): Promise<void>;
  getLease(id: LeaseId): Promise<Lease | undefined>;
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

  addRetiredRegion(r: RetiredRegion): Promise<void>;
  listRetiredRegions(limit: number): Promise<RetiredRegion[]>;
  deleteRetiredRegion(id: string): Promise<void>;
}

/** The catalog: the one source of truth, shared by every API and worker replica. */
export interface Catalog {
  /**
   * Runs `fn` in one transaction: all of its writes land or none do. Adapters retry serialization
   * failures; infrastructure faults surface as DomainError UNAVAILABLE.
   */
  transaction<T>(fn: (tx: CatalogTx) => Promise<T>): Promise<T>;
  /** Cheap liveness probe for /readyz; throws UNAVAILABLE when the database cannot be reached. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
