import { DomainError, isDomainError } from "@pm/domain";

const field = (e: unknown, name: string): string => {
  const v = e instanceof Error ? (e as unknown as Record<string, unknown>)[name] : undefined;
  return typeof v === "string" ? v : "";
};

/** SQLSTATE (or Node socket code) of a pg error; "" when there is none. */
export const pgCode = (e: unknown): string => field(e, "code");

/** Aborted by a concurrent transaction; running the transaction again is the cure. */
export const isSerializationConflict = (e: unknown): boolean => {
  const code = pgCode(e);
  return code === "40001" || code === "40P01";
};

const SOCKET_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
]);

// pg and pg-pool report these faults with a plain Error and no code.
const CONNECTION_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|not queryable|Cannot use a pool after calling end|connection timeout/i;

/** Where the catalog is, for messages: the URL without its password. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    u.password = "";
    return `${u.protocol}//${u.username ? `${u.username}@` : ""}${u.host}${u.pathname}`;
  } catch {
    return "the configured Postgres URL";
  }
}

export interface PgErrorContext {
  /** The catalog's location, password removed (describeUrl). */
  readonly where: string;
  readonly statementTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly idleInTransactionTimeoutMs?: number;
}

/**
 * Maps an infrastructure fault of the Postgres catalog to DomainError UNAVAILABLE with what happened
 * and what to do; returns undefined for everything else (constraint violations, bad SQL: bugs).
 */
export function pgUnavailable(e: unknown, ctx: PgErrorContext): DomainError | undefined {
  if (isDomainError(e)) return undefined;
  const code = pgCode(e);
  const detail = e instanceof Error ? e.message : String(e);
  const unavailable = (message: string) => {
    const err = new DomainError("UNAVAILABLE", message, { database: "postgres" });
    err.cause = e;
    return err;
  };
  if (SOCKET_CODES.has(code)) {
    return unavailable(
      `cannot reach the Postgres catalog at ${ctx.where} (${code}: ${detail}); check that Postgres is running and that the database URL points at it, then retry`,
    );
  }
  if (code.startsWith("08") || code === "57P01" || code === "57P02" || code === "57P03") {
    return unavailable(
      `the connection to the Postgres catalog at ${ctx.where} was lost or refused (${code}: ${detail}); the server may be restarting or failing over, retry shortly`,
    );
  }
  if (code === "25P03") {
    return unavailable(
      `the Postgres catalog at ${ctx.where} ended a transaction of this process that sat idle inside a transaction longer than ${ctx.idleInTransactionTimeoutMs ?? "idle_in_transaction_session_timeout"} ms and released its locks; retry, and if it recurs look for what stalls this process mid-request (CPU starvation, long GC pauses)`,
    );
  }
  if (code === "57014") {
    return unavailable(
      `a catalog query at ${ctx.where} ran longer than statement_timeout (${ctx.statementTimeoutMs} ms) and was cancelled; retry, and if it persists look for long-running transactions holding locks`,
    );
  }
  if (code === "55P03") {
    return unavailable(`a catalog row at ${ctx.where} stayed locked longer than lock_timeout; retry shortly`);
  }
  if (code.startsWith("53")) {
    return unavailable(
      `the Postgres catalog at ${ctx.where} is out of resources (${code}: ${detail}); retry later, and raise max_connections, memory or disk, or lower the pool size of the replicas`,
    );
  }
  if (code === "25006") {
    return unavailable(
      `the Postgres catalog at ${ctx.where} is read-only (${detail}); point the database URL at the primary, not a replica`,
    );
  }
  if (code === "28P01" || code === "28000") {
    return unavailable(
      `the Postgres catalog at ${ctx.where} rejected the credentials (${detail}); fix the user or password in the database URL`,
    );
  }
  if (code === "3D000") {
    return unavailable(
      `the database of the Postgres catalog at ${ctx.where} does not exist (${detail}); create it (createdb) or fix the database URL`,
    );
  }
  if (isSerializationConflict(e)) {
    return unavailable(
      `a catalog transaction at ${ctx.where} kept conflicting with concurrent ones (${code}: ${detail}) and was given up after several retries; retry the request`,
    );
  }
  if (e instanceof Error && CONNECTION_MESSAGES.test(e.message)) {
    return unavailable(
      /timeout exceeded when trying to connect|connection timeout/i.test(e.message)
        ? `no connection to the Postgres catalog at ${ctx.where} became available within ${ctx.connectTimeoutMs} ms (the server is slow or unreachable, or every pooled connection is busy); retry, and check the database or raise the pool size`
        : `the connection to the Postgres catalog at ${ctx.where} was lost (${detail}); retry shortly`,
    );
  }
  return undefined;
}
