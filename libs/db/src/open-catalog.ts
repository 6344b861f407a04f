import type { Catalog } from "@pm/domain";
import { MemoryCatalog } from "@pm/domain/testing";
import { parseCatalogUrl } from "./catalog-url.ts";
import { PostgresCatalog, type PostgresCatalogOptions } from "./postgres/postgres-catalog.ts";
import { SqliteCatalog, type SqliteCatalogOptions } from "./sqlite/sqlite-catalog.ts";

/** Adapter settings that a URL does not carry. */
export interface OpenCatalogOptions {
  readonly sqlite?: Omit<SqliteCatalogOptions, "path">;
  readonly postgres?: Omit<PostgresCatalogOptions, "url">;
}

/**
 * Opens the catalog a database URL names (see parseCatalogUrl), applying pending migrations:
 * `memory:` (nothing survives a restart), `sqlite:<path>` or a file path, `postgres://…`.
 */
export async function openCatalog(url: string, options: OpenCatalogOptions = {}): Promise<Catalog> {
  const at = parseCatalogUrl(url);
  switch (at.kind) {
    case "memory":
      return new MemoryCatalog();
    case "sqlite":
      return SqliteCatalog.open({ ...options.sqlite, path: at.path });
    case "postgres":
      return PostgresCatalog.open({ ...options.postgres, url: at.url });
  }
}
