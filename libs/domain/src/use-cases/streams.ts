import { DomainError, invalidArgument } from "../errors.ts";
import type { PayloadId } from "../model/ids.ts";
import { isReadable } from "../model/payload.ts";
import {
  type NewStreamEntry,
  type StreamEntry,
  type StreamInfo,
  type StreamKey,
  type StreamRecord,
  streamKeyString,
} from "../model/stream.ts";
import type { Catalog, CatalogTx } from "../ports/catalog.ts";
import type { Clock } from "../ports/clock.ts";
import { pageSizeOf } from "./catalog.ts";
import type { RequestContext } from "./deps.ts";
import { requirePayload } from "./lookup.ts";

// Streams: ordered, append-only logs of references to committed payloads (product.md §7).
//
// Scoping: a stream is identified by (tenant, StreamID.namespace, StreamID.name). The tenant is the
// caller's RequestContext.namespace; StreamID.namespace is a free sub-scope inside it ("" allowed).
// A stream of another tenant is reported exactly like a missing one (STREAM_NOT_FOUND).
//
// Checkpoints (Commit/GetCommitted): `offset` is the last offset the group has fully processed, so
// it must name an offset that was appended (< nextOffset, else INVALID_ARGUMENT). It may move
// backwards (an explicit rewind); the last write wins. A group that never committed reads 0, as
// the seed answered. Checkpoints go with the stream when it is deleted.
//
// Retention: `retention_max_entries` keeps the newest N entries; `retention_max_age_sec` drops
// entries appended longer ago than that. Both only ever drop the oldest prefix of the log (age
// drops up to the first entry appended inside the window), so retained offsets stay contiguous.
// Applied inside every Append transaction and by `applyStreamRetention` (the worker's periodic
// job), which also ages out streams nobody appends to. Reads between two passes may still see an
// entry that has just aged out.

/**
 * Wakes subscribers of a stream when it changed. Notifications carry no data and may be lost or
 * coalesced: a subscriber re-reads from its own last offset on every notification, and re-checks
 * on a slow timer anyway, so a missed one only delays delivery. `notify` is called after the
 * changing transaction committed (never inside it); it must not reject — an adapter that cannot
 * deliver (its database connection is down) logs and returns. Implementations: in-process for one
 * API process (apps/api), Postgres LISTEN/NOTIFY across replicas.
 */
export interface StreamNotifier {
  /** Calls `listener` on each notification of `streamKey` until the returned function is called. */
  subscribe(streamKey: string, listener: () => void): () => void;
  notify(streamKey: string): Promise<void>;
}

/** The ports the stream use cases need; `UseCaseDeps` plus a notifier satisfies it. */
export interface StreamDeps {
  readonly catalog: Catalog;
  readonly clock: Clock;
  readonly notifier: StreamNotifier;
}

/** Read's default batch and its cap (the seed's 10 000). */
export const MAX_READ_ENTRIES = 10_000;
/** GetRange spans at most this many offsets; larger recordings are fetched in several ranges. */
export const MAX_RANGE_ENTRIES = 10_000;
/** Items one Append may carry. */
export const MAX_APPEND_ITEMS = 1_000;
/** Entries a subscriber reads per catalog round trip. */
export const SUBSCRIBE_BATCH = 500;

const MAX_NAME_CHARS = 256;
const MAX_NAMESPACE_CHARS = 128;
const MAX_GROUP_CHARS = 256;
const MAX_TAGS = 64;
const MAX_TAG_KEY_CHARS = 128;
const MAX_TAG_VALUE_CHARS = 1024;

/** The wire `StreamID`. */
export interface StreamIdInput {
  readonly namespace: string;
  readonly name: string;
}

// C0 controls and DEL: they break logs and REST paths, and Postgres text cannot hold NUL at all.
// Stream names are free text, so they appear only in error messages, never in error details:
// details become response headers, which cannot carry arbitrary text.
function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

function checkText(value: string, field: string, min: number, max: number): void {
  if (value.length < min) throw invalidArgument(`${field} is required`, { field });
  if (value.length > max) {
    throw invalidArgument(`${field} is ${value.length} characters long; at most ${max} are allowed`, {
      field,
    });
  }
  if (hasControl(value)) {
    throw invalidArgument(`${field} contains control characters; use printable text`, { field });
  }
}

/** The caller's key for a wire StreamID, validated. */
export function streamKeyOf(ctx: RequestContext, id: StreamIdInput): StreamKey {
  checkText(id.name, "stream.name", 1, MAX_NAME_CHARS);
  checkText(id.namespace, "stream.namespace", 0, MAX_NAMESPACE_CHARS);
  return { tenant: ctx.namespace, namespace: id.namespace, name: id.name };
}

const describeKey = (k: StreamKey) =>
  `stream ${JSON.stringify(k.name)} in namespace ${JSON.stringify(k.namespace)}`;

export const streamNotFound = (k: StreamKey): DomainError =>
  new DomainError(
    "STREAM_NOT_FOUND",
    `${describeKey(k)} does not exist (never created, or deleted); create it with CreateStream or check stream.namespace and stream.name`,
  );

async function requireStream(tx: CatalogTx, key: StreamKey, lock: boolean): Promise<StreamRecord> {
  const s = lock ? await tx.lockStream(key) : await tx.getStream(key);
  if (!s) throw streamNotFound(key);
  return s;
}

/** Subscribers catch up by re-reading; a failing notifier must not fail a committed change. */
async function notifyCommitted(deps: StreamDeps, key: StreamKey): Promise<void> {
  try {
    await deps.notifier.notify(streamKeyString(key));
  } catch {
    // The contract says notify never rejects; if one does anyway, the fallback re-check heals it.
  }
}

function checkCount(value: number, field: string): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw invalidArgument(`${field} must be a whole number of at least 0, got ${value}`, { field });
  }
  return value;
}

// ---- create / delete ----------------------------------------------------------------------------

export interface CreateStreamRequest {
  readonly stream: StreamIdInput;
  /** 0 = unlimited. */
  readonly retentionMaxEntries: number;
  /** 0 = unlimited. */
  readonly retentionMaxAgeSec: number;
}

export async function createStream(
  deps: StreamDeps,
  ctx: RequestContext,
  req: CreateStreamRequest,
): Promise<StreamRecord> {
  const key = streamKeyOf(ctx, req.stream);
  const retentionMaxEntries = checkCount(req.retentionMaxEntries, "retention_max_entries");
  const retentionMaxAgeSec = checkCount(req.retentionMaxAgeSec, "retention_max_age_sec");
  const created = await deps.catalog.transaction((tx) =>
    tx.createStream({ key, retentionMaxEntries, retentionMaxAgeSec, createdAt: deps.clock.now() }),
  );
  if (!created) {
    throw new DomainError(
      "ALREADY_EXISTS",
      `${describeKey(key)} already exists; append to it, or delete it first to start over`,
    );
  }
  return created;
}

/** Deletes the stream with its entries and checkpoints; its subscriptions end with NOT_FOUND. */
export async function deleteStream(
  deps: StreamDeps,
  ctx: RequestContext,
  stream: StreamIdInput,
): Promise<void> {
  const key = streamKeyOf(ctx, stream);
  const existed = await deps.catalog.transaction((tx) => tx.deleteStream(key));
  if (!existed) throw streamNotFound(key);
  await notifyCommitted(deps, key);
}

// ---- append ------------------------------------------------------------------------------------

export interface StreamAppendRequest {
  readonly stream: StreamIdInput;
  readonly items: readonly NewStreamEntry[];
}

export interface StreamAppendResult {
  readonly firstOffset: number;
  readonly lastOffset: number;
}

function checkTags(tags: Readonly<Record<string, string>>, field: string): void {
  const entries = Object.entries(tags);
  if (entries.length > MAX_TAGS) {
    throw invalidArgument(`${field} has ${entries.length} tags; at most ${MAX_TAGS} are allowed`, { field });
  }
  for (const [k, v] of entries) {
    if (k.length > MAX_TAG_KEY_CHARS || v.length > MAX_TAG_VALUE_CHARS) {
      throw invalidArgument(
        `${field} tag keys may have at most ${MAX_TAG_KEY_CHARS} characters and values ${MAX_TAG_VALUE_CHARS}; tags are small labels, put data in payload metadata`,
        { field },
      );
    }
    if (k.includes("\u0000") || v.includes("\u0000")) {
      throw invalidArgument(`${field} contains a NUL character; tags must be text`, { field });
    }
  }
}

/** Drops what the stream's retention no longer keeps, as of `now`; returns how many entries went. */
async function applyRetention(tx: CatalogTx, s: StreamRecord, now: number): Promise<number> {
  let below = 0;
  if (s.retentionMaxEntries > 0) below = s.nextOffset - s.retentionMaxEntries;
  if (s.retentionMaxAgeSec > 0) {
    const keepFrom = await tx.firstStreamOffsetSince(s.id, now - s.retentionMaxAgeSec * 1000);
    below = Math.max(below, keepFrom ?? s.nextOffset);
  }
  return below > 0 ? tx.trimStream(s.id, below) : 0;
}

/**
 * Appends the items in order with contiguous offsets. The stream row is locked for the whole
 * transaction, so concurrent appends on any replica each get their own block of offsets, with no
 * gap and no reuse; retention is applied in the same transaction. Every payload must belong to the
 * caller and be committed. Subscribers are woken after the commit.
 */
export async function appendToStream(
  deps: StreamDeps,
  ctx: RequestContext,
  req: StreamAppendRequest,
): Promise<StreamAppendResult> {
  const key = streamKeyOf(ctx, req.stream);
  if (req.items.length === 0) {
    throw invalidArgument("items is empty; send at least one item to append", { field: "items" });
  }
  if (req.items.length > MAX_APPEND_ITEMS) {
    throw invalidArgument(
      `items has ${req.items.length} entries; append at most ${MAX_APPEND_ITEMS} per request and send the rest in further requests`,
      { field: "items" },
    );
  }
  req.items.forEach((item, i) => {
    checkTags(item.tags, `items[${i}].tags`);
    checkCount(item.durationNs, `items[${i}].duration_ns`);
  });
  const result = await deps.catalog.transaction(async (tx) => {
    const s = await requireStream(tx, key, true);
    const checked = new Set<PayloadId>();
    for (const item of req.items) {
      if (checked.has(item.payloadId)) continue;
      checked.add(item.payloadId);
      const p = await requirePayload(tx, ctx, item.payloadId, false);
      if (!isReadable(p)) {
        throw new DomainError(
          "INVALID_TRANSITION",
          p.state === "ALLOCATED"
            ? `payload ${p.id} is ALLOCATED; commit it before appending it to a stream`
            : `payload ${p.id} is ${p.state}; only committed payloads can be appended to a stream`,
          { payloadId: p.id, state: p.state },
        );
      }
    }
    const now = deps.clock.now();
    const entries: StreamEntry[] = req.items.map((item, i) => ({
      offset: s.nextOffset + i,
      payloadId: item.payloadId,
      eventTime: item.eventTime,
      appendTime: now,
      durationNs: item.durationNs,
      tags: { ...item.tags },
    }));
    await tx.appendStreamEntries(s.id, entries);
    await applyRetention(tx, { ...s, nextOffset: s.nextOffset + entries.length }, now);
    return { firstOffset: s.nextOffset, lastOffset: s.nextOffset + entries.length - 1 };
  });
  await notifyCommitted(deps, key);
  return result;
}

// ---- read / range ------------------------------------------------------------------------------

export interface StreamReadRequest {
  readonly stream: StreamIdInput;
  readonly startOffset: number;
  /** 0 = the default; anything above the cap is clipped to it. */
  readonly maxEntries: number;
  /** Only entries appended at or after this instant (ms); undefined = no filter. */
  readonly notBefore: number | undefined;
}

/**
 * A finite read from `startOffset` (entries retention dropped are skipped, not an error), in offset
 * order, at most `maxEntries` (default and cap 10 000).
 */
export async function readStream(
  deps: StreamDeps,
  ctx: RequestContext,
  req: StreamReadRequest,
): Promise<StreamEntry[]> {
  const key = streamKeyOf(ctx, req.stream);
  const startOffset = checkCount(req.startOffset, "start_offset");
  const max = checkCount(req.maxEntries, "max_entries");
  const limit = max === 0 ? MAX_READ_ENTRIES : Math.min(max, MAX_READ_ENTRIES);
  return deps.catalog.transaction(async (tx) => {
    const s = await requireStream(tx, key, false);
    return tx.readStreamEntries({
      streamId: s.id,
      fromOffset: startOffset,
      toOffset: undefined,
      appendedSince: req.notBefore,
      limit,
    });
  });
}

export interface StreamRangeRequest {
  readonly stream: StreamIdInput;
  readonly startOffset: number;
  /** Inclusive. */
  readonly endOffset: number;
}

/** The retained entries of `[startOffset, endOffset]`, which may span at most 10 000 offsets. */
export async function getStreamRange(
  deps: StreamDeps,
  ctx: RequestContext,
  req: StreamRangeRequest,
): Promise<StreamEntry[]> {
  const key = streamKeyOf(ctx, req.stream);
  const start = checkCount(req.startOffset, "start_offset");
  const end = checkCount(req.endOffset, "end_offset");
  if (end < start) {
    throw invalidArgument(
      `end_offset ${end} is before start_offset ${start}; the range is inclusive, so send end_offset >= start_offset`,
      { field: "end_offset" },
    );
  }
  if (end - start + 1 > MAX_RANGE_ENTRIES) {
    throw invalidArgument(
      `the range ${start}..${end} spans ${end - start + 1} offsets; request at most ${MAX_RANGE_ENTRIES} at a time`,
      { field: "end_offset" },
    );
  }
  return deps.catalog.transaction(async (tx) => {
    const s = await requireStream(tx, key, false);
    return tx.readStreamEntries({
      streamId: s.id,
      fromOffset: start,
      toOffset: end,
      appendedSince: undefined,
      limit: end - start + 1,
    });
  });
}

// ---- consumer-group checkpoints ----------------------------------------------------------------

export interface StreamCommitRequest {
  readonly stream: StreamIdInput;
  readonly consumerGroup: string;
  /** The last offset the group has fully processed. */
  readonly offset: number;
}

export async function commitStreamOffset(
  deps: StreamDeps,
  ctx: RequestContext,
  req: StreamCommitRequest,
): Promise<void> {
  const key = streamKeyOf(ctx, req.stream);
  checkText(req.consumerGroup, "consumer_group", 1, MAX_GROUP_CHARS);
  const offset = checkCount(req.offset, "offset");
  await deps.catalog.transaction(async (tx) => {
    // Locked so that a concurrent DeleteStream cannot remove the row this checkpoint hangs off.
    const s = await requireStream(tx, key, true);
    if (offset >= s.nextOffset) {
      throw invalidArgument(
        s.nextOffset === 0
          ? `offset ${offset} cannot be committed: ${describeKey(key)} has no entries yet`
          : `offset ${offset} is past the last entry of ${describeKey(key)} (${s.nextOffset - 1}); commit the last offset the group has processed`,
        { field: "offset" },
      );
    }
    await tx.putStreamCommit(s.id, req.consumerGroup, offset);
  });
}

/** The group's checkpoint; 0 for a group that never committed (the seed's answer). */
export async function getCommittedOffset(
  deps: StreamDeps,
  ctx: RequestContext,
  req: { readonly stream: StreamIdInput; readonly consumerGroup: string },
): Promise<number> {
  const key = streamKeyOf(ctx, req.stream);
  checkText(req.consumerGroup, "consumer_group", 1, MAX_GROUP_CHARS);
  return deps.catalog.transaction(async (tx) => {
    const s = await requireStream(tx, key, false);
    return (await tx.getStreamCommit(s.id, req.consumerGroup)) ?? 0;
  });
}

// ---- list --------------------------------------------------------------------------------------

export interface ListStreamsRequest {
  /** Only this StreamID.namespace; "" = every namespace of the caller's tenant. */
  readonly namespace: string;
  readonly pageSize: number;
  readonly pageToken: string;
}

export interface ListStreamsResult {
  readonly streams: readonly StreamInfo[];
  /** "" on the last page. */
  readonly nextPageToken: string;
}

// Opaque page tokens: base64url of "s<surrogate id>". Clients must not parse them.
const encodeStreamToken = (id: number) =>
  btoa(`s${id}`).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");

function decodeStreamToken(token: string): number {
  if (token === "") return 0;
  let text = "";
  try {
    text = atob(token.replaceAll("-", "+").replaceAll("_", "/"));
  } catch {
    // reported below
  }
  const m = /^s(\d{1,15})$/.exec(text);
  if (!m) {
    throw invalidArgument(
      "page_token is not a token this server issued; pass next_page_token from the previous page, or empty for the first page",
      { field: "page_token" },
    );
  }
  return Number(m[1]);
}

/** The caller's streams in creation order, keyset-paged, with each stream's current extent. */
export async function listStreams(
  deps: StreamDeps,
  ctx: RequestContext,
  req: ListStreamsRequest,
): Promise<ListStreamsResult> {
  if (req.namespace !== "") checkText(req.namespace, "namespace", 0, MAX_NAMESPACE_CHARS);
  const afterId = decodeStreamToken(req.pageToken);
  const limit = pageSizeOf(req.pageSize);
  const found = await deps.catalog.transaction((tx) =>
    tx.listStreams({
      tenant: ctx.namespace,
      namespace: req.namespace === "" ? undefined : req.namespace,
      afterId,
      limit: limit + 1,
    }),
  );
  const page = found.slice(0, limit);
  const last = page[page.length - 1];
  return {
    streams: page,
    nextPageToken: found.length > limit && last ? encodeStreamToken(last.stream.id) : "",
  };
}

// ---- subscribe ---------------------------------------------------------------------------------

/**
 * Where a subscription starts: the SubscribeRequest oneof `start`. `offset` resumes at that offset
 * (0 included: presence, not value, decides); `beginning` replays from the oldest retained entry;
 * `latest` delivers only entries appended after the subscription opened.
 */
export type SubscribeStart =
  | { readonly kind: "offset"; readonly offset: number }
  | { readonly kind: "beginning" }
  | { readonly kind: "latest" };

/** An open subscription: which stream incarnation it follows and the next offset it wants. */
export interface Subscription {
  readonly key: StreamKey;
  /** The notifier channel to listen on (`streamKeyString(key)`). */
  readonly notifyKey: string;
  readonly streamId: number;
  readonly nextOffset: number;
}

/**
 * Resolves a subscription's starting point (STREAM_NOT_FOUND when the stream is missing). The
 * transport then alternates `readSubscription` and waiting for the notifier (apps/api).
 */
export async function openSubscription(
  deps: StreamDeps,
  ctx: RequestContext,
  req: { readonly stream: StreamIdInput; readonly start: SubscribeStart },
): Promise<Subscription> {
  const key = streamKeyOf(ctx, req.stream);
  const start = req.start;
  const requested = start.kind === "offset" ? checkCount(start.offset, "offset") : 0;
  const s = await deps.catalog.transaction((tx) => requireStream(tx, key, false));
  return {
    key,
    notifyKey: streamKeyString(key),
    streamId: s.id,
    nextOffset: start.kind === "latest" ? s.nextOffset : requested,
  };
}

/**
 * The next entries of a subscription (at most `limit`) and the subscription advanced past them.
 * Ends the subscription with STREAM_NOT_FOUND once its stream was deleted, even if a stream of the
 * same name was created since.
 */
export async function readSubscription(
  deps: StreamDeps,
  sub: Subscription,
  limit: number = SUBSCRIBE_BATCH,
): Promise<{ entries: StreamEntry[]; next: Subscription }> {
  return deps.catalog.transaction(async (tx) => {
    const s = await tx.getStream(sub.key);
    if (!s || s.id !== sub.streamId) {
      throw new DomainError(
        "STREAM_NOT_FOUND",
        `${describeKey(sub.key)} was deleted, which ended this subscription; create the stream again and resubscribe`,
      );
    }
    const entries = await tx.readStreamEntries({
      streamId: s.id,
      fromOffset: sub.nextOffset,
      toOffset: undefined,
      appendedSince: undefined,
      limit,
    });
    const last = entries[entries.length - 1];
    return { entries, next: last ? { ...sub, nextOffset: last.offset + 1 } : sub };
  });
}

// ---- retention sweep ---------------------------------------------------------------------------

export interface StreamRetentionReport {
  /** Streams with a retention limit that were checked. */
  readonly streams: number;
  readonly entriesRemoved: number;
}

/**
 * Applies every stream's retention as of `now`, so streams nobody appends to still age out. Visits
 * the streams that have a limit in pages of `batch`, one short transaction per stream (each holds
 * that stream's lock, like an append). Idempotent; the worker runs it periodically.
 */
export async function applyStreamRetention(
  deps: { readonly catalog: Catalog },
  now: number,
  batch = 500,
): Promise<StreamRetentionReport> {
  let afterId = 0;
  let streams = 0;
  let entriesRemoved = 0;
  for (;;) {
    const page = await deps.catalog.transaction((tx) => tx.streamsWithRetention(afterId, batch));
    for (const candidate of page) {
      entriesRemoved += await deps.catalog.transaction(async (tx) => {
        const s = await tx.lockStream(candidate.key);
        return s && s.id === candidate.id ? applyRetention(tx, s, now) : 0;
      });
      streams++;
    }
    const last = page[page.length - 1];
    if (!last || page.length < batch) return { streams, entriesRemoved };
    afterId = last.id;
  }
}
