import { describe, expect, it } from "vitest";
import { parseCatalogUrl } from "./catalog-url.ts";

describe("parseCatalogUrl", () => {
  it.each([
    ["memory:", { kind: "memory" }],
    ["memory://", { kind: "memory" }],
    ["sqlite:./.payload-manager/catalog.db", { kind: "sqlite", path: "./.payload-manager/catalog.db" }],
    ["sqlite:/var/lib/pm/catalog.db", { kind: "sqlite", path: "/var/lib/pm/catalog.db" }],
    ["sqlite:///var/lib/pm/catalog.db", { kind: "sqlite", path: "/var/lib/pm/catalog.db" }],
    ["sqlite::memory:", { kind: "sqlite", path: ":memory:" }],
    ["sqlite:my%20dir/c.db", { kind: "sqlite", path: "my dir/c.db" }],
    ["file:///var/lib/pm/catalog.db", { kind: "sqlite", path: "/var/lib/pm/catalog.db" }],
    ["./catalog.db", { kind: "sqlite", path: "./catalog.db" }],
    ["/abs/catalog.db", { kind: "sqlite", path: "/abs/catalog.db" }],
    ["catalog.db", { kind: "sqlite", path: "catalog.db" }],
    ["postgres://u:p@db:5432/pm", { kind: "postgres", url: "postgres://u:p@db:5432/pm" }],
    ["postgresql://db/pm?sslmode=require", { kind: "postgres", url: "postgresql://db/pm?sslmode=require" }],
  ])("reads %s", (url, expected) => {
    expect(parseCatalogUrl(url)).toEqual(expected);
  });

  it.each(["", "   ", "sqlite:", "mysql://db/pm", "redis://127.0.0.1:6379"])(
    "refuses %j with INVALID_ARGUMENT and the accepted forms",
    (url) => {
      expect(() => parseCatalogUrl(url)).toThrow(
        expect.objectContaining({ code: "INVALID_ARGUMENT", message: expect.stringMatching(/sqlite:/) }),
      );
    },
  );
});
