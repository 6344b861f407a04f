import { readFile } from "node:fs/promises";
import {
  AppendPayloadMetadataEventResponseSchema,
  GetPayloadMetadataResponseSchema,
  ListPayloadMetadataEventsResponseSchema,
  MetadataUpdateMode,
  UpdatePayloadMetadataResponseSchema,
} from "@pm/rpc";
import type { Command } from "../command.ts";
import { formatData, formatFields, formatId, formatTable, formatTimestamp } from "../format.ts";
import { type FlagSpecs, type ParsedArgs, UsageError } from "../parse-args.ts";
import { parseId, parseSmallUint, parseTime } from "../parse-values.ts";

const DATA_FLAGS: FlagSpecs = {
  data: { type: "string", value: "STRING", help: "the data, as UTF-8 text" },
  "data-file": { type: "string", value: "FILE", help: "read the data from a file (binary is fine)" },
  schema: { type: "string", value: "S", help: "schema name of the data, e.g. application/json" },
};

async function dataOf(args: ParsedArgs): Promise<Uint8Array | undefined> {
  const text = args.string("data");
  const file = args.string("data-file");
  if (text !== undefined && file !== undefined) throw new UsageError("give --data or --data-file, not both");
  if (text !== undefined) return new TextEncoder().encode(text);
  if (file === undefined) return undefined;
  try {
    return new Uint8Array(await readFile(file));
  } catch (e) {
    throw new UsageError(`cannot read --data-file ${file}: ${(e as Error).message}`);
  }
}

const get: Command = {
  name: "metadata get",
  summary: "show a payload's metadata (GetPayloadMetadata)",
  positionals: [{ name: "id" }],
  flags: { raw: { type: "boolean", help: "write only the data bytes to stdout, unchanged" } },
  async run(ctx, args) {
    const res = await ctx.client.catalog.getPayloadMetadata(
      { id: parseId(args.positionals[0]!) },
      { signal: ctx.signal },
    );
    if (args.bool("raw") && !ctx.json) {
      ctx.io.stdout.write(res.metadata?.data ?? new Uint8Array());
      return undefined;
    }
    ctx.respond(GetPayloadMetadataResponseSchema, res, () =>
      ctx.print(
        formatFields([
          ["payload", formatId(res.metadata?.id)],
          ["schema", res.metadata?.schema || "-"],
          ["updated", formatTimestamp(res.updatedAt)],
          ["data", formatData(res.metadata?.data ?? new Uint8Array())],
        ]),
      ),
    );
    return undefined;
  },
};

const set: Command = {
  name: "metadata set",
  summary: "store a payload's metadata (UpdatePayloadMetadata)",
  description:
    "MERGE (the default) keeps the stored data or schema where the new one is empty;\n" +
    "--replace overwrites both.",
  positionals: [{ name: "id" }],
  flags: {
    ...DATA_FLAGS,
    replace: { type: "boolean", help: "overwrite instead of merging" },
    actor: { type: "string", value: "WHO", help: "who made the change (audit)" },
    reason: { type: "string", value: "WHY", help: "why (audit)" },
  },
  async run(ctx, args) {
    const id = parseId(args.positionals[0]!);
    const data = await dataOf(args);
    const schema = args.string("schema");
    if (data === undefined && schema === undefined && !args.bool("replace"))
      throw new UsageError("nothing to set: give --data, --data-file or --schema");
    const res = await ctx.client.catalog.updatePayloadMetadata(
      {
        id,
        mode: args.bool("replace") ? MetadataUpdateMode.REPLACE : MetadataUpdateMode.MERGE,
        metadata: { id, data: data ?? new Uint8Array(), schema: schema ?? "" },
        actor: args.string("actor") ?? "",
        reason: args.string("reason") ?? "",
      },
      { signal: ctx.signal },
    );
    ctx.respond(UpdatePayloadMetadataResponseSchema, res, () =>
      ctx.print(
        formatFields([
          ["payload", formatId(res.id ?? id)],
          ["schema", res.metadata?.schema || "-"],
          ["updated", formatTimestamp(res.updatedAt)],
          ["data", formatData(res.metadata?.data ?? new Uint8Array())],
        ]),
      ),
    );
    return undefined;
  },
};

const events: Command = {
  name: "metadata events",
  summary: "list a payload's metadata events (ListPayloadMetadataEvents)",
  positionals: [{ name: "id" }],
  flags: {
    since: {
      type: "string",
      value: "TIME",
      help: "only events at or after this time (RFC 3339 or epoch ms)",
    },
    until: { type: "string", value: "TIME", help: "only events before this time" },
    "page-size": { type: "string", value: "N", help: "events per page" },
    "page-token": { type: "string", value: "T", help: "continue from a previous page" },
  },
  async run(ctx, args) {
    const since = args.string("since");
    const until = args.string("until");
    const size = args.string("page-size");
    const res = await ctx.client.catalog.listPayloadMetadataEvents(
      {
        id: parseId(args.positionals[0]!),
        pageSize: size === undefined ? 0 : parseSmallUint(size, "--page-size"),
        pageToken: args.string("page-token") ?? "",
        ...(since === undefined ? {} : { since: parseTime(since, "--since") }),
        ...(until === undefined ? {} : { until: parseTime(until, "--until") }),
      },
      { signal: ctx.signal },
    );
    ctx.respond(ListPayloadMetadataEventsResponseSchema, res, () => {
      ctx.print(
        formatTable(
          ["TIME", "SOURCE", "VERSION", "DATA"],
          res.events.map((e) => [
            formatTimestamp(e.ts),
            e.source || "-",
            e.version || "-",
            formatData(e.data),
          ]),
        ),
      );
      if (res.nextPageToken) ctx.note(`next page: --page-token ${res.nextPageToken}`);
    });
    return undefined;
  },
};

const append: Command = {
  name: "metadata append",
  summary: "append a metadata event to a payload's history (AppendPayloadMetadataEvent)",
  positionals: [{ name: "id" }],
  flags: {
    ...DATA_FLAGS,
    source: { type: "string", value: "S", help: "what produced the event" },
    version: { type: "string", value: "V", help: "version of the producer or the data" },
  },
  async run(ctx, args) {
    const id = parseId(args.positionals[0]!);
    const data = await dataOf(args);
    if (data === undefined) throw new UsageError("give the event's --data or --data-file");
    const res = await ctx.client.catalog.appendPayloadMetadataEvent(
      {
        id,
        metadata: { id, data, schema: args.string("schema") ?? "" },
        source: args.string("source") ?? "",
        version: args.string("version") ?? "",
      },
      { signal: ctx.signal },
    );
    ctx.respond(AppendPayloadMetadataEventResponseSchema, res, () =>
      ctx.print(`event appended to ${formatId(res.id ?? id)} at ${formatTimestamp(res.eventTime)}`),
    );
    return undefined;
  },
};

export const metadataCommands: readonly Command[] = [get, set, events, append];
