export { MemoryCatalog } from "@pm/domain/testing";
export { type CatalogLocation, parseCatalogUrl } from "./catalog-url.ts";
export { type MigrateOptions, migrate } from "./migrate.ts";
export {
  defaultMigrationsDir,
  loadMigrations,
  type Migration,
  type MigrationResult,
  type SqlDialectName,
} from "./migrations.ts";
export { type OpenCatalogOptions, openCatalog } from "./open-catalog.ts";
export {
  migratePostgres,
  PostgresCatalog,
  type PostgresCatalogOptions,
} from "./postgres/postgres-catalog.ts";
export {
  PostgresStreamNotifier,
  type PostgresStreamNotifierOptions,
  type StreamNotifierLog,
  streamChannelOf,
} from "./postgres/postgres-stream-notifier.ts";
export {
  migrateSqlite,
  migrateSqliteDatabase,
  SqliteCatalog,
  type SqliteCatalogOptions,
} from "./sqlite/sqlite-catalog.ts";
