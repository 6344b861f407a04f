import type {
  Lease,
  LeaseGrantRequest,
  LeaseGrantResult,
  LeaseId,
  LeaseReleaseResult,
  PayloadId,
  PayloadState,
} from "@pm/domain";
import { num, PAYLOAD_COLUMNS, payloadFrom, type Row } from "../sql/rows.ts";

/**
 * AcquireReadLease and ReleaseLease for a whole batch of calls as one statement (group commit,
 * see group-commit.ts). Requests travel as parallel arrays through unnest(); the answer has one
 * row per request, in request order, so each call gets its own outcome.
 *
 * Locking. Deletes, moves, expiry and reaping take a payload row FOR UPDATE (lockPayload, or
 * DELETE itself); CommitPayload's compare-and-set is a plain UPDATE of an ALLOCATED row, which no
 * grant can use anyway. A grant takes FOR KEY SHARE, which conflicts with FOR UPDATE and with
 * nothing a grant or a release does, so grants never wait on each other, not even on one hot
 * payload. A row some transaction holds FOR UPDATE right now is SKIPPED, not waited for: its
 * call comes back BUSY and runs on its own as a transaction that waits for the lock (and then
 * decides on the row as that transaction left it), so one long lock holder cannot stall every
 * lease call of the replica. Releases likewise skip a lease row that a delete or move is revoking
 * (it is released alone, after that transaction, and so sees the payload's state it left).
 * The last-access bump only moves forward and skips rows another batch is bumping (SKIP LOCKED:
 * that bump serves both), so two batches never wait on each other crosswise.
 */

const PAYLOAD_SELECT = PAYLOAD_COLUMNS.map((c) => `p.${c}`).join(", ");

/** One call of the batch: a grant, or a release. */
export type LeaseOp =
  | { readonly kind: "grant"; readonly req: LeaseGrantRequest }
  | { readonly kind: "release"; readonly leaseId: LeaseId; readonly namespace: string };

/**
 * The call's row was not found, or another transaction holds it locked (the statement cannot
 * tell which without a second lookup per row): run it on its own, which waits for a lock and
 * answers "not found" or "nothing to release" as the row-at-a-time form does. Unknown ids are
 * rare in practice; locked rows are what this is for.
 */
export const BUSY = Symbol("busy");

export type LeaseOpResult = LeaseGrantResult | LeaseReleaseResult | undefined | typeof BUSY;

/**
 * Grants: $1 lease ids, $2 payload ids, $3 namespaces, $4 now, $5 expires_at, $6 states, $7 tiers,
 * $8 touch threshold. Releases: $9 lease ids, $10 namespaces. Grants and releases share the
 * statement (and its commit); the answer lists the grants' rows, then the releases', each in
 * request order, in the same columns (a release carries its payload's row for its state).
 */
export const LEASE_BATCH_SQL = `
WITH req AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::bigint[])
    WITH ORDINALITY AS r (lease_id, payload_id, namespace, now, expires_at, states, tiers, touch_before, ord)
),
locked AS (
  SELECT * FROM payloads WHERE id = ANY($2::text[]) ORDER BY id FOR KEY SHARE SKIP LOCKED
),
granted AS (
  INSERT INTO leases (id, payload_id, namespace, version, created_at, expires_at, revoked)
  SELECT r.lease_id, p.id, p.namespace, p.version, r.now, r.expires_at, false
  FROM req r JOIN locked p ON p.id = r.payload_id AND p.namespace = r.namespace
  WHERE p.state = ANY(string_to_array(r.states, ',')) AND p.tier = ANY(string_to_array(r.tiers, ','))
  RETURNING id, version
),
stale AS (
  SELECT r.payload_id AS id, max(r.now) AS now
  FROM req r JOIN granted g ON g.id = r.lease_id JOIN locked p ON p.id = r.payload_id
  WHERE p.last_access_at <= r.touch_before
  GROUP BY r.payload_id
),
-- Payload rows are found by id = ANY(array), ORDER BY id (which only the primary key gives
-- without a sort), and updated by the ctid they were locked at: no join and no lookup for a
-- generic plan made on a near-empty table to send through a listing index. A row that another
-- transaction changed between this statement's snapshot and the lock is left as it is (its locked
-- version is not visible to the update): the bump is best effort, like skipping locked rows.
touchable AS (
  SELECT ctid FROM payloads WHERE id = ANY(ARRAY(SELECT id FROM stale)) ORDER BY id FOR NO KEY UPDATE SKIP LOCKED
),
touched AS (
  UPDATE payloads t SET last_access_at = (SELECT s.now FROM stale s WHERE s.id = t.id)
  WHERE t.ctid = ANY(ARRAY(SELECT ctid FROM touchable))
    AND t.last_access_at < (SELECT s.now FROM stale s WHERE s.id = t.id)
  RETURNING t.id, t.last_access_at
),
rel AS (
  SELECT * FROM unnest($9::text[], $10::text[]) WITH ORDINALITY AS q (lease_id, namespace, ord)
),
-- Leases are found through their primary key by = ANY(array): the table churns (a row per lease,
-- deleted on release), so its statistics often say "tiny" while dead rows still fill its pages,
-- and a join would be planned as a sequential scan of them.
rel_locked AS (
  SELECT id, namespace FROM leases WHERE id = ANY($9::text[]) FOR UPDATE SKIP LOCKED
),
released AS (
  DELETE FROM leases WHERE id = ANY(ARRAY(
    SELECT k.id FROM rel_locked k JOIN rel q ON q.lease_id = k.id AND q.namespace = k.namespace))
  RETURNING id, payload_id
),
-- The released leases' payloads, for their state. By = ANY(array) like every payload lookup here:
-- as a join, a generic plan made while the table was nearly empty scanned the whole primary key;
-- ORDER BY id keeps such a plan off the listing indexes (only the primary key gives that order).
released_payloads AS MATERIALIZED (
  SELECT * FROM payloads WHERE id = ANY(ARRAY(SELECT payload_id FROM released)) ORDER BY id
)
SELECT 0 AS kind, r.ord,
       NOT EXISTS (SELECT 1 FROM locked k WHERE k.id = r.payload_id) AS busy,
       g.version AS lease_version, tt.last_access_at AS touched_at,
       NULL::text COLLATE "C" AS released_payload_id, ${PAYLOAD_SELECT}
FROM req r
LEFT JOIN locked p ON p.id = r.payload_id AND p.namespace = r.namespace
LEFT JOIN granted g ON g.id = r.lease_id
LEFT JOIN touched tt ON tt.id = r.payload_id
UNION ALL
SELECT 1, q.ord,
       d.id IS NULL,
       NULL::bigint, NULL::bigint, d.payload_id, ${PAYLOAD_SELECT}
FROM rel q
LEFT JOIN released d ON d.id = q.lease_id
-- A lease being revoked (a delete or move holds its row) was skipped above and is released
-- alone, after that transaction; so the snapshot's payload state is no older than this call.
LEFT JOIN released_payloads p ON p.id = d.payload_id
ORDER BY kind, ord`;

export function leaseBatchParams(ops: readonly LeaseOp[]): unknown[] {
  const grants = ops.flatMap((o) => (o.kind === "grant" ? [o.req] : []));
  const releases = ops.flatMap((o) => (o.kind === "release" ? [o] : []));
  return [
    grants.map((r) => r.leaseId),
    grants.map((r) => r.payloadId),
    grants.map((r) => r.namespace),
    grants.map((r) => r.now),
    grants.map((r) => r.expiresAt),
    grants.map((r) => r.states.join(",")),
    grants.map((r) => r.tiers.join(",")),
    grants.map((r) => r.touchIfAccessedAtOrBefore),
    releases.map((r) => r.leaseId),
    releases.map((r) => r.namespace),
  ];
}

export function leaseBatchResults(ops: readonly LeaseOp[], rows: readonly Row[]): LeaseOpResult[] {
  const grantRows = rows.filter((r) => num(r.kind) === 0);
  const releaseRows = rows.filter((r) => num(r.kind) === 1);
  let g = 0;
  let q = 0;
  return ops.map((op) => {
    if (op.kind === "grant") return grantResult(op.req, grantRows[g], ++g);
    return releaseResult(releaseRows[q], ++q);
  });
}

function checkOrder(row: Row | undefined, ord: number, what: string): Row {
  if (!row || num(row.ord) !== ord)
    throw new Error(`lease batch answered its ${what}s out of order at ${ord}`);
  return row;
}

function grantResult(req: LeaseGrantRequest, at: Row | undefined, ord: number): LeaseOpResult {
  const row = checkOrder(at, ord, "grant");
  if (row.busy === true) return BUSY;
  if (row.id === null) return { payload: undefined, lease: undefined };
  const locked = payloadFrom(row);
  if (row.lease_version === null) return { payload: locked, lease: undefined };
  const lease: Lease = {
    id: req.leaseId,
    payloadId: locked.id,
    namespace: locked.namespace,
    version: num(row.lease_version),
    createdAt: req.now,
    expiresAt: req.expiresAt,
    revoked: false,
  };
  const payload = row.touched_at === null ? locked : { ...locked, lastAccessAt: num(row.touched_at) };
  return { payload, lease };
}

function releaseResult(at: Row | undefined, ord: number): LeaseOpResult {
  const row = checkOrder(at, ord, "release");
  if (row.busy === true) return BUSY;
  if (row.released_payload_id === null) return undefined;
  return {
    payloadId: row.released_payload_id as PayloadId,
    payloadState: row.state === null ? undefined : (row.state as PayloadState),
  };
}
