import { timestampMs } from "@bufbuild/protobuf/wkt";
import { EvictionPriority, PayloadState, Tier } from "@pm/rpc";
import { describe, expect, it } from "vitest";
import { UsageError } from "./parse-args.ts";
import {
  parseDurationMs,
  parseId,
  parseParent,
  parsePriority,
  parseSize,
  parseSmallUint,
  parseState,
  parseStreamRef,
  parseTag,
  parseTier,
  parseTime,
  parseUint,
} from "./parse-values.ts";

const UUID = "123e4567-e89b-42d3-a456-426614174000";
const BYTES = [
  0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x42, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0x00,
];

describe("parseId", () => {
  it("accepts canonical UUID text, with or without dashes, any case", () => {
    expect([...parseId(UUID).value]).toEqual(BYTES);
    expect([...parseId(UUID.replaceAll("-", "").toUpperCase()).value]).toEqual(BYTES);
  });

  it("accepts the base64 and base64url of the 16 bytes, padded or not (the protojson form)", () => {
    expect([...parseId("Ej5FZ+ibQtOkVkJmFBdAAA==").value]).toEqual(BYTES);
    expect([...parseId("Ej5FZ-ibQtOkVkJmFBdAAA").value]).toEqual(BYTES);
    expect([...parseId("Ej5FZ+ibQtOkVkJmFBdAAA").value]).toEqual(BYTES);
  });

  it("rejects anything else with a UsageError that shows the accepted forms", () => {
    for (const bad of [
      "not-a-uuid",
      "",
      "123e4567-e89b-42d3-a456-42661417400",
      "Ej5FZ-ibQtOkVkJmFBdA",
      "zz",
    ]) {
      expect(() => parseId(bad)).toThrow(UsageError);
    }
    expect(() => parseId("nope", "lease id")).toThrow(/"nope" is not a lease id: give a UUID like/);
  });
});

describe("sizes, numbers and durations", () => {
  it("parses sizes with binary and decimal suffixes", () => {
    expect(parseSize("4096")).toBe(4096n);
    expect(parseSize("64MiB")).toBe(64n * 1024n * 1024n);
    expect(parseSize("1GiB")).toBe(1n << 30n);
    expect(parseSize("1.5gib")).toBe(3n << 29n);
    expect(parseSize("10MB")).toBe(10_000_000n);
    expect(parseSize("4k")).toBe(4096n);
    expect(parseSize("128 GiB")).toBe(128n << 30n);
    expect(parseSize("12B")).toBe(12n);
  });

  it("rejects malformed and fractional-byte sizes", () => {
    for (const bad of ["", "-1", "1.5", "64MiBs", "MiB", "1e3", "0x10"]) {
      expect(() => parseSize(bad)).toThrow(UsageError);
    }
    expect(() => parseSize("9999999TiB", "--size")).toThrow(/--size "9999999TiB" is not a whole number/);
  });

  it("parses unsigned integers", () => {
    expect(parseUint("0", "--offset")).toBe(0n);
    expect(parseUint("18446744073709551615", "--offset")).toBe(18446744073709551615n);
    expect(() => parseUint("-1", "--offset")).toThrow(/--offset "-1" is not a non-negative integer/);
    expect(parseSmallUint("50", "--page-size")).toBe(50);
    expect(() => parseSmallUint("4294967296", "--page-size")).toThrow(/larger than/);
  });

  it("parses durations as milliseconds", () => {
    expect(parseDurationMs("1500", "--ttl-ms")).toBe(1500n);
    expect(parseDurationMs("250ms", "--ttl-ms")).toBe(250n);
    expect(parseDurationMs("30s", "--ttl-ms")).toBe(30_000n);
    expect(parseDurationMs("5m", "--ttl-ms")).toBe(300_000n);
    expect(parseDurationMs("2h", "--ttl-ms")).toBe(7_200_000n);
    expect(parseDurationMs("1d", "--ttl-ms")).toBe(86_400_000n);
    expect(parseDurationMs("1.5s", "--ttl-ms")).toBe(1500n);
    expect(() => parseDurationMs("soon", "--ttl-ms")).toThrow(/--ttl-ms "soon" is not a duration/);
  });
});

describe("enums", () => {
  it("parses tiers case-insensitively, with or without the TIER_ prefix", () => {
    expect(parseTier("RAM")).toBe(Tier.RAM);
    expect(parseTier("disk")).toBe(Tier.DISK);
    expect(parseTier("TIER_GPU")).toBe(Tier.GPU);
    expect(parseTier("Object")).toBe(Tier.OBJECT);
  });

  it("accepts VOID only where it means drop", () => {
    expect(() => parseTier("VOID")).toThrow(/--tier "VOID" is not one of GPU, RAM, DISK, OBJECT/);
    expect(parseTier("void", "--tier", { allowVoid: true })).toBe(Tier.VOID);
    expect(() => parseTier("UNSPECIFIED")).toThrow(UsageError);
    expect(() => parseTier("ssd")).toThrow(UsageError);
  });

  it("parses states and priorities", () => {
    expect(parseState("active")).toBe(PayloadState.ACTIVE);
    expect(parseState("PAYLOAD_STATE_DURABLE")).toBe(PayloadState.DURABLE);
    expect(() => parseState("gone")).toThrow(/--state "gone" is not one of ALLOCATED, ACTIVE/);
    expect(parsePriority("high")).toBe(EvictionPriority.HIGH);
    expect(() => parsePriority("urgent")).toThrow(UsageError);
  });
});

describe("composite values", () => {
  it("parses times as RFC 3339 or epoch milliseconds", () => {
    expect(timestampMs(parseTime("2026-04-21T10:00:00Z", "--since"))).toBe(Date.UTC(2026, 3, 21, 10));
    expect(timestampMs(parseTime("1700000000123", "--since"))).toBe(1700000000123);
    expect(() => parseTime("yesterday", "--since")).toThrow(/--since "yesterday" is not a time/);
  });

  it("parses stream references", () => {
    expect(parseStreamRef("cams/front")).toEqual({ namespace: "cams", name: "front" });
    expect(parseStreamRef("front")).toEqual({ namespace: "", name: "front" });
    expect(parseStreamRef("a/b/c")).toEqual({ namespace: "a", name: "b/c" });
    expect(() => parseStreamRef("cams/")).toThrow(UsageError);
  });

  it("parses lineage parents with optional operation and role", () => {
    expect(parseParent(UUID)).toEqual({ parent: { value: new Uint8Array(BYTES) }, operation: "", role: "" });
    expect(parseParent(`${UUID}:resize`)).toMatchObject({ operation: "resize", role: "" });
    expect(parseParent(`${UUID}:resize:input:left`)).toMatchObject({
      operation: "resize",
      role: "input:left",
    });
    expect(() => parseParent("x:resize")).toThrow(/"x" is not a parent id/);
  });

  it("parses tags", () => {
    expect(parseTag("camera=front")).toEqual(["camera", "front"]);
    expect(parseTag("q=a=b")).toEqual(["q", "a=b"]);
    expect(parseTag("empty=")).toEqual(["empty", ""]);
    expect(() => parseTag("=x")).toThrow(UsageError);
    expect(() => parseTag("novalue")).toThrow(/must look like key=value/);
  });
});
