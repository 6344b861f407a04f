import { describe, expect, it } from "vitest";
import { DomainError, type ErrorCode, invalidArgument, isDomainError, payloadNotFound } from "./errors.ts";

describe("DomainError", () => {
  it("carries its code, retryability, details and message", () => {
    const e = new DomainError("TIER_FULL", "the RAM tier is full; spill something", { tier: "RAM" });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe("DomainError");
    expect(e.code).toBe("TIER_FULL");
    expect(e.retryable).toBe(true);
    expect(e.details).toEqual({ tier: "RAM" });
    expect(e.message).toBe("the RAM tier is full; spill something");
  });

  it.each<[ErrorCode, boolean]>([
    ["UNAVAILABLE", true],
    ["NO_AGENT", true],
    ["DEADLINE_EXCEEDED", true],
    ["LEASE_CONFLICT", true],
    ["TIER_FULL", true],
    ["INVALID_ARGUMENT", false],
    ["PAYLOAD_NOT_FOUND", false],
    ["LEASE_NOT_FOUND", false],
    ["INVALID_TRANSITION", false],
    ["TIER_UNAVAILABLE", false],
    ["LEASE_EXPIRED", false],
    ["PIN_CONFLICT", false],
    ["ALREADY_EXISTS", false],
    ["PERMISSION_DENIED", false],
  ])("%s is retryable: %s", (code, retryable) => {
    expect(new DomainError(code, "x").retryable).toBe(retryable);
  });

  it("isDomainError tells domain errors from bugs", () => {
    expect(isDomainError(invalidArgument("bad"))).toBe(true);
    expect(isDomainError(new Error("bug"))).toBe(false);
    expect(isDomainError("string")).toBe(false);
  });

  it("invalidArgument defaults to no details", () => {
    const e = invalidArgument("size_bytes must be positive");
    expect(e.code).toBe("INVALID_ARGUMENT");
    expect(e.details).toEqual({});
  });

  it("payloadNotFound names the id and says what to do next", () => {
    const e = payloadNotFound("123e4567-e89b-42d3-a456-426614174000");
    expect(e.code).toBe("PAYLOAD_NOT_FOUND");
    expect(e.retryable).toBe(false);
    expect(e.details.payloadId).toBe("123e4567-e89b-42d3-a456-426614174000");
    expect(e.message).toContain("123e4567-e89b-42d3-a456-426614174000");
    expect(e.message).toContain("allocate a new payload or check the id");
  });
});
