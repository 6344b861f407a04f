import { Code, ConnectError } from "@connectrpc/connect";
import { createPayloadClient } from "@pm/client";
import { type CliIO, type Command, type CommandContext, DataPlaneError, EXIT, protoJson } from "./command.ts";
import { COMMANDS, GROUPS, SECTIONS } from "./commands/index.ts";
import { commandHelp, DEFAULT_SERVER, groupHelp, mainHelp, usageLine } from "./help.ts";
import { parseArgs, suggest, UsageError } from "./parse-args.ts";

export type { CliIO } from "./command.ts";
export { EXIT } from "./command.ts";

interface Globals {
  server: string | undefined;
  token: string | undefined;
  json: boolean;
  help: boolean;
}

/**
 * Pulls the global flags out of argv wherever they appear (`payloadctl --json list` and
 * `payloadctl list --json` are the same) and returns the rest in order. Stops at `--`.
 */
function splitGlobals(argv: readonly string[]): { globals: Globals; rest: string[] } {
  const globals: Globals = { server: undefined, token: undefined, json: false, help: false };
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i]!;
    if (tok === "--") {
      rest.push(...argv.slice(i));
      break;
    }
    if (tok === "-h" || tok === "--help") globals.help = true;
    else if (tok === "--json") globals.json = true;
    else if (tok === "--server" || tok === "--token") {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${tok} needs a value`);
      globals[tok === "--server" ? "server" : "token"] = v;
    } else if (tok.startsWith("--server=")) globals.server = tok.slice("--server=".length);
    else if (tok.startsWith("--token=")) globals.token = tok.slice("--token=".length);
    else rest.push(tok);
  }
  return { globals, rest };
}

/** The command named by the first one or two words of `rest`, and the arguments after them. */
function findCommand(rest: readonly string[]): { cmd?: Command; group?: string; args: string[] } {
  const [word, sub] = rest;
  if (word === undefined) return { args: [] };
  if (GROUPS.has(word)) {
    if (sub === undefined || sub.startsWith("-")) return { group: word, args: rest.slice(1) };
    const cmd = COMMANDS.get(`${word} ${sub}`);
    if (!cmd) {
      const subs = [...COMMANDS.keys()].filter((n) => n.startsWith(`${word} `)).map((n) => n.split(" ")[1]!);
      throw new UsageError(
        `unknown command "${word} ${sub}"${suggest(sub, subs, `${word} `)}; run 'payloadctl ${word} --help'`,
      );
    }
    return { cmd, args: rest.slice(2) };
  }
  const cmd = COMMANDS.get(word);
  if (!cmd) {
    if (word.startsWith("-")) throw new UsageError(`unknown flag ${word}`);
    const names = [...new Set([...COMMANDS.keys()].map((n) => n.split(" ")[0]!))];
    throw new UsageError(`unknown command "${word}"${suggest(word, names)}`);
  }
  return { cmd, args: rest.slice(1) };
}

/** `NOT_FOUND` for Code.NotFound: the name the wire contract and the server's docs use. */
export function codeName(code: Code): string {
  return (Code[code] ?? "UNKNOWN").replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** The one line printed for a failed call: `error: NOT_FOUND: payload … does not exist …`. */
export function rpcErrorLine(err: ConnectError, server: string): string {
  const cause = err.cause as { message?: string; cause?: { code?: string; message?: string } } | undefined;
  if (err.code === Code.Unknown && cause instanceof TypeError && cause.message === "fetch failed") {
    const why = cause.cause?.code ?? cause.cause?.message ?? "connection failed";
    return `error: UNAVAILABLE: cannot reach the API at ${server} (${why}); check --server or PM_SERVER`;
  }
  return `error: ${codeName(err.code)}: ${err.rawMessage}`;
}

function writeLine(out: NodeJS.WritableStream, text: string): void {
  out.write(`${text}\n`);
}

/**
 * Runs one payloadctl command line and resolves to its exit code: 0 ok, 1 usage error, 2 RPC
 * error, 3 data-plane or verification error, 130 interrupted. Never throws and never exits the
 * process, so tests can call it directly.
 */
export async function main(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  io: CliIO,
): Promise<number> {
  let cmd: Command | undefined;
  const usageFail = (e: UsageError): number => {
    writeLine(io.stderr, `error: ${e.message}`);
    if (cmd) writeLine(io.stderr, `usage: ${usageLine(cmd)}`);
    writeLine(io.stderr, `run 'payloadctl ${cmd ? `${cmd.name} ` : ""}--help' for details`);
    return EXIT.usage;
  };

  let globals: Globals;
  let args: ReturnType<typeof parseArgs>;
  try {
    const split = splitGlobals(argv);
    globals = split.globals;
    // `payloadctl help [command]` is another spelling of `payloadctl [command] --help`.
    if (split.rest[0] === "help") {
      globals.help = true;
      split.rest.shift();
    }
    const found = findCommand(split.rest);
    cmd = found.cmd;
    if (!cmd) {
      const text = found.group
        ? groupHelp(
            found.group,
            [...COMMANDS.values()].filter((c) => c.name.startsWith(`${found.group} `)),
          )
        : mainHelp(SECTIONS);
      if (globals.help) {
        writeLine(io.stdout, text);
        return EXIT.ok;
      }
      writeLine(io.stderr, text);
      writeLine(io.stderr, "");
      throw new UsageError(found.group ? `missing ${found.group} subcommand` : "missing command");
    }
    if (globals.help) {
      writeLine(io.stdout, commandHelp(cmd));
      return EXIT.ok;
    }
    args = parseArgs(found.args, cmd.flags ?? {}, cmd.positionals);
  } catch (e) {
    if (e instanceof UsageError) return usageFail(e);
    throw e;
  }

  const server = globals.server ?? env.PM_SERVER ?? DEFAULT_SERVER;
  try {
    const u = new URL(server);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error("not http(s)");
  } catch {
    return usageFail(new UsageError(`--server ${JSON.stringify(server)} is not an http(s) URL`));
  }
  const token = globals.token ?? env.PM_TOKEN;
  const signal = io.signal ?? new AbortController().signal;
  const ctx: CommandContext = {
    client: createPayloadClient({
      baseUrl: server,
      ...(token ? { token } : {}),
      ...(io.transport ? { transport: io.transport } : {}),
    }),
    io,
    json: globals.json,
    server,
    signal,
    print: (text) => writeLine(io.stdout, text),
    note: (text) => writeLine(io.stderr, text),
    respond(schema, msg, human) {
      if (globals.json) writeLine(io.stdout, protoJson(schema, msg));
      else human();
    },
  };

  try {
    return (await cmd.run(ctx, args)) ?? EXIT.ok;
  } catch (e) {
    if (e instanceof UsageError) return usageFail(e);
    if (signal.aborted) {
      writeLine(io.stderr, "interrupted");
      return EXIT.interrupted;
    }
    if (e instanceof ConnectError) {
      writeLine(io.stderr, rpcErrorLine(e, server));
      return EXIT.rpc;
    }
    const msg = e instanceof Error ? e.message : String(e);
    writeLine(io.stderr, `error: ${e instanceof DataPlaneError ? "" : "unexpected: "}${msg}`);
    return EXIT.dataPlane;
  }
}
