import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { idBytes } from "@pm/client";
import { EvictionPriority, PayloadDescriptorSchema, PayloadState, StatsResponseSchema, Tier } from "@pm/rpc";
import { describe, expect, it } from "vitest";
import { formatStats } from "./commands/stats.ts";
import {
  descriptorFields,
  formatBytes,
  formatData,
  formatFields,
  formatId,
  formatLocation,
  formatMs,
  formatProgress,
  formatTable,
  formatTimestamp,
} from "./format.ts";
import { ProgressBar, progressFor } from "./progress-bar.ts";

const UUID = "123e4567-e89b-42d3-a456-426614174000";
const T0 = Date.UTC(2026, 3, 21, 10, 0, 0);

describe("scalars", () => {
  it("formats byte counts in binary units", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1023n)).toBe("1023 B");
    expect(formatBytes(1024)).toBe("1.00 KiB");
    expect(formatBytes(5n * 1024n * 1024n)).toBe("5.00 MiB");
    expect(formatBytes(190.7 * 2 ** 20)).toBe("190.7 MiB");
    expect(formatBytes(2n ** 40n)).toBe("1.00 TiB");
  });

  it("formats times in UTC to the second, and unset times as '-'", () => {
    expect(formatMs(T0 + 123)).toBe("2026-04-21T10:00:00Z");
    expect(formatMs(0n)).toBe("-");
    expect(formatTimestamp(timestampFromMs(T0))).toBe("2026-04-21T10:00:00Z");
    expect(formatTimestamp(undefined, "never")).toBe("never");
  });

  it("prints ids as UUID text, tolerating the seed's 36-byte text ids", () => {
    expect(formatId(idBytes(UUID))).toBe(UUID);
    expect(formatId({ value: new TextEncoder().encode(UUID) })).toBe(UUID);
    expect(formatId({ value: new Uint8Array([1, 2]) })).toBe("0x0102");
    expect(formatId(undefined)).toBe("-");
  });

  it("shows data as text when printable, else base64", () => {
    expect(formatData(new TextEncoder().encode('{"a":1}'))).toBe('{"a":1}');
    expect(formatData(new Uint8Array([0xff, 0xfe]))).toBe("base64://4=");
    expect(formatData(new Uint8Array([104, 0, 105]))).toBe("base64:aABp");
    expect(formatData(new Uint8Array())).toBe("");
  });
});

describe("tables", () => {
  it("aligns columns, right-aligns where asked, and trims trailing blanks", () => {
    const t = formatTable(
      ["ID", "SIZE", "NOTE"],
      [
        ["a", "1 B", ""],
        ["bbbb", "10.0 MiB", "x"],
      ],
      ["left", "right"],
    );
    expect(t.split("\n")).toEqual(["ID        SIZE  NOTE", "a          1 B", "bbbb  10.0 MiB  x"]);
  });

  it("aligns key/value fields", () => {
    expect(
      formatFields([
        ["id", "x"],
        ["version", "2"],
      ]),
    ).toBe("id       x\nversion  2");
  });
});

describe("descriptors", () => {
  const base = {
    payloadId: idBytes(UUID),
    state: PayloadState.ACTIVE,
    sizeBytes: 5n * 2n ** 20n,
    version: 2n,
    createdAt: timestampFromMs(T0),
    agentId: "agent-1",
    host: "node-a",
  };

  it("lists what an operator looks at, in order", () => {
    const d = create(PayloadDescriptorSchema, {
      ...base,
      tier: Tier.RAM,
      location: { case: "ram", value: { shmName: "/pm-x.bin", lengthBytes: 5n * 2n ** 20n } },
      evictionPolicy: { priority: EvictionPriority.HIGH, spillTarget: Tier.DISK },
    });
    expect(formatFields(descriptorFields(d)).split("\n")).toEqual([
      `payload   ${UUID}`,
      "tier      RAM",
      "state     ACTIVE",
      "size      5.00 MiB (5242880 bytes)",
      "version   2",
      "location  shm /pm-x.bin",
      "agent     agent-1 on node-a",
      "created   2026-04-21T10:00:00Z",
      "expires   never",
      "eviction  priority HIGH, spill to DISK",
    ]);
  });

  it("describes every kind of location", () => {
    const loc = (d: Parameters<typeof create<typeof PayloadDescriptorSchema>>[1]) =>
      formatLocation(create(PayloadDescriptorSchema, d));
    expect(loc({ tier: Tier.DISK, location: { case: "disk", value: { path: "/d/x.bin" } } })).toBe(
      "file /d/x.bin",
    );
    expect(
      loc({ tier: Tier.DISK, location: { case: "disk", value: { path: "/d/x", offsetBytes: 4096n } } }),
    ).toBe("file /d/x @4096");
    // The seed reuses `disk` for object placements; the tier tells them apart.
    expect(loc({ tier: Tier.OBJECT, location: { case: "disk", value: { path: "s3://b/k" } } })).toBe(
      "object s3://b/k",
    );
    expect(loc({ tier: Tier.OBJECT, location: { case: "object", value: { bucket: "b", key: "k" } } })).toBe(
      "object s3://b/k",
    );
    expect(
      loc({
        tier: Tier.GPU,
        location: { case: "gpu", value: { deviceId: 1, ipcHandle: new Uint8Array(64) } },
      }),
    ).toBe("gpu device 1 (IPC handle, 64 B)");
    expect(loc({ tier: Tier.OBJECT })).toBe("-");
  });
});

describe("stats", () => {
  it("prints the tier table and one row per agent tier", () => {
    const s = create(StatsResponseSchema, {
      payloadsRam: 2n,
      bytesRam: 10n * 2n ** 20n,
      payloadsObject: 1n,
      bytesObject: 2n ** 30n,
      agents: [
        {
          agentId: "a1",
          host: "h1",
          endpoint: "http://h1:9000",
          live: true,
          lastHeartbeat: timestampFromMs(T0),
          tiers: [{ tier: Tier.RAM, capacityBytes: 2n ** 30n, usedBytes: 2n ** 28n }],
        },
        { agentId: "a2", live: false },
      ],
    });
    const lines = formatStats(s).split("\n");
    expect(lines.slice(0, 5)).toEqual([
      "TIER    PAYLOADS     BYTES",
      "GPU            0       0 B",
      "RAM            2  10.0 MiB",
      "DISK           0       0 B",
      "OBJECT         1  1.00 GiB",
    ]);
    expect(lines[7]).toMatch(
      /^a1 +h1 +http:\/\/h1:9000 +yes +2026-04-21T10:00:00Z +RAM +256\.0 MiB +1\.00 GiB +25\.0%$/,
    );
    expect(lines[8]).toMatch(/^a2 +- +- +no +- +- +- +- +-$/);
  });

  it("says so when no agent is registered", () => {
    expect(formatStats(create(StatsResponseSchema))).toMatch(/\n\nno tier agents registered$/);
  });
});

describe("progress", () => {
  it("formats percentage, MiB done and MB/s", () => {
    expect(formatProgress(50 * 2 ** 20, 100 * 2 ** 20, 1000)).toBe(" 50% 50.0/100.0 MiB 52.4 MB/s");
    expect(formatProgress(0, 0, 0)).toBe("100% 0.0/0.0 MiB 0.0 MB/s");
  });

  it("redraws at most once per interval, always at the end, and ends the line", () => {
    let now = 0;
    const out: string[] = [];
    const bar = new ProgressBar({ write: (s: string) => out.push(s) }, "put", 100 * 2 ** 20, () => now, 100);
    bar.update(10 * 2 ** 20);
    now = 50;
    bar.update(20 * 2 ** 20); // within the interval: skipped
    now = 150;
    bar.update(30 * 2 ** 20);
    now = 160;
    bar.update(100 * 2 ** 20); // the end is always drawn
    bar.finish(100 * 2 ** 20);
    expect(out.filter((s) => s.startsWith("\r")).map((s) => s.trim())).toEqual([
      expect.stringMatching(/^put {2}10% /),
      expect.stringMatching(/^put {2}30% /),
      expect.stringMatching(/^put 100% /),
      expect.stringMatching(/^put 100% /),
    ]);
    expect(out.at(-1)).toBe("\n");
  });

  it("shows a bar only for big payloads on a terminal in human mode", () => {
    const w = { write: () => true };
    expect(progressFor(w, true, false, "put", 64 * 2 ** 20)).toBeInstanceOf(ProgressBar);
    expect(progressFor(w, true, false, "put", 64 * 2 ** 20 - 1)).toBeUndefined();
    expect(progressFor(w, false, false, "put", 2 ** 30)).toBeUndefined();
    expect(progressFor(w, true, true, "put", 2 ** 30)).toBeUndefined();
  });
});
