import { create } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  AppendResponseSchema,
  GetCommittedResponseSchema,
  GetRangeResponseSchema,
  ListStreamsResponseSchema,
  ReadResponseSchema,
  type StreamEntry,
  type SubscribeRequest,
  SubscribeResponseSchema,
} from "@pm/rpc";
import { type Command, protoJson } from "../command.ts";
import { formatId, formatTable, formatTimestamp } from "../format.ts";
import { UsageError } from "../parse-args.ts";
import { parseId, parseSmallUint, parseStreamRef, parseTag, parseTime, parseUint } from "../parse-values.ts";

const STREAM = { name: "stream" } as const;

function streamText(s: { namespace: string; name: string } | undefined): string {
  return s ? (s.namespace ? `${s.namespace}/${s.name}` : s.name) : "-";
}

function tagsText(tags: Readonly<Record<string, string>>): string {
  return Object.entries(tags)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

function entryCells(e: StreamEntry): string[] {
  return [
    String(e.offset),
    formatId(e.payloadId),
    formatTimestamp(e.eventTime),
    formatTimestamp(e.appendTime),
    e.durationNs > 0n ? String(e.durationNs) : "-",
    tagsText(e.tags) || "-",
  ];
}

/** The entries of a Read or GetRange response as a table. */
export function formatEntries(entries: readonly StreamEntry[]): string {
  return formatTable(
    ["OFFSET", "PAYLOAD", "EVENT TIME", "APPENDED", "DURATION NS", "TAGS"],
    entries.map(entryCells),
    ["right"],
  );
}

const createStream: Command = {
  name: "stream create",
  summary: "create a stream (CreateStream)",
  positionals: [STREAM],
  flags: {
    "max-entries": { type: "string", value: "N", help: "retention: keep at most N entries (0 = no limit)" },
    "max-age-sec": { type: "string", value: "S", help: "retention: drop entries older than S seconds" },
  },
  async run(ctx, args) {
    const stream = parseStreamRef(args.positionals[0]!);
    const n = args.string("max-entries");
    const age = args.string("max-age-sec");
    await ctx.client.stream.createStream(
      {
        stream,
        retentionMaxEntries: n === undefined ? 0n : parseUint(n, "--max-entries"),
        retentionMaxAgeSec: age === undefined ? 0n : parseUint(age, "--max-age-sec"),
      },
      { signal: ctx.signal },
    );
    ctx.respond(EmptySchema, create(EmptySchema), () => ctx.print(`created stream ${streamText(stream)}`));
    return undefined;
  },
};

const deleteStream: Command = {
  name: "stream delete",
  summary: "delete a stream and its entries (DeleteStream)",
  positionals: [STREAM],
  async run(ctx, args) {
    const stream = parseStreamRef(args.positionals[0]!);
    await ctx.client.stream.deleteStream({ stream }, { signal: ctx.signal });
    ctx.respond(EmptySchema, create(EmptySchema), () => ctx.print(`deleted stream ${streamText(stream)}`));
    return undefined;
  },
};

const append: Command = {
  name: "stream append",
  summary: "append one entry per payload to a stream (Append)",
  positionals: [STREAM, { name: "payload-id", variadic: true }],
  flags: {
    tag: { type: "string", multiple: true, value: "K=V", help: "tag every entry (repeatable)" },
    "event-time": { type: "string", value: "TIME", help: "when the event happened (RFC 3339 or epoch ms)" },
    "duration-ns": { type: "string", value: "NS", help: "duration the entries cover, in nanoseconds" },
  },
  async run(ctx, args) {
    const [ref, ...ids] = args.positionals;
    const stream = parseStreamRef(ref!);
    const tags = Object.fromEntries(args.strings("tag").map(parseTag));
    const et = args.string("event-time");
    const dur = args.string("duration-ns");
    const eventTime = et === undefined ? undefined : parseTime(et, "--event-time");
    const durationNs = dur === undefined ? 0n : parseUint(dur, "--duration-ns");
    const res = await ctx.client.stream.append(
      {
        stream,
        items: ids.map((id) => ({
          payloadId: parseId(id),
          durationNs,
          tags,
          ...(eventTime ? { eventTime } : {}),
        })),
      },
      { signal: ctx.signal },
    );
    ctx.respond(AppendResponseSchema, res, () =>
      ctx.print(
        res.firstOffset === res.lastOffset
          ? `appended at offset ${res.firstOffset}`
          : `appended at offsets ${res.firstOffset}..${res.lastOffset}`,
      ),
    );
    return undefined;
  },
};

const read: Command = {
  name: "stream read",
  summary: "read entries from an offset (Read)",
  positionals: [STREAM],
  flags: {
    "start-offset": { type: "string", value: "N", help: "first offset to read (default 0)" },
    "max-entries": { type: "string", value: "N", help: "at most this many entries (server default when 0)" },
    "not-before": { type: "string", value: "TIME", help: "skip entries whose event time is earlier" },
  },
  async run(ctx, args) {
    const start = args.string("start-offset");
    const max = args.string("max-entries");
    const nb = args.string("not-before");
    const res = await ctx.client.stream.read(
      {
        stream: parseStreamRef(args.positionals[0]!),
        startOffset: start === undefined ? 0n : parseUint(start, "--start-offset"),
        maxEntries: max === undefined ? 0n : parseUint(max, "--max-entries"),
        ...(nb === undefined ? {} : { notBefore: parseTime(nb, "--not-before") }),
      },
      { signal: ctx.signal },
    );
    ctx.respond(ReadResponseSchema, res, () => ctx.print(formatEntries(res.entries)));
    return undefined;
  },
};

const range: Command = {
  name: "stream range",
  summary: "read the entries between two offsets (GetRange)",
  positionals: [STREAM],
  flags: {
    start: { type: "string", value: "N", help: "first offset", required: true },
    end: { type: "string", value: "N", help: "last offset", required: true },
  },
  async run(ctx, args) {
    const res = await ctx.client.stream.getRange(
      {
        stream: parseStreamRef(args.positionals[0]!),
        startOffset: parseUint(args.required("start"), "--start"),
        endOffset: parseUint(args.required("end"), "--end"),
      },
      { signal: ctx.signal },
    );
    ctx.respond(GetRangeResponseSchema, res, () => ctx.print(formatEntries(res.entries)));
    return undefined;
  },
};

const commit: Command = {
  name: "stream commit",
  summary: "store a consumer group's checkpoint (Commit)",
  positionals: [STREAM],
  flags: {
    group: { type: "string", value: "G", help: "consumer group", required: true },
    offset: { type: "string", value: "N", help: "offset to record", required: true },
  },
  async run(ctx, args) {
    const stream = parseStreamRef(args.positionals[0]!);
    const group = args.required("group");
    const offset = parseUint(args.required("offset"), "--offset");
    await ctx.client.stream.commit({ stream, consumerGroup: group, offset }, { signal: ctx.signal });
    ctx.respond(EmptySchema, create(EmptySchema), () =>
      ctx.print(`committed offset ${offset} for group ${group} on ${streamText(stream)}`),
    );
    return undefined;
  },
};

const committed: Command = {
  name: "stream committed",
  summary: "show a consumer group's checkpoint (GetCommitted)",
  positionals: [STREAM],
  flags: { group: { type: "string", value: "G", help: "consumer group", required: true } },
  async run(ctx, args) {
    const res = await ctx.client.stream.getCommitted(
      { stream: parseStreamRef(args.positionals[0]!), consumerGroup: args.required("group") },
      { signal: ctx.signal },
    );
    ctx.respond(GetCommittedResponseSchema, res, () => ctx.print(String(res.offset)));
    return undefined;
  },
};

const listStreams: Command = {
  name: "stream list",
  summary: "list streams (ListStreams)",
  flags: {
    namespace: { type: "string", value: "NS", help: "only this namespace" },
    "page-size": { type: "string", value: "N", help: "streams per page" },
    "page-token": { type: "string", value: "T", help: "continue from a previous page" },
  },
  async run(ctx, args) {
    const size = args.string("page-size");
    const res = await ctx.client.stream.listStreams(
      {
        namespace: args.string("namespace") ?? "",
        pageSize: size === undefined ? 0 : parseSmallUint(size, "--page-size"),
        pageToken: args.string("page-token") ?? "",
      },
      { signal: ctx.signal },
    );
    ctx.respond(ListStreamsResponseSchema, res, () => {
      ctx.print(
        formatTable(
          ["STREAM", "ENTRIES", "FIRST", "LAST", "MAX ENTRIES", "MAX AGE S", "CREATED"],
          res.streams.map((s) => [
            streamText(s.stream),
            String(s.entryCount),
            String(s.firstOffset),
            String(s.lastOffset),
            s.retentionMaxEntries > 0n ? String(s.retentionMaxEntries) : "-",
            s.retentionMaxAgeSec > 0n ? String(s.retentionMaxAgeSec) : "-",
            formatTimestamp(s.createdAt),
          ]),
          ["left", "right", "right", "right", "right", "right"],
        ),
      );
      if (res.nextPageToken) ctx.note(`next page: --page-token ${res.nextPageToken}`);
    });
    return undefined;
  },
};

export const streamCommands: readonly Command[] = [
  createStream,
  deleteStream,
  append,
  read,
  range,
  commit,
  committed,
  listStreams,
];

export const watch: Command = {
  name: "watch",
  summary: "print a stream's entries as they arrive, until Ctrl-C (Subscribe)",
  description:
    "Starts where the stream's first entry is unless told otherwise. With --json each entry is one\n" +
    "line of protojson (a SubscribeResponse).",
  positionals: [{ name: "namespace/name" }],
  flags: {
    "from-beginning": { type: "boolean", help: "start at the oldest retained entry (the default)" },
    "from-latest": { type: "boolean", help: "only entries appended from now on" },
    offset: { type: "string", value: "N", help: "resume at this offset" },
    "max-inflight": { type: "string", value: "N", help: "entries the server may send ahead" },
  },
  async run(ctx, args) {
    const stream = parseStreamRef(args.positionals[0]!);
    const starts = ["from-beginning", "from-latest", "offset"].filter((f) => args.has(f));
    if (starts.length > 1) throw new UsageError("give only one of --from-beginning, --from-latest, --offset");
    const offset = args.string("offset");
    const start: SubscribeRequest["start"] =
      offset !== undefined
        ? { case: "offset", value: parseUint(offset, "--offset") }
        : args.bool("from-latest")
          ? { case: "fromLatest", value: true }
          : { case: "fromBeginning", value: true };
    const inflight = args.string("max-inflight");
    const maxInflight = inflight === undefined ? 0 : parseSmallUint(inflight, "--max-inflight", 2 ** 32 - 1);
    try {
      for await (const res of ctx.client.stream.subscribe(
        { stream, start, maxInflight },
        { signal: ctx.signal },
      )) {
        if (ctx.json) ctx.print(protoJson(SubscribeResponseSchema, res));
        else if (res.entry) ctx.print(entryCells(res.entry).join("  "));
      }
    } catch (e) {
      // Ctrl-C is how a watch ends: not an error.
      if (ctx.signal.aborted && ConnectError.from(e).code === Code.Canceled) return undefined;
      throw e;
    }
    return undefined;
  },
};
