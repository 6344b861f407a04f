import type {
  AgentRecord,
  EvictionPriority,
  Lease,
  LeaseId,
  LineageEdge,
  Location,
  MetadataEvent,
  Payload,
  PayloadId,
  PayloadMetadata,
  PayloadState,
  Pin,
  Placement,
  RetiredRegion,
  StorageTier,
  Tier,
  TierUsage,
} from "@pm/domain";

/**
 * Row codecs shared by the SQL adapters: one column list per table and the conversions between
 * domain records and column values. The two drivers differ only in how they hand values back
 * (SQLite: numbers, 0/1, Buffers, JSON text; pg: numbers via our int8 parser, booleans, Buffers,
 * parsed jsonb), so the decoders accept either form.
 */
export type Row = Record<string, unknown>;

/** How a dialect binds booleans (SQLite has none: 0/1). */
export interface BindStyle {
  readonly bool: (b: boolean) => unknown;
}

export const SQLITE_BIND: BindStyle = { bool: (b) => (b ? 1 : 0) };
export const POSTGRES_BIND: BindStyle = { bool: (b) => b };

// ---- value conversions -------------------------------------------------------------------------

export function num(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "bigint" || typeof v === "string") {
    const n = Number(v);
    if (Number.isSafeInteger(n)) return n;
  }
  throw new Error(`catalog row holds ${String(v)} where a safe integer was expected`);
}

const optNum = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : num(v));
const str = (v: unknown): string => {
  if (typeof v !== "string") throw new Error(`catalog row holds ${String(v)} where text was expected`);
  return v;
};
const optStr = (v: unknown): string | undefined => (v === null || v === undefined ? undefined : str(v));
const bool = (v: unknown): boolean => v === true || v === 1 || v === 1n;

/** A driver Buffer view of the bytes (no copy); both drivers bind Buffers as BLOB/bytea. */
export function bindBytes(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** A plain Uint8Array copy: callers compare and keep it, and a pooled Buffer must not leak out. */
export function bytes(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return new Uint8Array(v);
  throw new Error("catalog row holds a non-binary value where bytes were expected");
}

const json = (v: unknown): unknown => (typeof v === "string" ? JSON.parse(v) : v);

// ---- placements --------------------------------------------------------------------------------

/** Columns of one placement, in bind order; `prefix` is "" or "pending_". */
export const placementColumns = (prefix: string): string[] =>
  ["tier", "agent_id", "host", "length_bytes", "location", "ipc_handle"].map((c) => prefix + c);

/** The location as JSON, without the IPC handle (a BLOB column of its own). */
function locationJson(l: Location): string {
  switch (l.kind) {
    case "gpu":
      return JSON.stringify({ kind: l.kind, deviceId: l.deviceId });
    case "ram":
      return JSON.stringify({ kind: l.kind, shmName: l.shmName });
    case "disk":
      return JSON.stringify({ kind: l.kind, path: l.path, offsetBytes: l.offsetBytes });
    case "object":
      return JSON.stringify({ kind: l.kind, bucket: l.bucket, key: l.key });
  }
}

function placementValues(p: Placement | undefined): unknown[] {
  if (!p) return [null, null, null, null, null, null];
  const handle = p.location.kind === "gpu" ? bindBytes(p.location.ipcHandle) : null;
  return [p.tier, p.agentId, p.host, p.lengthBytes, locationJson(p.location), handle];
}

function locationFrom(raw: unknown, handle: unknown): Location {
  const l = json(raw) as Record<string, unknown>;
  switch (l.kind) {
    case "gpu":
      return { kind: "gpu", deviceId: num(l.deviceId), ipcHandle: bytes(handle) };
    case "ram":
      return { kind: "ram", shmName: str(l.shmName) };
    case "disk":
      return { kind: "disk", path: str(l.path), offsetBytes: num(l.offsetBytes) };
    case "object":
      return { kind: "object", bucket: str(l.bucket), key: str(l.key) };
    default:
      throw new Error(`catalog row holds an unknown location kind ${String(l.kind)}`);
  }
}

function placementFrom(r: Row, prefix: string): Placement | undefined {
  if (r[`${prefix}tier`] === null || r[`${prefix}tier`] === undefined) return undefined;
  return {
    tier: str(r[`${prefix}tier`]) as StorageTier,
    agentId: str(r[`${prefix}agent_id`]),
    host: str(r[`${prefix}host`]),
    location: locationFrom(r[`${prefix}location`], r[`${prefix}ipc_handle`]),
    lengthBytes: num(r[`${prefix}length_bytes`]),
  };
}

// ---- payloads ----------------------------------------------------------------------------------

export const PAYLOAD_COLUMNS: readonly string[] = [
  "id",
  "namespace",
  "size_bytes",
  "state",
  "version",
  ...placementColumns(""),
  ...placementColumns("pending_"),
  "created_at",
  "updated_at",
  "expires_at",
  "last_access_at",
  "no_evict",
  "eviction_priority",
  "require_durable",
  "spill_target",
  "min_residency_tier",
  "checksum",
];

export function payloadValues(p: Payload, b: BindStyle): unknown[] {
  return [
    p.id,
    p.namespace,
    p.sizeBytes,
    p.state,
    p.version,
    ...placementValues(p.placement),
    ...placementValues(p.pendingPlacement),
    p.createdAt,
    p.updatedAt,
    p.expiresAt ?? null,
    p.lastAccessAt,
    b.bool(p.noEvict),
    p.evictionPolicy.priority,
    b.bool(p.evictionPolicy.requireDurable),
    p.evictionPolicy.spillTarget ?? null,
    p.evictionPolicy.minResidencyTier ?? null,
    p.checksum ?? null,
  ];
}

export function payloadFrom(r: Row): Payload {
  const placement = placementFrom(r, "");
  if (!placement) throw new Error(`catalog row of payload ${String(r.id)} has no placement`);
  return {
    id: str(r.id) as PayloadId,
    namespace: str(r.namespace),
    sizeBytes: num(r.size_bytes),
    state: str(r.state) as PayloadState,
    version: num(r.version),
    placement,
    pendingPlacement: placementFrom(r, "pending_"),
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
    expiresAt: optNum(r.expires_at),
    lastAccessAt: num(r.last_access_at),
    noEvict: bool(r.no_evict),
    evictionPolicy: {
      priority: str(r.eviction_priority) as EvictionPriority,
      requireDurable: bool(r.require_durable),
      spillTarget: optStr(r.spill_target) as Tier | undefined,
      minResidencyTier: optStr(r.min_residency_tier) as StorageTier | undefined,
    },
    checksum: optStr(r.checksum),
  };
}

// ---- leases, pins, metadata, lineage, agents, retired regions ---------------------------------

export const LEASE_COLUMNS: readonly string[] = [
  "id",
  "payload_id",
  "namespace",
  "version",
  "created_at",
  "expires_at",
  "revoked",
];

export const leaseValues = (l: Lease, b: BindStyle): unknown[] => [
  l.id,
  l.payloadId,
  l.namespace,
  l.version,
  l.createdAt,
  l.expiresAt,
  b.bool(l.revoked),
];

export const leaseFrom = (r: Row): Lease => ({
  id: str(r.id) as LeaseId,
  payloadId: str(r.payload_id) as PayloadId,
  namespace: str(r.namespace),
  version: num(r.version),
  createdAt: num(r.created_at),
  expiresAt: num(r.expires_at),
  revoked: bool(r.revoked),
});

export const pinFrom = (r: Row): Pin => ({
  payloadId: str(r.payload_id) as PayloadId,
  expiresAt: optNum(r.expires_at),
});

export const metadataFrom = (r: Row): PayloadMetadata => ({
  payloadId: str(r.payload_id) as PayloadId,
  data: bytes(r.data),
  schema: str(r.schema),
  updatedAt: num(r.updated_at),
});

export const EVENT_COLUMNS = "seq, payload_id, ts, data, schema, source, version";

export const eventFrom = (r: Row): MetadataEvent => ({
  payloadId: str(r.payload_id) as PayloadId,
  seq: num(r.seq),
  ts: num(r.ts),
  data: bytes(r.data),
  schema: str(r.schema),
  source: str(r.source),
  version: str(r.version),
});

export const edgeFrom = (r: Row): LineageEdge => ({
  parent: str(r.parent) as PayloadId,
  child: str(r.child) as PayloadId,
  operation: str(r.operation),
  role: str(r.role),
  parameters: bytes(r.parameters),
});

export const AGENT_COLUMNS = "agent_id, host, endpoint, tiers, last_heartbeat_at, registered_at";

export const agentValues = (a: AgentRecord): unknown[] => [
  a.agentId,
  a.host,
  a.endpoint,
  JSON.stringify(
    a.tiers.map((t) => ({
      tier: t.tier,
      capacityBytes: t.capacityBytes,
      usedBytes: t.usedBytes,
      highWatermark: t.highWatermark,
      lowWatermark: t.lowWatermark,
    })),
  ),
  a.lastHeartbeatAt,
  a.registeredAt,
];

export const agentFrom = (r: Row): AgentRecord => ({
  agentId: str(r.agent_id),
  host: str(r.host),
  endpoint: str(r.endpoint),
  tiers: json(r.tiers) as TierUsage[],
  lastHeartbeatAt: num(r.last_heartbeat_at),
  registeredAt: num(r.registered_at),
});

export const RETIRED_COLUMNS: readonly string[] = [
  "id",
  "payload_id",
  "version",
  ...placementColumns(""),
  "retired_at",
];

export const retiredValues = (r: RetiredRegion): unknown[] => [
  r.id,
  r.payloadId,
  r.version,
  ...placementValues(r.placement),
  r.retiredAt,
];

export function retiredFrom(r: Row): RetiredRegion {
  const placement = placementFrom(r, "");
  if (!placement) throw new Error(`catalog row of retired region ${String(r.id)} has no placement`);
  return {
    id: str(r.id),
    payloadId: str(r.payload_id) as PayloadId,
    version: num(r.version),
    placement,
    retiredAt: num(r.retired_at),
  };
}
