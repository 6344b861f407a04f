-- The catalog schema. Times are Unix epoch milliseconds, sizes are bytes (INTEGER is 64-bit).
-- A placement is stored as columns: tier, agent, host and length are queried (placementsOnAgent,
-- tierStats, listing by tier); the location is JSON without the GPU IPC handle, which is a BLOB
-- so its bytes round-trip exactly. Ids are lowercase UUID text; SQLite compares TEXT bytewise,
-- which is the order the keyset listing relies on.

CREATE TABLE payloads (
  id                   TEXT    NOT NULL PRIMARY KEY,
  namespace            TEXT    NOT NULL,
  size_bytes           INTEGER NOT NULL,
  state                TEXT    NOT NULL
    CHECK (state IN ('ALLOCATED', 'ACTIVE', 'SPILLING', 'DURABLE', 'DELETING', 'EXPIRED')),
  version              INTEGER NOT NULL,
  tier                 TEXT    NOT NULL CHECK (tier IN ('GPU', 'RAM', 'DISK', 'OBJECT')),
  agent_id             TEXT    NOT NULL,
  host                 TEXT    NOT NULL,
  length_bytes         INTEGER NOT NULL,
  location             TEXT    NOT NULL,
  ipc_handle           BLOB,
  pending_tier         TEXT    CHECK (pending_tier IN ('GPU', 'RAM', 'DISK', 'OBJECT')),
  pending_agent_id     TEXT,
  pending_host         TEXT,
  pending_length_bytes INTEGER,
  pending_location     TEXT,
  pending_ipc_handle   BLOB,
  created_at           INTEGER NOT NULL,
  updated_at           INTEGER NOT NULL,
  expires_at           INTEGER,
  last_access_at       INTEGER NOT NULL,
  no_evict             INTEGER NOT NULL CHECK (no_evict IN (0, 1)),
  eviction_priority    TEXT    NOT NULL CHECK (eviction_priority IN ('LOW', 'NORMAL', 'HIGH', 'NEVER')),
  require_durable      INTEGER NOT NULL CHECK (require_durable IN (0, 1)),
  spill_target         TEXT    CHECK (spill_target IN ('GPU', 'RAM', 'DISK', 'OBJECT', 'VOID')),
  min_residency_tier   TEXT    CHECK (min_residency_tier IN ('GPU', 'RAM', 'DISK', 'OBJECT')),
  checksum             TEXT
);
CREATE INDEX payloads_listing ON payloads (namespace, created_at DESC, id DESC);
CREATE INDEX payloads_state ON payloads (state);
CREATE INDEX payloads_expires_at ON payloads (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX payloads_tier ON payloads (tier);
CREATE INDEX payloads_agent ON payloads (agent_id);
CREATE INDEX payloads_pending_agent ON payloads (pending_agent_id) WHERE pending_agent_id IS NOT NULL;

CREATE TABLE leases (
  id         TEXT    NOT NULL PRIMARY KEY,
  payload_id TEXT    NOT NULL REFERENCES payloads (id) ON DELETE CASCADE,
  namespace  TEXT    NOT NULL,
  version    INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  revoked    INTEGER NOT NULL CHECK (revoked IN (0, 1))
);
CREATE INDEX leases_payload ON leases (payload_id, expires_at);
CREATE INDEX leases_expires_at ON leases (expires_at);

CREATE TABLE pins (
  payload_id TEXT    NOT NULL PRIMARY KEY REFERENCES payloads (id) ON DELETE CASCADE,
  expires_at INTEGER
);

CREATE TABLE payload_metadata (
  payload_id TEXT    NOT NULL PRIMARY KEY REFERENCES payloads (id) ON DELETE CASCADE,
  data       BLOB    NOT NULL,
  schema     TEXT    NOT NULL,
  updated_at INTEGER NOT NULL
);

-- AUTOINCREMENT: a seq is never reused, even after the newest events are deleted with their payload.
CREATE TABLE metadata_events (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  payload_id TEXT    NOT NULL REFERENCES payloads (id) ON DELETE CASCADE,
  ts         INTEGER NOT NULL,
  data       BLOB    NOT NULL,
  schema     TEXT    NOT NULL,
  source     TEXT    NOT NULL,
  version    TEXT    NOT NULL
);
CREATE INDEX metadata_events_payload ON metadata_events (payload_id, seq DESC);

-- id keeps insertion order, so adapters return edges in the order they were added.
CREATE TABLE lineage_edges (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  parent     TEXT NOT NULL REFERENCES payloads (id) ON DELETE CASCADE,
  child      TEXT NOT NULL REFERENCES payloads (id) ON DELETE CASCADE,
  operation  TEXT NOT NULL,
  role       TEXT NOT NULL,
  parameters BLOB NOT NULL,
  UNIQUE (parent, child, operation, role)
);
CREATE INDEX lineage_edges_child ON lineage_edges (child);

CREATE TABLE agents (
  agent_id          TEXT    NOT NULL PRIMARY KEY,
  host              TEXT    NOT NULL,
  endpoint          TEXT    NOT NULL,
  tiers             TEXT    NOT NULL,
  last_heartbeat_at INTEGER NOT NULL,
  registered_at     INTEGER NOT NULL
);

-- No foreign key to payloads: a retired region must still be freed after its payload row is gone.
CREATE TABLE retired_regions (
  id           TEXT    NOT NULL PRIMARY KEY,
  payload_id   TEXT    NOT NULL,
  version      INTEGER NOT NULL,
  tier         TEXT    NOT NULL CHECK (tier IN ('GPU', 'RAM', 'DISK', 'OBJECT')),
  agent_id     TEXT    NOT NULL,
  host         TEXT    NOT NULL,
  length_bytes INTEGER NOT NULL,
  location     TEXT    NOT NULL,
  ipc_handle   BLOB,
  retired_at   INTEGER NOT NULL
);
CREATE INDEX retired_regions_retired_at ON retired_regions (retired_at, id);
CREATE INDEX retired_regions_agent ON retired_regions (agent_id);

-- Streams (used by the stream issue). (namespace, name) identifies a stream; entries and
-- commits refer to the surrogate id so a deleted and re-created stream starts clean.
-- Retention limits: NULL or 0 = unlimited.
CREATE TABLE streams (
  id                    INTEGER PRIMARY KEY AUTOINCREMENT,
  namespace             TEXT    NOT NULL,
  name                  TEXT    NOT NULL,
  retention_max_entries INTEGER,
  retention_max_age_sec INTEGER,
  created_at            INTEGER NOT NULL,
  next_offset           INTEGER NOT NULL DEFAULT 0,
  UNIQUE (namespace, name)
);

-- payload_id has no foreign key: retention, not payload deletion, decides an entry's lifetime.
CREATE TABLE stream_entries (
  stream      INTEGER NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
  "offset"    INTEGER NOT NULL,
  payload_id  TEXT    NOT NULL,
  event_time  INTEGER,
  append_time INTEGER NOT NULL,
  duration_ns INTEGER NOT NULL DEFAULT 0,
  tags        TEXT    NOT NULL DEFAULT '{}',
  PRIMARY KEY (stream, "offset")
) WITHOUT ROWID;
CREATE INDEX stream_entries_append_time ON stream_entries (stream, append_time);

CREATE TABLE stream_commits (
  stream         INTEGER NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
  consumer_group TEXT    NOT NULL,
  "offset"       INTEGER NOT NULL,
  PRIMARY KEY (stream, consumer_group)
) WITHOUT ROWID;
