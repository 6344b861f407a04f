-- Indexes for every query path at a million payloads, and counters so that ListPayloads' total and
-- Stats no longer count rows (COUNT(*) over a namespace reads every row of it).
--
-- Runs inside the migration transaction: writers to payloads wait until it commits, so the
-- counters' backfill and their triggers see exactly the same rows. Building the indexes takes
-- seconds per million rows; see docs/operations/postgres.md for large existing catalogs.

LOCK TABLE payloads IN SHARE ROW EXCLUSIVE MODE;

-- AcquireReadLease rewrites the row to bump last_access_at. No indexed column changes, so with
-- free space on the page the update is HOT (no index writes, no new index entries to vacuum).
ALTER TABLE payloads SET (fillfactor = 90);

-- ListPayloads with a tier or a state filter walks its own index in keyset order instead of
-- filtering the namespace's whole listing.
CREATE INDEX payloads_listing_tier ON payloads (namespace, tier, created_at DESC, id DESC);
CREATE INDEX payloads_listing_state ON payloads (namespace, state, created_at DESC, id DESC);

-- The sweeps read their candidates in the order they process them, from indexes that hold only
-- candidates: expired-but-not-yet-deleted, never committed, waiting for bytes to be freed.
CREATE INDEX payloads_expiring ON payloads (expires_at, id)
  WHERE expires_at IS NOT NULL AND state NOT IN ('DELETING', 'EXPIRED');
CREATE INDEX payloads_allocated ON payloads (created_at, id) WHERE state = 'ALLOCATED';
CREATE INDEX payloads_deleting ON payloads (updated_at, id) WHERE state IN ('DELETING', 'EXPIRED');

-- Superseded by the indexes above; each index on payloads costs every insert and state change.
DROP INDEX payloads_state;
DROP INDEX payloads_expires_at;
DROP INDEX payloads_tier;

-- Leases are inserted and deleted all the time: vacuum them before dead rows pile up.
ALTER TABLE leases SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000);

-- Payload count and bytes per (namespace, tier, state), maintained by triggers. Each connection
-- adds its deltas to its own shard (backend pid mod 16), so concurrent writers rarely wait on
-- the same counter row; a shard may go negative, only the sum over shards means anything.
CREATE TABLE payload_counts (
  namespace text     NOT NULL,
  tier      text     NOT NULL,
  state     text     NOT NULL,
  shard     smallint NOT NULL,
  payloads  bigint   NOT NULL,
  bytes     bigint   NOT NULL,
  PRIMARY KEY (namespace, tier, state, shard)
) WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);

-- Rows are upserted in key order, so two transactions never take counter locks crosswise.
CREATE FUNCTION payload_counts_add_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO payload_counts AS c (namespace, tier, state, shard, payloads, bytes)
  SELECT namespace, tier, state, (pg_backend_pid() % 16)::smallint, count(*), sum(size_bytes)::bigint
  FROM inserted GROUP BY namespace, tier, state ORDER BY namespace, tier, state
  ON CONFLICT (namespace, tier, state, shard) DO UPDATE
    SET payloads = c.payloads + excluded.payloads, bytes = c.bytes + excluded.bytes;
  RETURN NULL;
END $$;

CREATE FUNCTION payload_counts_remove_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO payload_counts AS c (namespace, tier, state, shard, payloads, bytes)
  SELECT namespace, tier, state, (pg_backend_pid() % 16)::smallint, -count(*), -sum(size_bytes)::bigint
  FROM deleted GROUP BY namespace, tier, state ORDER BY namespace, tier, state
  ON CONFLICT (namespace, tier, state, shard) DO UPDATE
    SET payloads = c.payloads + excluded.payloads, bytes = c.bytes + excluded.bytes;
  RETURN NULL;
END $$;

CREATE FUNCTION payload_counts_move_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO payload_counts AS c (namespace, tier, state, shard, payloads, bytes)
  SELECT d.namespace, d.tier, d.state, (pg_backend_pid() % 16)::smallint, sum(d.payloads), sum(d.bytes)
  FROM (VALUES (OLD.namespace, OLD.tier, OLD.state, -1::bigint, -OLD.size_bytes),
               (NEW.namespace, NEW.tier, NEW.state, 1::bigint, NEW.size_bytes))
    AS d (namespace, tier, state, payloads, bytes)
  GROUP BY d.namespace, d.tier, d.state ORDER BY d.namespace, d.tier, d.state
  ON CONFLICT (namespace, tier, state, shard) DO UPDATE
    SET payloads = c.payloads + excluded.payloads, bytes = c.bytes + excluded.bytes;
  RETURN NULL;
END $$;

CREATE FUNCTION payload_counts_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM payload_counts;
  RETURN NULL;
END $$;

-- The functions resolve payload_counts in the schema they were created in, whatever the
-- search_path of the session that writes payloads.
ALTER FUNCTION payload_counts_add_inserted() SET search_path FROM CURRENT;
ALTER FUNCTION payload_counts_remove_deleted() SET search_path FROM CURRENT;
ALTER FUNCTION payload_counts_move_updated() SET search_path FROM CURRENT;
ALTER FUNCTION payload_counts_clear() SET search_path FROM CURRENT;

-- Statement-level for inserts and deletes (a bulk load or a cascade costs one upsert per group,
-- not per row); row-level for updates, fired only when a counted column changes, so the frequent
-- last_access_at rewrite of AcquireReadLease never reaches the counters.
CREATE TRIGGER payloads_count_insert AFTER INSERT ON payloads
  REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION payload_counts_add_inserted();
CREATE TRIGGER payloads_count_delete AFTER DELETE ON payloads
  REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION payload_counts_remove_deleted();
CREATE TRIGGER payloads_count_update AFTER UPDATE ON payloads FOR EACH ROW
  WHEN (OLD.namespace IS DISTINCT FROM NEW.namespace OR OLD.tier IS DISTINCT FROM NEW.tier
        OR OLD.state IS DISTINCT FROM NEW.state OR OLD.size_bytes IS DISTINCT FROM NEW.size_bytes)
  EXECUTE FUNCTION payload_counts_move_updated();
CREATE TRIGGER payloads_count_truncate AFTER TRUNCATE ON payloads
  FOR EACH STATEMENT EXECUTE FUNCTION payload_counts_clear();

INSERT INTO payload_counts (namespace, tier, state, shard, payloads, bytes)
SELECT namespace, tier, state, 0, count(*), sum(size_bytes)::bigint
FROM payloads GROUP BY namespace, tier, state;
