import { type Timestamp, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { idBytes } from "@pm/client";
import { EvictionPriority, PayloadState, Tier } from "@pm/rpc";
import { UsageError } from "./parse-args.ts";

const UUID = /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/;
const BASE64_16 = /^[A-Za-z0-9+/_-]{22}(==)?$/;

/**
 * The 16 wire bytes of an id given as canonical UUID text (dashes optional) or as the base64 /
 * base64url of the 16 bytes (padded or not) — the form protojson output carries.
 */
export function parseId(text: string, what = "payload id"): { value: Uint8Array } {
  if (UUID.test(text)) return idBytes(text);
  if (BASE64_16.test(text)) {
    const bytes = Buffer.from(text.replaceAll("-", "+").replaceAll("_", "/"), "base64");
    if (bytes.length === 16) return { value: new Uint8Array(bytes) };
  }
  throw new UsageError(
    `${JSON.stringify(text)} is not a ${what}: give a UUID like 123e4567-e89b-42d3-a456-426614174000 or the base64url of its 16 bytes`,
  );
}

const SIZE_UNITS: Readonly<Record<string, number>> = {
  "": 1,
  b: 1,
  k: 2 ** 10,
  kib: 2 ** 10,
  kb: 1e3,
  m: 2 ** 20,
  mib: 2 ** 20,
  mb: 1e6,
  g: 2 ** 30,
  gib: 2 ** 30,
  gb: 1e9,
  t: 2 ** 40,
  tib: 2 ** 40,
  tb: 1e12,
};

/** A byte count: `1048576`, `64MiB`, `1.5GiB`, `10MB` (decimal), `4k` (binary). */
export function parseSize(text: string, flag = "--size"): bigint {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(text.trim());
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined)
    throw new UsageError(
      `${flag} ${JSON.stringify(text)} is not a size: use bytes or e.g. 512KiB, 64MiB, 1GiB`,
    );
  const n = Number(m[1]) * unit;
  if (!Number.isSafeInteger(n))
    throw new UsageError(`${flag} ${JSON.stringify(text)} is not a whole number of bytes`);
  return BigInt(n);
}

/** A non-negative integer (uint64 fields: offsets, counts, sizes in bytes). */
export function parseUint(text: string, flag: string): bigint {
  if (!/^\d+$/.test(text))
    throw new UsageError(`${flag} ${JSON.stringify(text)} is not a non-negative integer`);
  return BigInt(text);
}

/** A non-negative integer that fits an int32/uint32 field (page sizes, depths). */
export function parseSmallUint(text: string, flag: string, max = 2 ** 31 - 1): number {
  const n = parseUint(text, flag);
  if (n > BigInt(max)) throw new UsageError(`${flag} ${text} is larger than ${max}`);
  return Number(n);
}

const DURATION_UNITS: Readonly<Record<string, number>> = {
  "": 1,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Milliseconds: `1500`, `1500ms`, `30s`, `5m`, `2h`, `1d`. */
export function parseDurationMs(text: string, flag: string): bigint {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  const n = m ? Number(m[1]) * DURATION_UNITS[m[2] ?? ""]! : Number.NaN;
  if (!Number.isSafeInteger(n))
    throw new UsageError(
      `${flag} ${JSON.stringify(text)} is not a duration: use milliseconds or e.g. 30s, 5m, 2h`,
    );
  return BigInt(n);
}

function enumValue<E extends Record<string, string | number>>(
  e: E,
  text: string,
  prefix: string,
  flag: string,
  allowed: readonly string[],
): E[keyof E] {
  let name = text.trim().toUpperCase();
  if (name.startsWith(prefix)) name = name.slice(prefix.length);
  if (!allowed.includes(name))
    throw new UsageError(`${flag} ${JSON.stringify(text)} is not one of ${allowed.join(", ")}`);
  return e[name] as E[keyof E];
}

const TIERS = ["GPU", "RAM", "DISK", "OBJECT"] as const;

/** A storage tier name (case-insensitive, `TIER_` prefix optional); VOID only where it means "drop". */
export function parseTier(text: string, flag = "--tier", opts: { allowVoid?: boolean } = {}): Tier {
  return enumValue(Tier, text, "TIER_", flag, opts.allowVoid ? [...TIERS, "VOID"] : TIERS);
}

export function parseState(text: string, flag = "--state"): PayloadState {
  const names = Object.keys(PayloadState).filter((k) => Number.isNaN(Number(k)) && k !== "UNSPECIFIED");
  return enumValue(PayloadState, text, "PAYLOAD_STATE_", flag, names);
}

export function parsePriority(text: string, flag = "--priority"): EvictionPriority {
  return enumValue(EvictionPriority, text, "EVICTION_PRIORITY_", flag, ["LOW", "NORMAL", "HIGH", "NEVER"]);
}

/** A point in time: RFC 3339 / ISO 8601 text, or Unix epoch milliseconds. */
export function parseTime(text: string, flag: string): Timestamp {
  const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
  if (!Number.isFinite(ms))
    throw new UsageError(
      `${flag} ${JSON.stringify(text)} is not a time: use e.g. 2026-04-21T10:00:00Z or epoch ms`,
    );
  return timestampFromMs(ms);
}

/** `namespace/name`, or a bare `name` in the default (empty) namespace. */
export function parseStreamRef(text: string): { namespace: string; name: string } {
  const slash = text.indexOf("/");
  const ref =
    slash === -1
      ? { namespace: "", name: text }
      : { namespace: text.slice(0, slash), name: text.slice(slash + 1) };
  if (ref.name === "")
    throw new UsageError(`${JSON.stringify(text)} is not a stream: use <namespace>/<name> or <name>`);
  return ref;
}

/** `--parent <id>[:operation[:role]]` of `lineage add`. */
export function parseParent(text: string): {
  parent: { value: Uint8Array };
  operation: string;
  role: string;
} {
  const [id = "", operation = "", ...role] = text.split(":");
  return { parent: parseId(id, "parent id"), operation, role: role.join(":") };
}

/** `--tag key=value` of `stream append`. */
export function parseTag(text: string): [string, string] {
  const eq = text.indexOf("=");
  if (eq <= 0) throw new UsageError(`--tag ${JSON.stringify(text)} must look like key=value`);
  return [text.slice(0, eq), text.slice(eq + 1)];
}
