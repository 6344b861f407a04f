import { DomainError, isDomainError } from "@pm/domain";

const codeOf = (e: unknown): string => {
  const code = e instanceof Error ? (e as Error & { code?: unknown }).code : undefined;
  return typeof code === "string" ? code : "";
};

/**
 * Maps an infrastructure fault of the SQLite catalog to DomainError UNAVAILABLE with what happened
 * and what to do. Anything else (a constraint violation, bad SQL: bugs) is returned unchanged.
 */
export function mapSqliteError(e: unknown, path: string, busyTimeoutMs: number): unknown {
  if (isDomainError(e)) return e;
  const code = codeOf(e);
  const detail = e instanceof Error ? e.message : String(e);
  const unavailable = (message: string) => {
    const err = new DomainError("UNAVAILABLE", message, { database: "sqlite" });
    err.cause = e;
    return err;
  };
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
    return unavailable(
      `the SQLite catalog at ${path} stayed locked by another connection for longer than busy_timeout (${busyTimeoutMs} ms); retry, and check that no other process keeps a long write transaction open on it`,
    );
  }
  if (code === "SQLITE_FULL") {
    return unavailable(
      `the disk holding the SQLite catalog at ${path} is full; free space on it, then retry`,
    );
  }
  if (code.startsWith("SQLITE_READONLY") || code === "SQLITE_PERM" || code === "SQLITE_AUTH") {
    return unavailable(
      `the SQLite catalog at ${path} cannot be written (${detail}); make the file, its directory and its -wal/-shm files writable by this process`,
    );
  }
  if (code.startsWith("SQLITE_CANTOPEN")) {
    return unavailable(
      `cannot open the SQLite catalog at ${path} (${detail}); check that the directory exists and is writable by this process`,
    );
  }
  if (code.startsWith("SQLITE_CORRUPT") || code === "SQLITE_NOTADB") {
    return unavailable(
      `the SQLite catalog at ${path} is damaged or not a SQLite database (${detail}); restore it from a backup or point the database URL at another file`,
    );
  }
  if (code.startsWith("SQLITE_IOERR") || code === "SQLITE_NOMEM" || code === "SQLITE_PROTOCOL") {
    return unavailable(
      `the SQLite catalog at ${path} hit an I/O fault (${code}: ${detail}); check the disk and its free space, then retry`,
    );
  }
  if (e instanceof TypeError && /database connection is not open/.test(e.message)) {
    return unavailable(
      `the SQLite catalog at ${path} is closed because this process is shutting down; retry against a running instance`,
    );
  }
  return e;
}

/** The error to throw when the better-sqlite3 native addon itself cannot load. */
export function nativeAddonError(e: unknown): Error | undefined {
  const msg = e instanceof Error ? e.message : "";
  const code = codeOf(e);
  if (
    code === "ERR_DLOPEN_FAILED" ||
    /bindings file|better_sqlite3\.node|NODE_MODULE_VERSION|invalid ELF header/.test(msg)
  ) {
    return new Error(
      `the SQLite driver (better-sqlite3) has no working native addon for Node ${process.version} (${msg.split("\n")[0]}); run \`npm rebuild better-sqlite3\`, or use a postgres:// database URL`,
      { cause: e },
    );
  }
  return undefined;
}
