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
 * AcquireReadLease and ReleaseLease for a whole batch of calls, each as one statement (group
 * commit, see group-commit.ts). Requests travel as parallel arrays through unnest(); the answer
 * has one row per request, in request order, so each call gets its own outcome.
 *
 * Locking. Every change of a payload's state or placement first takes the row FOR UPDATE
 * (CatalogTx.lockPayload; DELETE takes it implicitly). A grant takes FOR KEY SHARE, which
 * conflicts with exactly that: it waits for a delete, commit or move in flight and then decides
 * on the row as that transaction left it, while grants never wait on each other, not even on one
 * hot payload. The last-access bump is an UPDATE of rows nobody else is bumping right now (SKIP
 * LOCKED: when another batch is bumping the same row, that bump serves both); so two batches
 * never wait on each other crosswise.
 */

const PAYLOAD_SELECT = PAYLOAD_COLUMNS.map((c) => `p.${c}`).join(", ");

/** $1 lease ids, $2 payload ids, $3 namespaces, $4 now, $5 expires_at, $6 states, $7 tiers, $8 touch threshold. */
export const GRANT_LEASES_SQL = `
WITH req AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::bigint[])
    WITH ORDINALITY AS r (lease_id, payload_id, namespace, now, expires_at, states, tiers, touch_before, ord)
),
locked AS (
  SELECT * FROM payloads WHERE id = ANY($2::text[]) ORDER BY id FOR KEY SHARE
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
touched AS (
  UPDATE payloads t SET last_access_at = s.now FROM stale s
  WHERE t.id = s.id
    AND t.id IN (SELECT id FROM payloads WHERE id IN (SELECT id FROM stale) FOR NO KEY UPDATE SKIP LOCKED)
  RETURNING t.id, t.last_access_at
)
SELECT r.ord, g.version AS lease_version, tt.last_access_at AS touched_at, ${PAYLOAD_SELECT}
FROM req r
LEFT JOIN locked p ON p.id = r.payload_id AND p.namespace = r.namespace
LEFT JOIN granted g ON g.id = r.lease_id
LEFT JOIN touched tt ON tt.id = r.payload_id
ORDER BY r.ord`;

export function grantParams(batch: readonly LeaseGrantRequest[]): unknown[] {
  return [
    batch.map((r) => r.leaseId),
    batch.map((r) => r.payloadId),
    batch.map((r) => r.namespace),
    batch.map((r) => r.now),
    batch.map((r) => r.expiresAt),
    batch.map((r) => r.states.join(",")),
    batch.map((r) => r.tiers.join(",")),
    batch.map((r) => r.touchIfAccessedAtOrBefore),
  ];
}

export function grantResults(batch: readonly LeaseGrantRequest[], rows: readonly Row[]): LeaseGrantResult[] {
  return batch.map((req, i) => {
    const row = rows[i];
    if (!row || num(row.ord) !== i + 1) throw new Error(`lease grant batch answered out of order at ${i}`);
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
  });
}

/** $1 lease ids, $2 namespaces. */
export const RELEASE_LEASES_SQL = `
WITH req AS (
  SELECT * FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS r (id, namespace, ord)
),
released AS (
  DELETE FROM leases l USING req r WHERE l.id = r.id AND l.namespace = r.namespace
  RETURNING l.id, l.payload_id
)
SELECT r.ord, d.payload_id, p.state
FROM req r
LEFT JOIN released d ON d.id = r.id
LEFT JOIN payloads p ON p.id = d.payload_id
ORDER BY r.ord`;

export interface LeaseRelease {
  readonly leaseId: LeaseId;
  readonly namespace: string;
}

export const releaseParams = (batch: readonly LeaseRelease[]): unknown[] => [
  batch.map((r) => r.leaseId),
  batch.map((r) => r.namespace),
];

export function releaseResults(
  batch: readonly LeaseRelease[],
  rows: readonly Row[],
): (LeaseReleaseResult | undefined)[] {
  return batch.map((_, i) => {
    const row = rows[i];
    if (!row || num(row.ord) !== i + 1) throw new Error(`lease release batch answered out of order at ${i}`);
    if (row.payload_id === null) return undefined;
    return {
      payloadId: row.payload_id as PayloadId,
      payloadState: row.state === null ? undefined : (row.state as PayloadState),
    };
  });
}
