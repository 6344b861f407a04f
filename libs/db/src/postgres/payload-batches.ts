import type { Payload, PayloadId } from "@pm/domain";
import { num, PAYLOAD_COLUMNS, POSTGRES_BIND, payloadFrom, payloadValues, type Row } from "../sql/rows.ts";

/**
 * The single statements of AllocatePayload and CommitPayload (read a payload, insert one,
 * compare-and-set one) for a whole batch of concurrent calls as one statement each (group commit,
 * see group-commit.ts and ADR 0006). They replace statements that ran alone in autocommit mode,
 * each in its own implicit transaction, so sharing a statement and its commit changes no outcome:
 * every call still gets its own answer.
 *
 * Rows travel as one jsonb array (jsonb_to_recordset): one parameter whatever the batch size, no
 * array-literal quoting of JSON locations and IPC handles. Handles travel as hex text.
 */

/** The SQL type of each payload column in the recordset; location is its JSON text, cast on use. */
const RECORD_TYPES: Readonly<Record<string, string>> = {
  id: "text",
  namespace: "text",
  size_bytes: "bigint",
  state: "text",
  version: "bigint",
  tier: "text",
  agent_id: "text",
  host: "text",
  length_bytes: "bigint",
  location: "text",
  ipc_handle: "text",
  pending_tier: "text",
  pending_agent_id: "text",
  pending_host: "text",
  pending_length_bytes: "bigint",
  pending_location: "text",
  pending_ipc_handle: "text",
  created_at: "bigint",
  updated_at: "bigint",
  expires_at: "bigint",
  last_access_at: "bigint",
  no_evict: "boolean",
  eviction_priority: "text",
  require_durable: "boolean",
  spill_target: "text",
  min_residency_tier: "text",
  checksum: "text",
};

for (const c of PAYLOAD_COLUMNS) {
  if (!RECORD_TYPES[c]) throw new Error(`payload column ${c} has no recordset type in payload-batches.ts`);
}

/** The recordset value of a column: jsonb for locations, bytea from hex for IPC handles. */
function decoded(c: string): string {
  if (c.endsWith("location")) return `r.${c}::jsonb`;
  if (c.endsWith("ipc_handle")) return `decode(r.${c}, 'hex')`;
  return `r.${c}`;
}

/** The payload rows of parameter `param` as recordset `r`, with `extra` columns. */
const RECORDSET = (extra: string, param = "$1") =>
  `jsonb_to_recordset(${param}::jsonb) AS r (${PAYLOAD_COLUMNS.map((c) => `${c} ${RECORD_TYPES[c]}`).join(", ")}${extra})`;

/** One payload as a recordset element (column name → JSON value). */
function payloadRecord(p: Payload): Record<string, unknown> {
  const values = payloadValues(p, POSTGRES_BIND);
  const rec: Record<string, unknown> = {};
  PAYLOAD_COLUMNS.forEach((c, i) => {
    const v = values[i];
    rec[c] = v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("hex") : v;
  });
  return rec;
}

// ---- reads -------------------------------------------------------------------------------------

// ORDER BY id: only the primary key yields that order without a sort, which keeps a generic plan
// made on an empty table on it (otherwise it may pick a listing index, whose last column is id).
export const READ_BATCH_SQL = `SELECT ${PAYLOAD_COLUMNS.join(", ")} FROM payloads WHERE id = ANY($1::text[]) ORDER BY id`;

export const readBatchParams = (ids: readonly PayloadId[]): unknown[] => [[...new Set(ids)]];

export function readBatchResults(ids: readonly PayloadId[], rows: readonly Row[]): (Payload | undefined)[] {
  const byId = new Map(rows.map((r) => [r.id as string, r]));
  return ids.map((id) => {
    const r = byId.get(id);
    return r && payloadFrom(r);
  });
}

// ---- inserts -----------------------------------------------------------------------------------

const insertFrom = (param: string) => `INSERT INTO payloads (${PAYLOAD_COLUMNS.join(", ")})
SELECT ${PAYLOAD_COLUMNS.map(decoded).join(", ")} FROM ${RECORDSET("", param)}`;

export const INSERT_BATCH_SQL = insertFrom("$1");

export const insertBatchParams = (ps: readonly Payload[]): unknown[] => [
  JSON.stringify(ps.map(payloadRecord)),
];

// ---- compare-and-set ---------------------------------------------------------------------------

/** One CommitPayload write: the new row, if the stored one still has `expected`'s values. */
export interface PayloadCas {
  readonly next: Payload;
  readonly expected: Pick<Payload, "version" | "state" | "updatedAt">;
}

/**
 * The row is locked by another transaction (a delete, move, expiry or reap holds it FOR UPDATE),
 * or is written twice in one batch: the call runs alone, as a statement that waits for the lock
 * and then compares against the row as that transaction left it. (A missing row just answers false.)
 */
export const CAS_BUSY = Symbol("cas-busy");

/**
 * Payload rows are reached only through `id = ANY(ids)`, an index condition whatever the table's
 * statistics say. The lanes keep a statement's generic plan for the life of the connection, and
 * one made while a fresh catalog was nearly empty planned a join with the recordset (or an
 * EXISTS per row) as a scan of the whole primary key, which got slower with every row added.
 *
 * Rows some transaction holds locked are skipped (SKIP LOCKED), not waited for, so one lock
 * holder cannot stall the commits of the whole replica; FOR NO KEY UPDATE does not conflict with
 * the FOR KEY SHARE that lease grants take.
 */
const CAS_CTES = `r AS (
  SELECT * FROM ${RECORDSET(", expected_version bigint, expected_state text, expected_updated_at bigint, ord int")}
),
locked AS (
  SELECT id FROM payloads WHERE id = ANY($2::text[]) ORDER BY id FOR NO KEY UPDATE SKIP LOCKED
),
changed AS (
  UPDATE payloads t SET ${PAYLOAD_COLUMNS.slice(1)
    .map((c) => `${c} = ${decoded(c)}`)
    .join(", ")}
  FROM r
  WHERE t.id = ANY(ARRAY(SELECT id FROM locked)) AND t.id = r.id
    AND t.version = r.expected_version AND t.state = r.expected_state AND t.updated_at = r.expected_updated_at
  RETURNING t.id
),
present AS (
  SELECT id FROM payloads WHERE id = ANY($2::text[])
)`;

const CAS_SELECT = `SELECT r.ord, EXISTS (SELECT 1 FROM changed c WHERE c.id = r.id) AS changed,
       EXISTS (SELECT 1 FROM locked l WHERE l.id = r.id) AS locked,
       EXISTS (SELECT 1 FROM present p WHERE p.id = r.id) AS present
FROM r ORDER BY r.ord`;

export const CAS_BATCH_SQL = `WITH ${CAS_CTES}\n${CAS_SELECT}`;

/**
 * Inserts ($3) and compare-and-sets ($1, $2) of one batch as one statement: one round trip and
 * one commit for the AllocatePayload and CommitPayload calls waiting together. The CAS cannot
 * see rows inserted by the same statement (one snapshot), which no caller needs: a commit is
 * sent only after its allocation's insert has committed.
 */
export const WRITE_BATCH_SQL = `WITH inserted AS (${insertFrom("$3")}),\n${CAS_CTES}\n${CAS_SELECT}`;

/** Later writes of an id already in the batch are left out of the statement (they run alone). */
function firstOfEach(batch: readonly PayloadCas[]): boolean[] {
  const seen = new Set<string>();
  return batch.map((c) => {
    if (seen.has(c.next.id)) return false;
    seen.add(c.next.id);
    return true;
  });
}

export function casBatchParams(batch: readonly PayloadCas[]): unknown[] {
  const first = firstOfEach(batch);
  const records = batch.flatMap((c, ord) =>
    first[ord]
      ? [
          {
            ...payloadRecord(c.next),
            expected_version: c.expected.version,
            expected_state: c.expected.state,
            expected_updated_at: c.expected.updatedAt,
            ord,
          },
        ]
      : [],
  );
  return [JSON.stringify(records), batch.filter((_, ord) => first[ord]).map((c) => c.next.id)];
}

export function casBatchResults(
  batch: readonly PayloadCas[],
  rows: readonly Row[],
): (boolean | typeof CAS_BUSY)[] {
  const byOrd = new Map(rows.map((r) => [num(r.ord), r]));
  return batch.map((_, ord) => {
    const r = byOrd.get(ord);
    // No such row (a plain read sees rows whatever locks them): nothing to compare with.
    if (r && r.present !== true) return false;
    if (!r || r.locked !== true) return CAS_BUSY;
    return r.changed === true;
  });
}

// ---- inserts and compare-and-sets together ----------------------------------------------------------

/** One write of a batch: an AllocatePayload insert or a CommitPayload compare-and-set. */
export type PayloadWrite =
  | { readonly kind: "insert"; readonly payload: Payload }
  | { readonly kind: "cas"; readonly cas: PayloadCas };

/** The statement for a batch of writes: inserts alone, compare-and-sets alone, or both. */
export function writeBatchStatement(batch: readonly PayloadWrite[]): [string, unknown[]] {
  const inserts = batch.flatMap((w) => (w.kind === "insert" ? [w.payload] : []));
  const cases = batch.flatMap((w) => (w.kind === "cas" ? [w.cas] : []));
  if (cases.length === 0) return [INSERT_BATCH_SQL, insertBatchParams(inserts)];
  if (inserts.length === 0) return [CAS_BATCH_SQL, casBatchParams(cases)];
  return [WRITE_BATCH_SQL, [...casBatchParams(cases), ...insertBatchParams(inserts)]];
}

/** Each write's outcome, in batch order: undefined for an insert, the CAS's for a compare-and-set. */
export function writeBatchResults(
  batch: readonly PayloadWrite[],
  rows: readonly Row[],
): (undefined | boolean | typeof CAS_BUSY)[] {
  const cases = batch.flatMap((w) => (w.kind === "cas" ? [w.cas] : []));
  const casResults = casBatchResults(cases, rows);
  let c = 0;
  return batch.map((w) => (w.kind === "insert" ? undefined : casResults[c++]));
}
