import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export type SqlDialectName = "sqlite" | "postgres";

/** One forward-only schema step, from `migrations/<dialect>/NNNN_name.sql`. */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

/** What a migration run did. */
export interface MigrationResult {
  /** Versions applied by this run, in order (empty when the schema was already current). */
  readonly applied: readonly number[];
  /** The highest version the database holds afterwards. */
  readonly current: number;
}

const FILE = /^(\d{4})_([a-z0-9_]+)\.sql$/;

/** The migrations shipped with this package for a dialect. */
export function defaultMigrationsDir(dialect: SqlDialectName): string {
  return fileURLToPath(new URL(`../migrations/${dialect}/`, import.meta.url));
}

/**
 * Reads the migrations of a directory, ordered by version. Every `.sql` file must be named
 * `NNNN_name.sql` with a unique version: a misnamed file would otherwise be skipped silently.
 */
export function loadMigrations(dir: string): Migration[] {
  const out: Migration[] = [];
  for (const file of readdirSync(dir).sort()) {
    if (!file.endsWith(".sql")) continue;
    const m = FILE.exec(file);
    if (!m) {
      throw new Error(
        `migration file ${join(dir, file)} is not named NNNN_name.sql (4 digits, lowercase name); rename it`,
      );
    }
    const version = Number(m[1]);
    if (out.some((x) => x.version === version)) {
      throw new Error(`two migration files in ${dir} have version ${m[1]}; give each file its own number`);
    }
    out.push({ version, name: m[2]!, sql: readFileSync(join(dir, file), "utf8") });
  }
  return out;
}
