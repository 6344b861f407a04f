import { invalidArgument } from "../errors.ts";

/** A payload id: canonical lowercase RFC 4122 UUID text (`123e4567-e89b-42d3-a456-426614174000`). */
export type PayloadId = string & { readonly __brand: "PayloadId" };
/** A read-lease id, same text form as a payload id. */
export type LeaseId = string & { readonly __brand: "LeaseId" };

const UUID_TEXT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const HEX = "0123456789abcdef";

/** Canonical text of 16 raw UUID bytes (big-endian, RFC 4122 order). */
export function uuidFromBytes(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < 16; i++) {
    const b = bytes[i] ?? 0;
    out += HEX[b >> 4]! + HEX[b & 15]!;
    if (i === 3 || i === 5 || i === 7 || i === 9) out += "-";
  }
  return out;
}

/** The 16 raw bytes of canonical UUID text. The caller has validated the text. */
export function uuidToBytes(text: string): Uint8Array {
  const hex = text.replaceAll("-", "");
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function isUuidText(text: string): boolean {
  return UUID_TEXT.test(text);
}

/**
 * Validates a wire id (the `value` bytes of PayloadID/LeaseID) and returns its canonical text.
 * `what` names the field in the error, e.g. "id" or "lease_id".
 */
export function idFromBytes(bytes: Uint8Array | undefined, what: string): string {
  if (!bytes || bytes.length === 0) {
    throw invalidArgument(`${what} is missing: send the 16 raw bytes of a UUID in ${what}.value`, {
      field: what,
    });
  }
  if (bytes.length !== 16) {
    throw invalidArgument(
      `${what} must be exactly 16 bytes (a raw UUID), got ${bytes.length}; in JSON send the base64 of the 16 bytes, not the UUID text`,
      { field: what },
    );
  }
  return uuidFromBytes(bytes);
}

function base64ToBytes(text: string): Uint8Array | null {
  let s = text.replaceAll("-", "+").replaceAll("_", "/");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return null;
  s = s.replace(/=+$/, "");
  if (s.length % 4 === 1) return null;
  s += "=".repeat((4 - (s.length % 4)) % 4);
  try {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return null;
  }
}

/**
 * Parses an id as it appears in a REST path: canonical UUID text, or base64/base64url of the
 * 16 bytes, padded or not. Returns canonical text or throws INVALID_ARGUMENT.
 */
export function idFromPathSegment(segment: string, what: string): string {
  const text = decodePathSegment(segment);
  if (isUuidText(text)) return text.toLowerCase();
  const bytes = base64ToBytes(text);
  if (!bytes || bytes.length !== 16) {
    throw invalidArgument(
      `${what} "${text.slice(0, 64)}" is not a payload id: use the canonical UUID text (8-4-4-4-12 hex) or the base64url of its 16 bytes`,
      { field: what },
    );
  }
  return uuidFromBytes(bytes);
}

/**
 * decodeURIComponent throws URIError on a malformed escape (`%zz`). That is bad input, not a bug:
 * keep the raw text, which then fails validation because '%' belongs to neither id form.
 */
function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

export const asPayloadId = (s: string) => s as PayloadId;
export const asLeaseId = (s: string) => s as LeaseId;
