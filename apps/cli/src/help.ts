import type { Command } from "./command.ts";
import type { FlagSpec, FlagSpecs } from "./parse-args.ts";

export const DEFAULT_SERVER = "http://127.0.0.1:8080";

/** Flags every command accepts; parsed before the command's own. */
export const GLOBAL_FLAGS: FlagSpecs = {
  server: { type: "string", value: "URL", help: `API URL (env PM_SERVER, default ${DEFAULT_SERVER})` },
  token: { type: "string", value: "T", help: "bearer token of your namespace (env PM_TOKEN)" },
  json: { type: "boolean", help: "print the response as protojson instead of a table" },
  help: { type: "boolean", short: "h", help: "show help for the command" },
};

const EXIT_CODES =
  "exit codes: 0 ok, 1 usage error, 2 RPC error (its code is printed), 3 data-plane or\n" +
  "verification error, 130 interrupted";

function flagLabel(name: string, spec: FlagSpec): string {
  const short = spec.short ? `-${spec.short}, ` : "";
  return `${short}--${name}${spec.type === "string" ? ` ${spec.value ?? "VALUE"}` : ""}`;
}

function flagLines(flags: FlagSpecs): string[] {
  const entries = Object.entries(flags);
  const w = Math.max(...entries.map(([n, s]) => flagLabel(n, s).length));
  return entries.map(
    ([n, s]) => `  ${flagLabel(n, s).padEnd(w)}  ${s.help}${s.required ? " (required)" : ""}`,
  );
}

/** `payloadctl allocate --size SIZE --tier TIER [--ttl-ms MS] [--no-evict] …` */
export function usageLine(cmd: Command): string {
  const parts = [`payloadctl ${cmd.name}`];
  for (const p of cmd.positionals ?? []) {
    const t = `<${p.name}>${p.variadic ? "..." : ""}`;
    parts.push(p.optional ? `[${t}]` : t);
  }
  for (const [name, spec] of Object.entries(cmd.flags ?? {})) {
    const t = `--${name}${spec.type === "string" ? ` ${spec.value ?? "VALUE"}` : ""}${spec.multiple ? "..." : ""}`;
    parts.push(spec.required ? t : `[${t}]`);
  }
  return parts.join(" ");
}

export function commandHelp(cmd: Command): string {
  const lines = [`usage: ${usageLine(cmd)}`, "", `${cmd.summary[0]!.toUpperCase()}${cmd.summary.slice(1)}.`];
  if (cmd.description) lines.push("", cmd.description);
  if (cmd.flags && Object.keys(cmd.flags).length > 0) lines.push("", "flags:", ...flagLines(cmd.flags));
  if (cmd.examples) lines.push("", "examples:", ...cmd.examples.map((e) => `  ${e}`));
  lines.push("", "global flags:", ...flagLines(GLOBAL_FLAGS), "", EXIT_CODES);
  return lines.join("\n");
}

function commandList(commands: readonly Command[]): string[] {
  const w = Math.max(...commands.map((c) => c.name.length));
  return commands.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`);
}

export function groupHelp(group: string, commands: readonly Command[]): string {
  return [
    `usage: payloadctl ${group} <command> [args] [flags]`,
    "",
    "commands:",
    ...commandList(commands),
    "",
    `run 'payloadctl ${group} <command> --help' for the flags of each`,
  ].join("\n");
}

export function mainHelp(sections: readonly { title: string; commands: readonly Command[] }[]): string {
  const all = sections.flatMap((s) => s.commands);
  const w = Math.max(...all.map((c) => c.name.length));
  const lines = [
    "payloadctl: command line for Payload Manager (payloads, leases, tiers, metadata, lineage, streams)",
    "",
    "usage: payloadctl [global flags] <command> [args] [flags]",
  ];
  for (const s of sections) {
    lines.push("", `${s.title}:`, ...s.commands.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`));
  }
  lines.push(
    "",
    "global flags:",
    ...flagLines(GLOBAL_FLAGS),
    "",
    "Ids are UUID text (or the base64url of the 16 bytes, as --json prints them).",
    "Sizes take suffixes: 4096, 512KiB, 64MiB, 1GiB. Durations: 1500, 30s, 5m, 2h.",
    "",
    EXIT_CODES,
    "",
    "run 'payloadctl <command> --help' for the flags of a command",
  );
  return lines.join("\n");
}
