import { describe, expect, it } from "vitest";
import { splitPostgresUrl } from "./postgres-url.ts";

describe("splitPostgresUrl", () => {
  it("leaves a URL without parameters alone", () => {
    expect(splitPostgresUrl("postgres://u@h:5432/db")).toEqual({
      url: "postgres://u@h:5432/db",
      settings: {},
    });
  });

  it("takes the catalog's settings off and keeps the driver's parameters", () => {
    expect(
      splitPostgresUrl(
        "postgres://u:p@h/db?sslmode=require&pool_size=4&statement_timeout=2500&connect_timeout_ms=800&idle_timeout_ms=0&idle_in_transaction_timeout_ms=9000&max_retries=2&schema=pm_a&prepared_statements=false&group_commit_lanes=3&application_name=x",
      ),
    ).toEqual({
      url: "postgres://u:p@h/db?sslmode=require&application_name=x",
      settings: {
        poolSize: 4,
        statementTimeoutMs: 2500,
        connectTimeoutMs: 800,
        idleTimeoutMs: 0,
        idleInTransactionTimeoutMs: 9000,
        maxRetries: 2,
        schema: "pm_a",
        preparedStatements: false,
        groupCommitLanes: 3,
      },
    });
    expect(splitPostgresUrl("postgres://h/db?pool_size=2").url).toBe("postgres://h/db");
  });

  it.each([
    "pool_size=0",
    "pool_size=two",
    "pool_size=1.5",
    "statement_timeout=-1",
    "prepared_statements=yes",
    "group_commit_lanes=-1",
    "group_commit_lanes=one",
    "schema=%zz",
  ])("rejects %s as INVALID_ARGUMENT naming the parameter", (param) => {
    expect(() => splitPostgresUrl(`postgres://h/db?${param}`)).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT" }),
    );
  });
});
