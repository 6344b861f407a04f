import { describe, expect, it } from "vitest";
import { DomainError } from "../errors.ts";
import { idFromBytes, idFromPathSegment, isUuidText, uuidFromBytes, uuidToBytes } from "./ids.ts";

const TEXT = "123e4567-e89b-42d3-a456-426614174000";
const BYTES = Uint8Array.from([
  0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x42, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0x00,
]);

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

describe("uuid text <-> bytes", () => {
  it("renders 16 raw bytes as canonical lowercase text", () => {
    expect(uuidFromBytes(BYTES)).toBe(TEXT);
  });

  it("parses canonical text back to the same 16 bytes", () => {
    expect(uuidToBytes(TEXT)).toEqual(BYTES);
  });

  it("round-trips arbitrary bytes", () => {
    const bytes = Uint8Array.from({ length: 16 }, (_, i) => (i * 37 + 255) % 256);
    const text = uuidFromBytes(bytes);
    expect(isUuidText(text)).toBe(true);
    expect(uuidToBytes(text)).toEqual(bytes);
  });
});

describe("idFromBytes", () => {
  it("returns canonical text for 16 bytes", () => {
    expect(idFromBytes(BYTES, "id")).toBe(TEXT);
  });

  it.each([
    ["undefined", undefined],
    ["empty", new Uint8Array()],
  ])("rejects a missing id (%s), naming the field", (_, bytes) => {
    const e = invalid(() => idFromBytes(bytes, "lease_id"));
    expect(e.details.field).toBe("lease_id");
    expect(e.message).toContain("lease_id is missing");
  });

  it.each([15, 17, 36])("rejects %i bytes, naming the field and the received length", (n) => {
    const e = invalid(() => idFromBytes(new Uint8Array(n), "id"));
    expect(e.details.field).toBe("id");
    expect(e.message).toContain(`got ${n}`);
    expect(e.retryable).toBe(false);
  });

  it("tells a client that sent UUID text as bytes to send the base64 of the raw bytes", () => {
    const e = invalid(() =>
      idFromBytes(
        Uint8Array.from(TEXT, (c) => c.charCodeAt(0)),
        "id",
      ),
    );
    expect(e.message).toContain("not the UUID text");
  });
});

describe("idFromPathSegment", () => {
  it("accepts canonical text", () => {
    expect(idFromPathSegment(TEXT, "id")).toBe(TEXT);
  });

  it("lowercases canonical text given in upper case", () => {
    expect(idFromPathSegment(TEXT.toUpperCase(), "id")).toBe(TEXT);
  });

  it("accepts unpadded base64url of the 16 bytes", () => {
    expect(idFromPathSegment("Ej5FZ-ibQtOkVkJmFBdAAA", "id")).toBe(TEXT);
  });

  it("accepts padded standard base64 of the 16 bytes", () => {
    expect(idFromPathSegment("Ej5FZ+ibQtOkVkJmFBdAAA==", "id")).toBe(TEXT);
  });

  it("accepts percent-encoded standard base64 (as a path would carry '+')", () => {
    expect(idFromPathSegment("Ej5FZ%2BibQtOkVkJmFBdAAA%3D%3D", "id")).toBe(TEXT);
  });

  it.each([
    ["garbage", "not-a-payload-id"],
    ["short base64", "Ej5FZ-ibQtOkVkJmFBdA"],
    ["impossible base64 length", "Ej5FZ-ibQtOkVkJmFBdAA"],
    ["too long base64", "Ej5FZ-ibQtOkVkJmFBdAAAAA"],
    ["truncated uuid text", TEXT.slice(0, 35)],
    ["uuid text with a non-hex digit", `${TEXT.slice(0, 35)}g`],
    ["empty", ""],
    ["path traversal", "..%2F..%2Fetc%2Fpasswd"],
  ])("rejects %s with INVALID_ARGUMENT naming the field", (_, segment) => {
    const e = invalid(() => idFromPathSegment(segment, "id"));
    expect(e.details.field).toBe("id");
    expect(e.message).toContain("canonical UUID text");
  });

  it.each(["%", "%E0%A4%A", "abc%zz"])(
    "rejects malformed percent-encoding %s as INVALID_ARGUMENT, not a crash",
    (segment) => {
      invalid(() => idFromPathSegment(segment, "id"));
    },
  );
});
