import { parseCatalogUrl } from "./catalog-url.ts";
import type { MigrationResult } from "./migrations.ts";
import { migratePostgres, type PostgresCatalogOptions } from "./postgres/postgres-catalog.ts";
import { migrateSqlite, type SqliteCatalogOptions } from "./sqlite/sqlite-catalog.ts";

export interface MigrateOptions {
  readonly sqlite?: Omit<SqliteCatalogOptions, "path">;
  readonly postgres?: Omit<PostgresCatalogOptions, "url" | "migrate">;
}

/**
 * Brings the database a URL names up to the newest schema and disconnects (`payload-manager
 * migrate`). Idempotent and safe to run while replicas start; `memory:` has nothing to migrate.
 */
export async function migrate(url: string, options: MigrateOptions = {}): Promise<MigrationResult> {
  const at = parseCatalogUrl(url);
  switch (at.kind) {
    case "memory":
      return { applied: [], current: 0 };
    case "sqlite":
      return migrateSqlite(at.path, options.sqlite);
    case "postgres":
      return migratePostgres(at.url, options.postgres);
  }
}
