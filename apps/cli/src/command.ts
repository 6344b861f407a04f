import type { Writable } from "node:stream";
import { type DescMessage, type MessageShape, toJson } from "@bufbuild/protobuf";
import type { Transport } from "@connectrpc/connect";
import type { PayloadClient } from "@pm/client";
import type { FlagSpecs, ParsedArgs, PositionalSpec } from "./parse-args.ts";

/** Where the CLI reads its terminal state and writes its output; the bin passes the process's own. */
export interface CliIO {
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly stdoutIsTTY?: boolean;
  readonly stderrIsTTY?: boolean;
  /** Aborted on Ctrl-C: calls are cancelled and data-plane copies stop and clean up. */
  readonly signal?: AbortSignal;
  /** Replaces the HTTP transport, so tests can route calls to in-process fakes. */
  readonly transport?: Transport;
}

/** Exit codes of payloadctl. */
export const EXIT = {
  ok: 0,
  usage: 1,
  rpc: 2,
  dataPlane: 3,
  interrupted: 130,
} as const;

/** A failure while moving or checking bytes (mapping, file I/O, size mismatch): exit code 3. */
export class DataPlaneError extends Error {
  override readonly name = "DataPlaneError";
}

export interface CommandContext {
  readonly client: PayloadClient;
  readonly io: CliIO;
  readonly json: boolean;
  readonly server: string;
  readonly signal: AbortSignal;
  /** Writes one line (or several) to stdout. */
  print(text: string): void;
  /** Writes one line to stderr: notes and hints that must not pollute parseable output. */
  note(text: string): void;
  /** Prints a response as protojson under --json, else runs `human`. */
  respond<D extends DescMessage>(schema: D, msg: MessageShape<D>, human: () => void): void;
}

export interface Command {
  /** The words that select it: "allocate", or "metadata get" for a subcommand of a group. */
  readonly name: string;
  readonly summary: string;
  /** Longer explanation shown by --help. */
  readonly description?: string;
  readonly positionals?: readonly PositionalSpec[];
  readonly flags?: FlagSpecs;
  /** Extra usage lines after the generated one, e.g. alternatives. */
  readonly examples?: readonly string[];
  /** Resolves to an exit code; nothing means 0. */
  run(ctx: CommandContext, args: ParsedArgs): Promise<number | undefined>;
}

/** Protojson of a message, with zero values written out like the seed gateway does. */
export function protoJson<D extends DescMessage>(schema: D, msg: MessageShape<D>): string {
  return JSON.stringify(toJson(schema, msg, { alwaysEmitImplicit: true }));
}
