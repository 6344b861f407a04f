import type { Command } from "../command.ts";
import { get, put } from "./data-plane.ts";
import { lease, release, renew } from "./leases.ts";
import { allocate, commit, deleteCommand, list, resolve } from "./lifecycle.ts";
import { lineageCommands } from "./lineage.ts";
import { metadataCommands } from "./metadata.ts";
import { stats } from "./stats.ts";
import { streamCommands, watch } from "./streams.ts";
import { pin, prefetch, promote, spill, unpin } from "./tiering.ts";

/** Every command, in the sections the top-level help shows them in. */
export const SECTIONS: readonly { readonly title: string; readonly commands: readonly Command[] }[] = [
  { title: "bytes (data plane)", commands: [put, get] },
  { title: "payloads", commands: [allocate, commit, resolve, list, deleteCommand] },
  { title: "leases", commands: [lease, renew, release] },
  { title: "tiers", commands: [promote, spill, prefetch, pin, unpin] },
  { title: "metadata and lineage", commands: [...metadataCommands, ...lineageCommands] },
  { title: "streams", commands: [...streamCommands, watch] },
  { title: "cluster", commands: [stats] },
];

export const COMMANDS: ReadonlyMap<string, Command> = new Map(
  SECTIONS.flatMap((s) => s.commands).map((c) => [c.name, c]),
);

/** Words that take a subcommand: `metadata get`, `lineage add`, `stream read`, … */
export const GROUPS: ReadonlySet<string> = new Set(
  [...COMMANDS.keys()].filter((n) => n.includes(" ")).map((n) => n.split(" ")[0]!),
);
