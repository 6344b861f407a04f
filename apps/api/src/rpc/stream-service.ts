import { create } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  appendToStream,
  commitStreamOffset,
  createStream,
  deleteStream,
  getCommittedOffset,
  getStreamRange,
  invalidArgument,
  listStreams,
  readStream,
  type StreamDeps,
  type StreamEntry,
  type StreamIdInput,
  type StreamInfo,
  type StreamNotifier,
  type SubscribeStart,
  type UseCaseDeps,
} from "@pm/domain";
import {
  type PayloadStreamService,
  type StreamEntry as PbStreamEntry,
  type StreamInfo as PbStreamInfo,
  StreamEntrySchema,
  type StreamID,
  StreamInfoSchema,
  type SubscribeRequest,
} from "@pm/rpc";
import type { Logger } from "../logger.ts";
import { followStream } from "../streams/follow-stream.ts";
import { InProcessStreamNotifier } from "../streams/in-process-stream-notifier.ts";
import { requestOf } from "./context.ts";
import { toConnectError } from "./errors.ts";
import { msToTimestamp, payloadIdFromPb, payloadIdToPb, timestampToMs, u64 } from "./mapping.ts";

export interface StreamServiceDeps {
  readonly useCases: UseCaseDeps;
  readonly log: Logger;
  /** Wakes Subscribe feeds after appends and deletes; default: see `notifierFor`. */
  readonly streamNotifier?: StreamNotifier | undefined;
  /** Subscribe's fallback re-check interval (default SUBSCRIBE_FALLBACK_MS). */
  readonly subscribeFallbackMs?: number | undefined;
  /**
   * Aborted when the server shuts down: every Subscribe feed then ends normally, so draining the
   * listeners does not wait for subscribers to hang up.
   */
  readonly streamShutdown?: AbortSignal | undefined;
}

// Several routers may serve the same use cases (the fetch app and the Node gRPC server): keyed by
// UseCaseDeps, they share one default notifier, so an append over gRPC wakes a Connect subscriber.
const defaultNotifiers = new WeakMap<UseCaseDeps, StreamNotifier>();

/** The configured notifier, or one in-process notifier per UseCaseDeps. */
export function notifierFor(deps: StreamServiceDeps): StreamNotifier {
  if (deps.streamNotifier) return deps.streamNotifier;
  let n = defaultNotifiers.get(deps.useCases);
  if (!n) {
    n = new InProcessStreamNotifier();
    defaultNotifiers.set(deps.useCases, n);
  }
  return n;
}

// ---- proto ⇄ domain ----------------------------------------------------------------------------

const streamIdFromPb = (s: StreamID | undefined): StreamIdInput => ({
  namespace: s?.namespace ?? "",
  name: s?.name ?? "",
});

function timeFromPb(t: Timestamp | undefined, field: string): number | undefined {
  const ms = timestampToMs(t);
  if (ms !== undefined && !Number.isFinite(ms)) {
    throw invalidArgument(`${field} is not a valid timestamp; send RFC 3339 time between years 1 and 9999`, {
      field,
    });
  }
  return ms;
}

function entryToPb(e: StreamEntry, stream: StreamIdInput): PbStreamEntry {
  return create(StreamEntrySchema, {
    // The wire StreamID as the caller named it; the tenant never appears on the wire.
    stream: { namespace: stream.namespace, name: stream.name },
    offset: BigInt(e.offset),
    payloadId: payloadIdToPb(e.payloadId),
    eventTime: e.eventTime === undefined ? undefined : msToTimestamp(e.eventTime),
    appendTime: msToTimestamp(e.appendTime),
    durationNs: BigInt(e.durationNs),
    tags: { ...e.tags },
  });
}

function infoToPb(i: StreamInfo): PbStreamInfo {
  const s = i.stream;
  return create(StreamInfoSchema, {
    stream: { namespace: s.key.namespace, name: s.key.name },
    retentionMaxEntries: BigInt(s.retentionMaxEntries),
    retentionMaxAgeSec: BigInt(s.retentionMaxAgeSec),
    firstOffset: BigInt(i.firstOffset),
    lastOffset: BigInt(i.lastOffset),
    entryCount: BigInt(i.entryCount),
    createdAt: msToTimestamp(s.createdAt),
  });
}

/**
 * The oneof `start`: presence decides, so `offset = 0` set means offset 0. `from_latest = true`
 * starts after the newest entry; `from_beginning`, `from_latest = false` and nothing set all replay
 * from the oldest retained entry, as the seed did.
 */
function startFromPb(start: SubscribeRequest["start"]): SubscribeStart {
  switch (start.case) {
    case "offset":
      return { kind: "offset", offset: u64(start.value, "offset") };
    case "fromLatest":
      return start.value ? { kind: "latest" } : { kind: "beginning" };
    default:
      return { kind: "beginning" };
  }
}

/** PayloadStreamService over the stream use cases (libs/domain/src/use-cases/streams.ts). */
export function streamService(deps: StreamServiceDeps): ServiceImpl<typeof PayloadStreamService> {
  const sd: StreamDeps = {
    catalog: deps.useCases.catalog,
    clock: deps.useCases.clock,
    notifier: notifierFor(deps),
  };
  return {
    async createStream(req, ctx) {
      await createStream(sd, requestOf(ctx), {
        stream: streamIdFromPb(req.stream),
        retentionMaxEntries: u64(req.retentionMaxEntries, "retention_max_entries"),
        retentionMaxAgeSec: u64(req.retentionMaxAgeSec, "retention_max_age_sec"),
      });
      return {};
    },
    async deleteStream(req, ctx) {
      await deleteStream(sd, requestOf(ctx), streamIdFromPb(req.stream));
      return {};
    },
    async append(req, ctx) {
      const r = await appendToStream(sd, requestOf(ctx), {
        stream: streamIdFromPb(req.stream),
        items: req.items.map((item, i) => ({
          payloadId: payloadIdFromPb(item.payloadId, `items[${i}].payload_id`),
          eventTime: timeFromPb(item.eventTime, `items[${i}].event_time`),
          durationNs: u64(item.durationNs, `items[${i}].duration_ns`),
          tags: { ...item.tags },
        })),
      });
      return { firstOffset: BigInt(r.firstOffset), lastOffset: BigInt(r.lastOffset) };
    },
    async read(req, ctx) {
      const stream = streamIdFromPb(req.stream);
      const entries = await readStream(sd, requestOf(ctx), {
        stream,
        startOffset: u64(req.startOffset, "start_offset"),
        maxEntries: u64(req.maxEntries, "max_entries"),
        notBefore: timeFromPb(req.notBefore, "not_before"),
      });
      return { entries: entries.map((e) => entryToPb(e, stream)) };
    },
    async *subscribe(req, ctx) {
      const rc = requestOf(ctx);
      const stream = streamIdFromPb(req.stream);
      try {
        const feed = followStream(
          sd,
          rc,
          { stream, start: startFromPb(req.start) },
          {
            signal: deps.streamShutdown ? AbortSignal.any([ctx.signal, deps.streamShutdown]) : ctx.signal,
            ...(deps.subscribeFallbackMs === undefined ? {} : { fallbackMs: deps.subscribeFallbackMs }),
          },
        );
        for await (const e of feed) yield { entry: entryToPb(e, stream) };
      } catch (e) {
        // Errors raised while streaming surface after the interceptor returned, so they are
        // mapped here (else Connect would answer INTERNAL for a plain NOT_FOUND).
        throw toConnectError(e, deps.log, rc.requestId);
      }
    },
    async commit(req, ctx) {
      await commitStreamOffset(sd, requestOf(ctx), {
        stream: streamIdFromPb(req.stream),
        consumerGroup: req.consumerGroup,
        offset: u64(req.offset, "offset"),
      });
      return {};
    },
    async getCommitted(req, ctx) {
      const offset = await getCommittedOffset(sd, requestOf(ctx), {
        stream: streamIdFromPb(req.stream),
        consumerGroup: req.consumerGroup,
      });
      return { offset: BigInt(offset) };
    },
    async getRange(req, ctx) {
      const stream = streamIdFromPb(req.stream);
      const entries = await getStreamRange(sd, requestOf(ctx), {
        stream,
        startOffset: u64(req.startOffset, "start_offset"),
        endOffset: u64(req.endOffset, "end_offset"),
      });
      return { entries: entries.map((e) => entryToPb(e, stream)) };
    },
    async listStreams(req, ctx) {
      const out = await listStreams(sd, requestOf(ctx), {
        namespace: req.namespace,
        pageSize: req.pageSize,
        pageToken: req.pageToken,
      });
      return { streams: out.streams.map(infoToPb), nextPageToken: out.nextPageToken };
    },
  };
}
