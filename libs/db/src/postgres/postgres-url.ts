import { invalidArgument } from "@pm/domain";

/** Catalog settings that a Postgres URL may carry as query parameters. */
export interface PostgresUrlSettings {
  readonly poolSize?: number;
  readonly statementTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  readonly idleTimeoutMs?: number;
  readonly idleInTransactionTimeoutMs?: number;
  readonly maxRetries?: number;
  readonly schema?: string;
  readonly preparedStatements?: boolean;
  readonly groupCommitLanes?: number;
}

type Parser = (value: string, name: string) => PostgresUrlSettings;

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw invalidArgument(`the database URL has a malformed %-escape in "${text}"; fix PM_CATALOG_URL`, {
      field: "database_url",
    });
  }
}

const integer =
  (key: keyof PostgresUrlSettings, min: number): Parser =>
  (value, name) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min) {
      throw invalidArgument(
        `the database URL parameter ${name}=${value} must be an integer of at least ${min}; fix it in the catalog URL (PM_CATALOG_URL)`,
        { field: "database_url" },
      );
    }
    return { [key]: n };
  };

// The names an operator writes in PM_CATALOG_URL. `statement_timeout` is also a parameter pg
// understands itself; reading it here keeps error messages quoting the limit actually in force.
const PARAMETERS: Record<string, Parser> = {
  pool_size: integer("poolSize", 1),
  statement_timeout: integer("statementTimeoutMs", 0),
  connect_timeout_ms: integer("connectTimeoutMs", 1),
  idle_timeout_ms: integer("idleTimeoutMs", 0),
  idle_in_transaction_timeout_ms: integer("idleInTransactionTimeoutMs", 0),
  max_retries: integer("maxRetries", 0),
  group_commit_lanes: integer("groupCommitLanes", 0),
  schema: (value) => ({ schema: value }),
  prepared_statements: (value, name) => {
    if (value !== "true" && value !== "false") {
      throw invalidArgument(`the database URL parameter ${name}=${value} must be true or false`, {
        field: "database_url",
      });
    }
    return { preparedStatements: value === "true" };
  },
};

/**
 * Splits the catalog's own settings (`pool_size`, `statement_timeout`, `connect_timeout_ms`,
 * `idle_timeout_ms`, `idle_in_transaction_timeout_ms`, `max_retries`, `schema`,
 * `prepared_statements`, `group_commit_lanes`) off a Postgres URL, so a
 * deployment can size each replica's pool through PM_CATALOG_URL alone. Returns the URL without
 * them (everything else, e.g. `sslmode`, goes to the driver unchanged).
 */
export function splitPostgresUrl(url: string): { url: string; settings: PostgresUrlSettings } {
  const q = url.indexOf("?");
  if (q < 0) return { url, settings: {} };
  const kept: string[] = [];
  let settings: PostgresUrlSettings = {};
  for (const pair of url.slice(q + 1).split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const name = decode(eq < 0 ? pair : pair.slice(0, eq));
    const parse = PARAMETERS[name];
    if (!parse) {
      kept.push(pair);
      continue;
    }
    settings = { ...settings, ...parse(decode(eq < 0 ? "" : pair.slice(eq + 1)), name) };
  }
  return { url: kept.length > 0 ? `${url.slice(0, q)}?${kept.join("&")}` : url.slice(0, q), settings };
}
