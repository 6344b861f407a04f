import { describe, expect, it } from "vitest";
import { DomainError } from "../errors.ts";
import type { Tier } from "../model/tier.ts";
import {
  GIB,
  MAX_PAYLOAD_BYTES,
  validateAllocationTier,
  validateChecksum,
  validateSize,
} from "./validation.ts";

function invalid(fn: () => unknown): DomainError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DomainError);
    expect((e as DomainError).code).toBe("INVALID_ARGUMENT");
    return e as DomainError;
  }
  throw new Error("expected INVALID_ARGUMENT, but the call succeeded");
}

describe("validateSize", () => {
  it("accepts 1 byte and exactly 128 GiB", () => {
    expect(() => validateSize(1)).not.toThrow();
    expect(MAX_PAYLOAD_BYTES).toBe(128 * GIB);
    expect(() => validateSize(128 * GIB)).not.toThrow();
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])("rejects %s naming size_bytes", (n) => {
    expect(invalid(() => validateSize(n)).details.field).toBe("size_bytes");
  });

  it("rejects one byte over 128 GiB and suggests splitting the payload", () => {
    const e = invalid(() => validateSize(128 * GIB + 1));
    expect(e.details.field).toBe("size_bytes");
    expect(e.message).toContain("split the payload");
  });
});

describe("validateAllocationTier", () => {
  it.each<Tier>(["GPU", "RAM", "DISK", "OBJECT"])("accepts %s", (t) => {
    expect(validateAllocationTier(t)).toBe(t);
  });

  it("requires a tier and lists the choices", () => {
    const e = invalid(() => validateAllocationTier(undefined));
    expect(e.details.field).toBe("preferred_tier");
    expect(e.message).toContain("TIER_RAM");
  });

  it("refuses VOID", () => {
    const e = invalid(() => validateAllocationTier("VOID"));
    expect(e.details.field).toBe("preferred_tier");
    expect(e.message).toContain("TIER_VOID cannot be allocated");
  });
});

describe("validateChecksum", () => {
  it.each(["", "sha256:9f86d081884c7d65", "crc32c:deadbeef", `xxh3-128:${"a".repeat(32)}`])(
    "accepts %j",
    (c) => {
      expect(() => validateChecksum(c)).not.toThrow();
    },
  );

  it.each([
    "9f86d081884c7d65",
    "sha256:",
    "sha256:XYZ12345",
    "SHA256:deadbeef",
    "sha256:dead",
    "md5 deadbeef",
  ])("rejects %j with an example of the expected form", (c) => {
    const e = invalid(() => validateChecksum(c));
    expect(e.details.field).toBe("checksum");
    expect(e.message).toContain("<algorithm>:<lowercase hex>");
  });
});
