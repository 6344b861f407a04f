/**
 * XXH64 and CRC-32C in plain TypeScript, producing the same strings as the
 * addon (`"xxh64:<16 hex>"`, `"crc32c:<8 hex>"`). Slow (BigInt arithmetic):
 * meant for the fake and for cross-checking the C++ code, not for payloads.
 */
import type { ChecksumAlgorithm } from "../native-api.ts";

const MASK = (1n << 64n) - 1n;
const P1 = 0x9e3779b185ebca87n;
const P2 = 0xc2b2ae3d27d4eb4fn;
const P3 = 0x165667b19e3779f9n;
const P4 = 0x85ebca77c2b2ae63n;
const P5 = 0x27d4eb2f165667c5n;

const rotl = (x: bigint, r: bigint): bigint => ((x << r) | (x >> (64n - r))) & MASK;
const round = (acc: bigint, lane: bigint): bigint => (rotl((acc + lane * P2) & MASK, 31n) * P1) & MASK;
const mergeRound = (acc: bigint, value: bigint): bigint => (((acc ^ round(0n, value)) * P1) & MASK) + P4;

function lane64(bytes: Uint8Array, at: number): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset + at, 8).getBigUint64(0, true);
}

function lane32(bytes: Uint8Array, at: number): bigint {
  return BigInt(new DataView(bytes.buffer, bytes.byteOffset + at, 4).getUint32(0, true));
}

/** Streaming XXH64 with seed 0. */
export class Xxh64 {
  private readonly acc = [(P1 + P2) & MASK, P2, 0n, (MASK + 1n - P1) & MASK];
  private pending = new Uint8Array(0);
  private total = 0;

  update(input: Uint8Array): this {
    this.total += input.length;
    let bytes = input;
    if (this.pending.length > 0) {
      const joined = new Uint8Array(this.pending.length + input.length);
      joined.set(this.pending);
      joined.set(input, this.pending.length);
      bytes = joined;
    }
    let at = 0;
    for (; at + 32 <= bytes.length; at += 32) {
      for (let i = 0; i < 4; i++) this.acc[i] = round(this.acc[i]!, lane64(bytes, at + i * 8));
    }
    this.pending = bytes.slice(at);
    return this;
  }

  digest(): bigint {
    const [a, b, c, d] = this.acc as [bigint, bigint, bigint, bigint];
    let h: bigint;
    if (this.total >= 32) {
      h = (rotl(a, 1n) + rotl(b, 7n) + rotl(c, 12n) + rotl(d, 18n)) & MASK;
      for (const v of this.acc) h = mergeRound(h, v) & MASK;
    } else {
      h = P5;
    }
    h = (h + BigInt(this.total)) & MASK;
    const p = this.pending;
    let at = 0;
    for (; at + 8 <= p.length; at += 8) {
      h ^= round(0n, lane64(p, at));
      h = ((rotl(h, 27n) * P1) & MASK) + P4;
      h &= MASK;
    }
    if (at + 4 <= p.length) {
      h ^= (lane32(p, at) * P1) & MASK;
      h = (((rotl(h, 23n) * P2) & MASK) + P3) & MASK;
      at += 4;
    }
    for (; at < p.length; at++) {
      h ^= (BigInt(p[at]!) * P5) & MASK;
      h = (rotl(h, 11n) * P1) & MASK;
    }
    h ^= h >> 33n;
    h = (h * P2) & MASK;
    h ^= h >> 29n;
    h = (h * P3) & MASK;
    h ^= h >> 32n;
    return h;
  }
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[i] = c >>> 0;
  }
  return table;
})();

/** Streaming CRC-32C (Castagnoli). */
export class Crc32c {
  private state = 0xffffffff;

  update(bytes: Uint8Array): this {
    let c = this.state;
    for (const byte of bytes) c = (c >>> 8) ^ CRC_TABLE[(c ^ byte) & 0xff]!;
    this.state = c >>> 0;
    return this;
  }

  digest(): number {
    return (this.state ^ 0xffffffff) >>> 0;
  }
}

/** A streaming hasher producing the addon's checksum text. */
export interface ChecksumText {
  update(bytes: Uint8Array): void;
  text(): string;
}

export function createChecksum(algorithm: ChecksumAlgorithm): ChecksumText {
  if (algorithm === "xxh64") {
    const h = new Xxh64();
    return {
      update: (bytes) => void h.update(bytes),
      text: () => `xxh64:${h.digest().toString(16).padStart(16, "0")}`,
    };
  }
  const c = new Crc32c();
  return {
    update: (bytes) => void c.update(bytes),
    text: () => `crc32c:${c.digest().toString(16).padStart(8, "0")}`,
  };
}

/** One-shot checksum text of `bytes`. */
export function checksumText(bytes: Uint8Array, algorithm: ChecksumAlgorithm = "xxh64"): string {
  const h = createChecksum(algorithm);
  h.update(bytes);
  return h.text();
}
