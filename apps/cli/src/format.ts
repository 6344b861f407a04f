import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import { EvictionPriority, type PayloadDescriptor, PayloadState, Tier } from "@pm/rpc";

/** Human byte counts in binary units: `512 B`, `5.0 MiB`, `1.50 GiB`. */
export function formatBytes(n: bigint | number): string {
  const v = Number(n);
  if (v < 1024) return `${v} B`;
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  let x = v;
  let u = -1;
  while (x >= 1024 && u < units.length - 1) {
    x /= 1024;
    u++;
  }
  return `${x.toFixed(x < 10 ? 2 : 1)} ${units[u]}`;
}

/** UTC time to the second; `-` for an unset time. */
export function formatMs(ms: bigint | number): string {
  const v = Number(ms);
  if (v <= 0) return "-";
  return new Date(v).toISOString().replace(/\.\d{3}Z$/, "Z");
}

export function formatTimestamp(ts: Timestamp | undefined, unset = "-"): string {
  return ts ? formatMs(timestampMs(ts)) : unset;
}

/**
 * UUID text of a wire id. Tolerates the seed's lineage quirk (36 bytes of ASCII UUID text instead
 * of 16 raw bytes); anything else is shown as hex so a malformed id is still visible.
 */
export function formatId(id: { value: Uint8Array } | undefined): string {
  const b = id?.value;
  if (!b || b.length === 0) return "-";
  if (b.length === 36) return new TextDecoder().decode(b);
  const h = Buffer.from(b).toString("hex");
  if (b.length !== 16) return `0x${h}`;
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function tierName(t: Tier): string {
  return Tier[t] ?? String(t);
}

export function stateName(s: PayloadState): string {
  return PayloadState[s] ?? String(s);
}

/** Bytes as text when they are printable UTF-8, else `base64:<…>`. */
export function formatData(b: Uint8Array): string {
  if (b.length === 0) return "";
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(b);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: detecting control characters is the point
    if (!/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text)) return text;
  } catch {
    // not UTF-8: fall through to base64
  }
  return `base64:${Buffer.from(b).toString("base64")}`;
}

export type Align = "left" | "right";

/** A plain-text table: a header row, columns separated by two spaces, no trailing blanks. */
export function formatTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  align: readonly Align[] = [],
): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    headers
      .map((_, i) => {
        const c = cells[i] ?? "";
        return align[i] === "right" ? c.padStart(widths[i]!) : c.padEnd(widths[i]!);
      })
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

/** `key  value` lines with the keys aligned. */
export function formatFields(fields: readonly (readonly [string, string])[]): string {
  const w = Math.max(0, ...fields.map(([k]) => k.length));
  return fields.map(([k, v]) => `${k.padEnd(w)}  ${v}`.trimEnd()).join("\n");
}

/** Where a descriptor's bytes are, in one line. */
export function formatLocation(d: PayloadDescriptor): string {
  const l = d.location;
  switch (l.case) {
    case "ram":
      return `shm ${l.value.shmName}`;
    case "disk":
      return d.tier === Tier.OBJECT
        ? `object ${l.value.path}`
        : `file ${l.value.path}${l.value.offsetBytes > 0n ? ` @${l.value.offsetBytes}` : ""}`;
    case "gpu":
      return `gpu device ${l.value.deviceId} (IPC handle, ${l.value.ipcHandle.length} B)`;
    case "object": {
      const o = l.value;
      const url = o.url ? ` (presigned URL until ${formatTimestamp(o.urlExpiresAt)})` : "";
      return `object s3://${o.bucket}/${o.key}${url}`;
    }
    default:
      return "-";
  }
}

/** The fields of a descriptor an operator looks at, in reading order. */
export function descriptorFields(d: PayloadDescriptor): [string, string][] {
  const fields: [string, string][] = [
    ["payload", formatId(d.payloadId)],
    ["tier", tierName(d.tier)],
    ["state", stateName(d.state)],
    ["size", `${formatBytes(d.sizeBytes)} (${d.sizeBytes} bytes)`],
    ["version", String(d.version)],
    ["location", formatLocation(d)],
  ];
  if (d.location.case === "object" && d.location.value.url) fields.push(["url", d.location.value.url]);
  if (d.agentId || d.host) fields.push(["agent", `${d.agentId || "-"}${d.host ? ` on ${d.host}` : ""}`]);
  fields.push(["created", formatTimestamp(d.createdAt)], ["expires", formatTimestamp(d.expiresAt, "never")]);
  const e = d.evictionPolicy;
  if (e) {
    const parts = [
      e.priority ? `priority ${EvictionPriority[e.priority] ?? e.priority}` : "",
      e.spillTarget ? `spill to ${tierName(e.spillTarget)}` : "",
      e.minResidencyTier ? `stay on ${tierName(e.minResidencyTier)} or faster` : "",
      e.requireDurable ? "durable copy required" : "",
    ].filter(Boolean);
    if (parts.length > 0) fields.push(["eviction", parts.join(", ")]);
  }
  return fields;
}

/** One-line transfer progress: `42% 210.0/500.0 MiB 850.3 MB/s`. */
export function formatProgress(done: number, total: number, elapsedMs: number): string {
  const pct = total > 0 ? Math.floor((done / total) * 100) : 100;
  const rate = elapsedMs > 0 ? done / 1e6 / (elapsedMs / 1000) : 0;
  const mib = (n: number) => (n / 2 ** 20).toFixed(1);
  return `${String(pct).padStart(3)}% ${mib(done)}/${mib(total)} MiB ${rate.toFixed(1)} MB/s`;
}
