-- The catalog schema. Times are Unix epoch milliseconds, sizes are bytes (bigint; the adapter
-- converts to number). A placement is stored as columns: tier, agent, host and length are queried
-- (placementsOnAgent, tierStats, listing by tier); the location is jsonb without the GPU IPC
-- handle, which is bytea so its bytes round-trip exactly. Ids are lowercase UUID text with the
-- "C" collation: bytewise order, the order the keyset listing and the other adapters use.

CREATE TABLE payloads (
  id                   text COLLATE "C" NOT NULL PRIMARY KEY,
  namespace            text    NOT NULL,
  size_bytes           bigint  NOT NULL,
  state                text    NOT NULL
    CHECK (state IN ('ALLOCATED', 'ACTIVE', 'SPILLING', 'DURABLE', 'DELETING', 'EXPIRED')),
  version              bigint  NOT NULL,
  tier                 text    NOT NULL CHECK (tier IN ('GPU', 'RAM', 'DISK', 'OBJECT')),
  agent_id             text    NOT NULL,
  host                 text    NOT NULL,
  length_bytes         bigint  NOT NULL,
  location             jsonb   NOT NULL,
  ipc_handle           bytea,
  pending_tier         text    CHECK (pending_tier IN ('GPU', 'RAM', 'DISK', 'OBJECT')),
  pending_agent_id     text,
  pending_host         text,
  pending_length_bytes bigint,
  pending_location     jsonb,
  pending_ipc_handle   bytea,
  created_at           bigint  NOT NULL,
  updated_at           bigint  NOT NULL,
  expires_at           bigint,
  last_access_at       bigint  NOT NULL,
  no_evict             boolean NOT NULL,
  eviction_priority    text    NOT NULL CHECK (eviction_priority IN ('LOW', 'NORMAL', 'HIGH', 'NEVER')),
  require_durable      boolean NOT NULL,
  spill_target         text    CHECK (spill_target IN ('GPU', 'RAM', 'DISK', 'OBJECT', 'VOID')),
  min_residency_tier   text    CHECK (min_residency_tier IN ('GPU', 'RAM', 'DISK', 'OBJECT')),
  checksum             text
);
CREATE INDEX payloads_listing ON payloads (namespace, created_at DESC, id DESC);
CREATE INDEX payloads_state ON payloads (state);
CREATE INDEX payloads_expires_at ON payloads (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX payloads_tier ON payloads (tier);
CREATE INDEX payloads_agent ON payloads (agent_id);
CREATE INDEX payloads_pending_agent ON payloads (pending_agent_id) WHERE pending_agent_id IS NOT NULL;

CREATE TABLE leases (
  id         text COLLATE "C" NOT NULL PRIMARY KEY,
  payload_id text COLLATE "C" NOT NULL REFERENCES payloads (id) ON DELETE CASCADE,
  namespace  text    NOT NULL,
  version    bigint  NOT NULL,
  created_at bigint  NOT NULL,
  expires_at bigint  NOT NULL,
  revoked    boolean NOT NULL
);
CREATE INDEX leases_payload ON leases (payload_id, expires_at);
CREATE INDEX leases_expires_at ON leases (expires_at);

CREATE TABLE pins (
  payload_id text COLLATE "C" NOT NULL PRIMARY KEY REFERENCES payloads (id) ON DELETE CASCADE,
  expires_at bigint
);

CREATE TABLE payload_metadata (
  payload_id text COLLATE "C" NOT NULL PRIMARY KEY REFERENCES payloads (id) ON DELETE CASCADE,
  data       bytea  NOT NULL,
  schema     text   NOT NULL,
  updated_at bigint NOT NULL
);

CREATE TABLE metadata_events (
  seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  payload_id text COLLATE "C" NOT NULL REFERENCES payloads (id) ON DELETE CASCADE,
  ts         bigint NOT NULL,
  data       bytea  NOT NULL,
  schema     text   NOT NULL,
  source     text   NOT NULL,
  version    text   NOT NULL
);
CREATE INDEX metadata_events_payload ON metadata_events (payload_id, seq DESC);

-- id keeps insertion order, so adapters return edges in the order they were added.
CREATE TABLE lineage_edges (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  parent     text COLLATE "C" NOT NULL REFERENCES payloads (id) ON DELETE CASCADE,
  child      text COLLATE "C" NOT NULL REFERENCES payloads (id) ON DELETE CASCADE,
  operation  text  NOT NULL,
  role       text  NOT NULL,
  parameters bytea NOT NULL,
  UNIQUE (parent, child, operation, role)
);
CREATE INDEX lineage_edges_child ON lineage_edges (child);

CREATE TABLE agents (
  agent_id          text COLLATE "C" NOT NULL PRIMARY KEY,
  host              text   NOT NULL,
  endpoint          text   NOT NULL,
  tiers             jsonb  NOT NULL,
  last_heartbeat_at bigint NOT NULL,
  registered_at     bigint NOT NULL
);

-- No foreign key to payloads: a retired region must still be freed after its payload row is gone.
CREATE TABLE retired_regions (
  id           text COLLATE "C" NOT NULL PRIMARY KEY,
  payload_id   text COLLATE "C" NOT NULL,
  version      bigint NOT NULL,
  tier         text   NOT NULL CHECK (tier IN ('GPU', 'RAM', 'DISK', 'OBJECT')),
  agent_id     text   NOT NULL,
  host         text   NOT NULL,
  length_bytes bigint NOT NULL,
  location     jsonb  NOT NULL,
  ipc_handle   bytea,
  retired_at   bigint NOT NULL
);
CREATE INDEX retired_regions_retired_at ON retired_regions (retired_at, id);
CREATE INDEX retired_regions_agent ON retired_regions (agent_id);

-- Streams (used by the stream issue). (namespace, name) identifies a stream; entries and
-- commits refer to the surrogate id so a deleted and re-created stream starts clean.
-- Retention limits: NULL or 0 = unlimited.
CREATE TABLE streams (
  id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  namespace             text   NOT NULL,
  name                  text   NOT NULL,
  retention_max_entries bigint,
  retention_max_age_sec bigint,
  created_at            bigint NOT NULL,
  next_offset           bigint NOT NULL DEFAULT 0,
  UNIQUE (namespace, name)
);

-- payload_id has no foreign key: retention, not payload deletion, decides an entry's lifetime.
CREATE TABLE stream_entries (
  stream      bigint NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
  "offset"    bigint NOT NULL,
  payload_id  text COLLATE "C" NOT NULL,
  event_time  bigint,
  append_time bigint NOT NULL,
  duration_ns bigint NOT NULL DEFAULT 0,
  tags        jsonb  NOT NULL DEFAULT '{}',
  PRIMARY KEY (stream, "offset")
);
CREATE INDEX stream_entries_append_time ON stream_entries (stream, append_time);

CREATE TABLE stream_commits (
  stream         bigint NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
  consumer_group text   NOT NULL,
  "offset"       bigint NOT NULL,
  PRIMARY KEY (stream, consumer_group)
);
