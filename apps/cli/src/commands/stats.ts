import { type StatsResponse, StatsResponseSchema } from "@pm/rpc";
import type { Command } from "../command.ts";
import { formatBytes, formatTable, formatTimestamp, tierName } from "../format.ts";

/** The tier table and the agent table of a Stats response. */
export function formatStats(s: StatsResponse): string {
  const tiers = formatTable(
    ["TIER", "PAYLOADS", "BYTES"],
    [
      ["GPU", String(s.payloadsGpu), formatBytes(s.bytesGpu)],
      ["RAM", String(s.payloadsRam), formatBytes(s.bytesRam)],
      ["DISK", String(s.payloadsDisk), formatBytes(s.bytesDisk)],
      ["OBJECT", String(s.payloadsObject), formatBytes(s.bytesObject)],
    ],
    ["left", "right", "right"],
  );
  const rows: string[][] = [];
  for (const a of s.agents) {
    const head = [
      a.agentId,
      a.host || "-",
      a.endpoint || "-",
      a.live ? "yes" : "no",
      formatTimestamp(a.lastHeartbeat),
    ];
    if (a.tiers.length === 0) rows.push([...head, "-", "-", "-", "-"]);
    for (const t of a.tiers) {
      const pct =
        t.capacityBytes > 0n ? `${((Number(t.usedBytes) / Number(t.capacityBytes)) * 100).toFixed(1)}%` : "-";
      rows.push([...head, tierName(t.tier), formatBytes(t.usedBytes), formatBytes(t.capacityBytes), pct]);
    }
  }
  const agents =
    s.agents.length === 0
      ? "no tier agents registered"
      : formatTable(
          ["AGENT", "HOST", "ENDPOINT", "LIVE", "LAST HEARTBEAT", "TIER", "USED", "CAPACITY", "USE"],
          rows,
          ["left", "left", "left", "left", "left", "left", "right", "right", "right"],
        );
  return `${tiers}\n\n${agents}`;
}

export const stats: Command = {
  name: "stats",
  summary: "payload counts and bytes per tier, and each tier agent's capacity (Stats)",
  async run(ctx) {
    const res = await ctx.client.admin.stats({}, { signal: ctx.signal });
    ctx.respond(StatsResponseSchema, res, () => ctx.print(formatStats(res)));
    return undefined;
  },
};
