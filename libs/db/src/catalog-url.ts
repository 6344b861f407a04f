import { invalidArgument } from "@pm/domain";

/** Which catalog a database URL names. */
export type CatalogLocation =
  | { readonly kind: "memory" }
  | { readonly kind: "sqlite"; readonly path: string }
  | { readonly kind: "postgres"; readonly url: string };

/**
 * Parses a database URL: `memory:`; `sqlite:<path>`, `sqlite://<absolute path>`, `sqlite::memory:`
 * or a plain file path; `postgres://…` or `postgresql://…`. Anything else is INVALID_ARGUMENT.
 */
export function parseCatalogUrl(url: string): CatalogLocation {
  const u = url.trim();
  if (u === "") {
    throw invalidArgument(
      "the database URL is empty: use memory:, sqlite:<path> (or a file path) or postgres://user@host:port/database",
      { field: "database_url" },
    );
  }
  if (/^memory:(\/\/)?$/i.test(u)) return { kind: "memory" };
  if (/^postgres(ql)?:\/\//i.test(u)) return { kind: "postgres", url: u };
  const sqlite = /^sqlite:(.*)$/i.exec(u);
  if (sqlite) {
    // sqlite:///abs/path and sqlite://./rel follow the URL habit; sqlite:rel and sqlite:/abs too.
    const rest = sqlite[1]!.startsWith("//") ? sqlite[1]!.slice(2) : sqlite[1]!;
    if (rest === "") {
      throw invalidArgument("sqlite: needs a file path, e.g. sqlite:./.payload-manager/catalog.db", {
        field: "database_url",
      });
    }
    return { kind: "sqlite", path: decodeURIComponent(rest) };
  }
  // A scheme of two or more letters that we do not serve (mysql://, redis://, file:…) is a mistake,
  // not a file name.
  const scheme = /^([a-z][a-z0-9+.-]+):/i.exec(u);
  if (scheme && scheme[1]!.toLowerCase() !== "file") {
    throw invalidArgument(
      `database URL scheme "${scheme[1]}:" is not supported: use memory:, sqlite:<path> (or a file path) or postgres://user@host:port/database`,
      { field: "database_url" },
    );
  }
  if (scheme)
    return { kind: "sqlite", path: decodeURIComponent(u.slice("file:".length).replace(/^\/\//, "")) };
  return { kind: "sqlite", path: u };
}
