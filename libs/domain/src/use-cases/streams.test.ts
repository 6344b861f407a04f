import { describe, expect, it } from "vitest";
import type { PayloadId } from "../model/ids.ts";
import { type NewStreamEntry, type StreamKey, streamKeyString } from "../model/stream.ts";
import {
  appendToStream,
  applyStreamRetention,
  commitStreamOffset,
  createStream,
  deleteStream,
  getCommittedOffset,
  getStreamRange,
  listStreams,
  MAX_APPEND_ITEMS,
  MAX_RANGE_ENTRIES,
  MAX_READ_ENTRIES,
  openSubscription,
  readStream,
  readSubscription,
  type StreamDeps,
  type StreamIdInput,
  type StreamNotifier,
  type Subscription,
} from "./streams.ts";
import { allocated, committed, domainError, type Harness, harness, unknownId } from "./test-harness.ts";

/** Records notifications, and what the catalog held for the stream at that moment. */
class RecordingNotifier implements StreamNotifier {
  readonly notified: { key: string; nextOffset: number | undefined }[] = [];
  readonly listeners = new Map<string, Set<() => void>>();
  constructor(private readonly h: Harness) {}
  subscribe(key: string, listener: () => void) {
    const set = this.listeners.get(key) ?? new Set();
    set.add(listener);
    this.listeners.set(key, set);
    return () => set.delete(listener);
  }
  async notify(key: string) {
    const [tenant, namespace, name] = JSON.parse(key) as [string, string, string];
    const s = await this.h.catalog.transaction((tx) => tx.getStream({ tenant, namespace, name }));
    this.notified.push({ key, nextOffset: s?.nextOffset });
    for (const l of this.listeners.get(key) ?? []) l();
  }
}

interface StreamHarness extends Harness {
  readonly sd: StreamDeps;
  readonly notifier: RecordingNotifier;
}

function streamHarness(): StreamHarness {
  const h = harness();
  const notifier = new RecordingNotifier(h);
  return { ...h, notifier, sd: { ...h.deps, notifier } };
}

const S: StreamIdInput = { namespace: "", name: "cams/front" };
const keyOf = (h: Harness, id: StreamIdInput = S): StreamKey => ({ tenant: h.ctx.namespace, ...id });

const item = (payloadId: PayloadId, over: Partial<NewStreamEntry> = {}): NewStreamEntry => ({
  payloadId,
  eventTime: undefined,
  durationNs: 0,
  tags: {},
  ...over,
});

async function setup(opts: { maxEntries?: number; maxAgeSec?: number; payloads?: number } = {}) {
  const h = streamHarness();
  await createStream(h.sd, h.ctx, {
    stream: S,
    retentionMaxEntries: opts.maxEntries ?? 0,
    retentionMaxAgeSec: opts.maxAgeSec ?? 0,
  });
  const payloads: PayloadId[] = [];
  for (let i = 0; i < (opts.payloads ?? 2); i++) payloads.push((await committed(h)).id);
  return { h, payloads };
}

const offsets = (es: readonly { offset: number }[]) => es.map((e) => e.offset);

describe("createStream", () => {
  it("creates an empty stream with its retention; a duplicate is ALREADY_EXISTS", async () => {
    const h = streamHarness();
    const s = await createStream(h.sd, h.ctx, { stream: S, retentionMaxEntries: 5, retentionMaxAgeSec: 60 });
    expect(s).toMatchObject({
      key: keyOf(h),
      retentionMaxEntries: 5,
      retentionMaxAgeSec: 60,
      createdAt: h.clock.now(),
      nextOffset: 0,
    });
    const e = await domainError(
      () => createStream(h.sd, h.ctx, { stream: S, retentionMaxEntries: 0, retentionMaxAgeSec: 0 }),
      "ALREADY_EXISTS",
    );
    expect(e.message).toMatch(/already exists/);
  });

  it("scopes streams by tenant and StreamID.namespace", async () => {
    const h = streamHarness();
    const create = (stream: StreamIdInput, ctx = h.ctx) =>
      createStream(h.sd, ctx, { stream, retentionMaxEntries: 0, retentionMaxAgeSec: 0 });
    await create(S);
    await create({ namespace: "prod", name: S.name });
    await create(S, h.other);
    const mine = await listStreams(h.sd, h.ctx, { namespace: "", pageSize: 0, pageToken: "" });
    expect(mine.streams.map((i) => i.stream.key)).toEqual([
      keyOf(h),
      keyOf(h, { namespace: "prod", name: S.name }),
    ]);
    const theirs = await listStreams(h.sd, h.other, { namespace: "", pageSize: 0, pageToken: "" });
    expect(theirs.streams.map((i) => i.stream.key.tenant)).toEqual([h.other.namespace]);
  });

  it("rejects a missing or unprintable name, a long namespace and negative retention", async () => {
    const h = streamHarness();
    const bad: [StreamIdInput, number, number][] = [
      [{ namespace: "", name: "" }, 0, 0],
      [{ namespace: "", name: "a\nb" }, 0, 0],
      [{ namespace: "", name: "x".repeat(257) }, 0, 0],
      [{ namespace: "n".repeat(129), name: "x" }, 0, 0],
      [{ namespace: "a\u0000", name: "x" }, 0, 0],
      [S, -1, 0],
      [S, 0, 1.5],
    ];
    for (const [stream, retentionMaxEntries, retentionMaxAgeSec] of bad) {
      await domainError(
        () => createStream(h.sd, h.ctx, { stream, retentionMaxEntries, retentionMaxAgeSec }),
        "INVALID_ARGUMENT",
      );
    }
    // Long-but-allowed names and unicode are fine.
    await createStream(h.sd, h.ctx, {
      stream: { namespace: "n".repeat(128), name: `${"x".repeat(250)} ä🎥` },
      retentionMaxEntries: 0,
      retentionMaxAgeSec: 0,
    });
  });
});

describe("appendToStream", () => {
  it("gives items contiguous offsets across requests and returns the first and last", async () => {
    const { h, payloads } = await setup();
    const [p1, p2] = payloads as [PayloadId, PayloadId];
    expect(await appendToStream(h.sd, h.ctx, { stream: S, items: [item(p1)] })).toEqual({
      firstOffset: 0,
      lastOffset: 0,
    });
    expect(await appendToStream(h.sd, h.ctx, { stream: S, items: [item(p2), item(p1), item(p2)] })).toEqual({
      firstOffset: 1,
      lastOffset: 3,
    });
    const entries = await readStream(h.sd, h.ctx, {
      stream: S,
      startOffset: 0,
      maxEntries: 0,
      notBefore: undefined,
    });
    expect(entries.map((e) => [e.offset, e.payloadId])).toEqual([
      [0, p1],
      [1, p2],
      [2, p1],
      [3, p2],
    ]);
  });

  it("stores event time, duration and tags, and stamps the append time from the clock", async () => {
    const { h, payloads } = await setup();
    const eventTime = h.clock.now() - 1234;
    await appendToStream(h.sd, h.ctx, {
      stream: S,
      items: [item(payloads[0]!, { eventTime, durationNs: 33_333_333, tags: { camera: "front", ä: "ü" } })],
    });
    const [e] = await readStream(h.sd, h.ctx, {
      stream: S,
      startOffset: 0,
      maxEntries: 0,
      notBefore: undefined,
    });
    expect(e).toEqual({
      offset: 0,
      payloadId: payloads[0],
      eventTime,
      appendTime: h.clock.now(),
      durationNs: 33_333_333,
      tags: { camera: "front", ä: "ü" },
    });
  });

  it("notifies subscribers once the entries are committed, on the stream's own key", async () => {
    const { h, payloads } = await setup();
    await appendToStream(h.sd, h.ctx, { stream: S, items: [item(payloads[0]!), item(payloads[1]!)] });
    expect(h.notifier.notified).toEqual([{ key: streamKeyString(keyOf(h)), nextOffset: 2 }]);
  });

  it("is INVALID_ARGUMENT with no items, too many items or oversized tags, and changes nothing", async () => {
    const { h, payloads } = await setup();
    const p = payloads[0]!;
    const cases: NewStreamEntry[][] = [
      [],
      Array.from({ length: MAX_APPEND_ITEMS + 1 }, () => item(p)),
      [item(p, { tags: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, "v"])) })],
      [item(p, { tags: { k: "v".repeat(1025) } })],
      [item(p, { tags: { "k\u0000": "v" } })],
      [item(p, { durationNs: -1 })],
    ];
    for (const items of cases) {
      await domainError(() => appendToStream(h.sd, h.ctx, { stream: S, items }), "INVALID_ARGUMENT");
    }
    expect(h.notifier.notified).toEqual([]);
    expect((await h.catalog.transaction((tx) => tx.getStream(keyOf(h))))!.nextOffset).toBe(0);
  });

  it("is STREAM_NOT_FOUND for a missing stream and for another tenant's stream", async () => {
    const { h, payloads } = await setup();
    await domainError(
      () =>
        appendToStream(h.sd, h.ctx, { stream: { namespace: "", name: "nope" }, items: [item(payloads[0]!)] }),
      "STREAM_NOT_FOUND",
    );
    const theirs = await committed(h, "RAM", {}, h.other);
    await domainError(
      () => appendToStream(h.sd, h.other, { stream: S, items: [item(theirs.id)] }),
      "STREAM_NOT_FOUND",
    );
  });

  it("is PAYLOAD_NOT_FOUND for an unknown payload or another tenant's, appending none of the items", async () => {
    const { h, payloads } = await setup();
    const theirs = await committed(h, "RAM", {}, h.other);
    for (const bad of [unknownId, theirs.id]) {
      await domainError(
        () => appendToStream(h.sd, h.ctx, { stream: S, items: [item(payloads[0]!), item(bad)] }),
        "PAYLOAD_NOT_FOUND",
      );
    }
    const entries = await readStream(h.sd, h.ctx, {
      stream: S,
      startOffset: 0,
      maxEntries: 0,
      notBefore: undefined,
    });
    expect(entries).toEqual([]);
    expect(h.notifier.notified).toEqual([]);
  });

  it("is INVALID_TRANSITION for a payload not committed yet or being deleted", async () => {
    const { h } = await setup();
    const fresh = await allocated(h);
    const e = await domainError(
      () => appendToStream(h.sd, h.ctx, { stream: S, items: [item(fresh.id)] }),
      "INVALID_TRANSITION",
    );
    expect(e.message).toMatch(/commit it/);
    const doomed = await committed(h);
    await h.catalog.transaction((tx) => tx.updatePayload({ ...doomed, state: "DELETING" }));
    await domainError(
      () => appendToStream(h.sd, h.ctx, { stream: S, items: [item(doomed.id)] }),
      "INVALID_TRANSITION",
    );
  });

  it("keeps at most retention_max_entries, dropping the oldest in the same transaction", async () => {
    const { h, payloads } = await setup({ maxEntries: 3 });
    const p = payloads[0]!;
    await appendToStream(h.sd, h.ctx, { stream: S, items: [item(p), item(p)] });
    await appendToStream(h.sd, h.ctx, { stream: S, items: [item(p), item(p), item(p)] });
    const read = () =>
      readStream(h.sd, h.ctx, { stream: S, startOffset: 0, maxEntries: 0, notBefore: undefined });
    expect(offsets(await read())).toEqual([2, 3, 4]);
    // A single append larger than the limit keeps only its newest items.
    await appendToStream(h.sd, h.ctx, { stream: S, items: [item(p), item(p), item(p), item(p)] });
    expect(offsets(await read())).toEqual([6, 7, 8]);
  });

  it("drops entries older than retention_max_age_sec at the next append", async () => {
    const { h, payloads } = await setup({ maxAgeSec: 60 });
    const p = payloads[0]!;
    await appendToStream(h.sd, h.ctx, { stream: S, items: [item(p), item(p)] });
    h.clock.advance(30_000);
    await appendToStream(h.sd, h.ctx, { stream: S, items: [item(p)] });
    h.clock.advance(30_001);
    await appendToStream(h.sd, h.ctx, { stream: S, items: [item(p)] });
    const read = () =>
      readStream(h.sd, h.ctx, { stream: S, startOffset: 0, maxEntries: 0, notBefore: undefined });
    expect(offsets(await read())).toEqual([2, 3]);
  });
});

describe("readStream and getStreamRange", () => {
  async function withEntries(n: number) {
    const { h, payloads } = await setup();
    const p = payloads[0]!;
    for (let i = 0; i < n; i++) {
      await appendToStream(h.sd, h.ctx, { stream: S, items: [item(p)] });
      h.clock.advance(1000);
    }
    return h;
  }

  it("reads from start_offset with max_entries, skipping what retention or time filters drop", async () => {
    const h = await withEntries(5);
    const read = (startOffset: number, maxEntries = 0, notBefore?: number) =>
      readStream(h.sd, h.ctx, { stream: S, startOffset, maxEntries, notBefore }).then(offsets);
    expect(await read(0)).toEqual([0, 1, 2, 3, 4]);
    expect(await read(3)).toEqual([3, 4]);
    expect(await read(9)).toEqual([]);
    expect(await read(1, 2)).toEqual([1, 2]);
    // not_before compares with the append time (the seed's behaviour).
    const t0 = h.clock.now() - 5000;
    expect(await read(0, 0, t0 + 2000)).toEqual([2, 3, 4]);
  });

  it("defaults and caps max_entries at 10 000", async () => {
    const { h, payloads } = await setup();
    const batch = Array.from({ length: MAX_APPEND_ITEMS }, () => item(payloads[0]!));
    for (let i = 0; i < 11; i++) await appendToStream(h.sd, h.ctx, { stream: S, items: batch });
    const read = (maxEntries: number) =>
      readStream(h.sd, h.ctx, { stream: S, startOffset: 0, maxEntries, notBefore: undefined });
    expect((await read(0)).length).toBe(MAX_READ_ENTRIES);
    expect((await read(50_000)).length).toBe(MAX_READ_ENTRIES);
    expect((await read(7)).length).toBe(7);
  });

  it("returns an inclusive range of retained entries", async () => {
    const h = await withEntries(6);
    const range = (startOffset: number, endOffset: number) =>
      getStreamRange(h.sd, h.ctx, { stream: S, startOffset, endOffset }).then(offsets);
    expect(await range(1, 3)).toEqual([1, 2, 3]);
    expect(await range(4, 4)).toEqual([4]);
    expect(await range(4, 100)).toEqual([4, 5]);
    expect(await range(0, MAX_RANGE_ENTRIES - 1)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it("is INVALID_ARGUMENT when end < start or the range spans more than 10 000 offsets", async () => {
    const h = await withEntries(1);
    await domainError(
      () => getStreamRange(h.sd, h.ctx, { stream: S, startOffset: 5, endOffset: 4 }),
      "INVALID_ARGUMENT",
    );
    await domainError(
      () => getStreamRange(h.sd, h.ctx, { stream: S, startOffset: 0, endOffset: MAX_RANGE_ENTRIES }),
      "INVALID_ARGUMENT",
    );
  });

  it("is STREAM_NOT_FOUND for a missing stream or another tenant's", async () => {
    const h = await withEntries(1);
    for (const [ctx, stream] of [
      [h.ctx, { namespace: "x", name: S.name }],
      [h.other, S],
    ] as const) {
      await domainError(
        () => readStream(h.sd, ctx, { stream, startOffset: 0, maxEntries: 0, notBefore: undefined }),
        "STREAM_NOT_FOUND",
      );
      await domainError(
        () => getStreamRange(h.sd, ctx, { stream, startOffset: 0, endOffset: 0 }),
        "STREAM_NOT_FOUND",
      );
    }
  });
});

describe("commitStreamOffset and getCommittedOffset", () => {
  async function withEntries() {
    const { h, payloads } = await setup();
    await appendToStream(h.sd, h.ctx, { stream: S, items: [item(payloads[0]!), item(payloads[1]!)] });
    return h;
  }
  const commit = (h: StreamHarness, consumerGroup: string, offset: number, ctx = h.ctx) =>
    commitStreamOffset(h.sd, ctx, { stream: S, consumerGroup, offset });
  const committedOf = (h: StreamHarness, consumerGroup: string, ctx = h.ctx) =>
    getCommittedOffset(h.sd, ctx, { stream: S, consumerGroup });

  it("stores per group, may rewind, and reads 0 for a group that never committed", async () => {
    const h = await withEntries();
    expect(await committedOf(h, "g1")).toBe(0);
    await commit(h, "g1", 1);
    await commit(h, "g2", 0);
    expect(await committedOf(h, "g1")).toBe(1);
    expect(await committedOf(h, "g2")).toBe(0);
    await commit(h, "g1", 0);
    expect(await committedOf(h, "g1")).toBe(0);
  });

  it("is INVALID_ARGUMENT without a group or past the last entry", async () => {
    const h = await withEntries();
    await domainError(() => commit(h, "", 0), "INVALID_ARGUMENT");
    await domainError(() => committedOf(h, ""), "INVALID_ARGUMENT");
    const e = await domainError(() => commit(h, "g", 2), "INVALID_ARGUMENT");
    expect(e.message).toMatch(/past the last entry .*\(1\)/);
    const empty = streamHarness();
    await createStream(empty.sd, empty.ctx, { stream: S, retentionMaxEntries: 0, retentionMaxAgeSec: 0 });
    expect((await domainError(() => commit(empty, "g", 0), "INVALID_ARGUMENT")).message).toMatch(
      /no entries/,
    );
  });

  it("is STREAM_NOT_FOUND for a missing stream or another tenant's, and checkpoints go with a delete", async () => {
    const h = await withEntries();
    await commit(h, "g", 1);
    await domainError(() => commit(h, "g", 0, h.other), "STREAM_NOT_FOUND");
    await domainError(() => committedOf(h, "g", h.other), "STREAM_NOT_FOUND");
    await deleteStream(h.sd, h.ctx, S);
    await domainError(() => committedOf(h, "g"), "STREAM_NOT_FOUND");
    await createStream(h.sd, h.ctx, { stream: S, retentionMaxEntries: 0, retentionMaxAgeSec: 0 });
    expect(await committedOf(h, "g")).toBe(0);
  });
});

describe("deleteStream", () => {
  it("removes the stream and its entries, notifies, and a re-created one starts at offset 0", async () => {
    const { h, payloads } = await setup();
    await appendToStream(h.sd, h.ctx, { stream: S, items: [item(payloads[0]!)] });
    await deleteStream(h.sd, h.ctx, S);
    expect(h.notifier.notified.at(-1)).toEqual({ key: streamKeyString(keyOf(h)), nextOffset: undefined });
    await domainError(
      () => readStream(h.sd, h.ctx, { stream: S, startOffset: 0, maxEntries: 0, notBefore: undefined }),
      "STREAM_NOT_FOUND",
    );
    await createStream(h.sd, h.ctx, { stream: S, retentionMaxEntries: 0, retentionMaxAgeSec: 0 });
    expect(await appendToStream(h.sd, h.ctx, { stream: S, items: [item(payloads[1]!)] })).toEqual({
      firstOffset: 0,
      lastOffset: 0,
    });
  });

  it("is STREAM_NOT_FOUND for a missing stream or another tenant's, without notifying", async () => {
    const { h } = await setup();
    await domainError(() => deleteStream(h.sd, h.ctx, { namespace: "", name: "nope" }), "STREAM_NOT_FOUND");
    await domainError(() => deleteStream(h.sd, h.other, S), "STREAM_NOT_FOUND");
    expect(h.notifier.notified).toEqual([]);
  });
});

describe("listStreams", () => {
  it("pages a tenant's streams in creation order with their extents, per namespace", async () => {
    const h = streamHarness();
    const names = ["a", "b", "c", "d", "e"];
    for (const name of names) {
      await createStream(h.sd, h.ctx, {
        stream: { namespace: name === "e" ? "prod" : "", name },
        retentionMaxEntries: name === "b" ? 2 : 0,
        retentionMaxAgeSec: 0,
      });
    }
    const p = (await committed(h)).id;
    await appendToStream(h.sd, h.ctx, {
      stream: { namespace: "", name: "b" },
      items: [item(p), item(p), item(p)],
    });
    const page1 = await listStreams(h.sd, h.ctx, { namespace: "", pageSize: 2, pageToken: "" });
    expect(page1.streams.map((i) => i.stream.key.name)).toEqual(["a", "b"]);
    expect(page1.streams[1]).toMatchObject({ firstOffset: 1, lastOffset: 2, entryCount: 2 });
    expect(page1.streams[0]).toMatchObject({ firstOffset: 0, lastOffset: 0, entryCount: 0 });
    expect(page1.nextPageToken).not.toBe("");
    const page2 = await listStreams(h.sd, h.ctx, {
      namespace: "",
      pageSize: 2,
      pageToken: page1.nextPageToken,
    });
    expect(page2.streams.map((i) => i.stream.key.name)).toEqual(["c", "d"]);
    const page3 = await listStreams(h.sd, h.ctx, {
      namespace: "",
      pageSize: 2,
      pageToken: page2.nextPageToken,
    });
    expect(page3).toEqual({
      streams: [expect.objectContaining({ stream: expect.anything() })],
      nextPageToken: "",
    });
    const prod = await listStreams(h.sd, h.ctx, { namespace: "prod", pageSize: 0, pageToken: "" });
    expect(prod.streams.map((i) => i.stream.key.name)).toEqual(["e"]);
    expect((await listStreams(h.sd, h.other, { namespace: "", pageSize: 0, pageToken: "" })).streams).toEqual(
      [],
    );
  });

  it("is INVALID_ARGUMENT for a page token it did not issue", async () => {
    const h = streamHarness();
    for (const pageToken of ["garbage!", "eDE", "MTIz", "s1"]) {
      await domainError(
        () => listStreams(h.sd, h.ctx, { namespace: "", pageSize: 0, pageToken }),
        "INVALID_ARGUMENT",
      );
    }
  });
});

describe("subscriptions", () => {
  async function withEntries(n: number) {
    const { h, payloads } = await setup();
    for (let i = 0; i < n; i++) await appendToStream(h.sd, h.ctx, { stream: S, items: [item(payloads[0]!)] });
    return h;
  }

  it("starts at a set offset (0 included), at the beginning, or after the latest entry", async () => {
    const h = await withEntries(3);
    const open = (start: Parameters<typeof openSubscription>[2]["start"]) =>
      openSubscription(h.sd, h.ctx, { stream: S, start }).then((s) => s.nextOffset);
    expect(await open({ kind: "offset", offset: 0 })).toBe(0);
    expect(await open({ kind: "offset", offset: 2 })).toBe(2);
    expect(await open({ kind: "offset", offset: 10 })).toBe(10);
    expect(await open({ kind: "beginning" })).toBe(0);
    expect(await open({ kind: "latest" })).toBe(3);
    const sub = await openSubscription(h.sd, h.ctx, { stream: S, start: { kind: "latest" } });
    expect(sub.notifyKey).toBe(streamKeyString(keyOf(h)));
  });

  it("reads in batches from its position and advances past what it read", async () => {
    const h = await withEntries(5);
    let sub: Subscription = await openSubscription(h.sd, h.ctx, {
      stream: S,
      start: { kind: "offset", offset: 1 },
    });
    const first = await readSubscription(h.sd, sub, 3);
    expect(offsets(first.entries)).toEqual([1, 2, 3]);
    sub = first.next;
    const second = await readSubscription(h.sd, sub, 3);
    expect(offsets(second.entries)).toEqual([4]);
    const idle = await readSubscription(h.sd, second.next, 3);
    expect(idle.entries).toEqual([]);
    expect(idle.next.nextOffset).toBe(5);
  });

  it("is STREAM_NOT_FOUND at open for a missing stream, and once its stream was deleted or replaced", async () => {
    const h = await withEntries(1);
    await domainError(
      () => openSubscription(h.sd, h.other, { stream: S, start: { kind: "beginning" } }),
      "STREAM_NOT_FOUND",
    );
    const sub = await openSubscription(h.sd, h.ctx, { stream: S, start: { kind: "beginning" } });
    await deleteStream(h.sd, h.ctx, S);
    await domainError(() => readSubscription(h.sd, sub), "STREAM_NOT_FOUND");
    await createStream(h.sd, h.ctx, { stream: S, retentionMaxEntries: 0, retentionMaxAgeSec: 0 });
    const e = await domainError(() => readSubscription(h.sd, sub), "STREAM_NOT_FOUND");
    expect(e.message).toMatch(/deleted/);
  });
});

describe("applyStreamRetention", () => {
  it("ages out streams nobody appends to and trims only streams with a limit", async () => {
    const h = streamHarness();
    const p = (await committed(h)).id;
    const make = async (name: string, retentionMaxEntries: number, retentionMaxAgeSec: number) => {
      const stream = { namespace: "", name };
      await createStream(h.sd, h.ctx, { stream, retentionMaxEntries, retentionMaxAgeSec });
      await appendToStream(h.sd, h.ctx, { stream, items: [item(p), item(p), item(p)] });
      return stream;
    };
    const aged = await make("aged", 0, 10);
    const forever = await make("forever", 0, 0);
    const counted = await make("counted", 5, 0);
    h.clock.advance(5_000);
    await appendToStream(h.sd, h.ctx, { stream: aged, items: [item(p)] });
    h.clock.advance(6_000);
    const report = await applyStreamRetention(h.deps, h.clock.now(), 1);
    expect(report).toEqual({ streams: 2, entriesRemoved: 3 });
    const all = (stream: StreamIdInput) =>
      readStream(h.sd, h.ctx, { stream, startOffset: 0, maxEntries: 0, notBefore: undefined }).then(offsets);
    expect(await all(aged)).toEqual([3]);
    expect(await all(forever)).toEqual([0, 1, 2]);
    expect(await all(counted)).toEqual([0, 1, 2]);
    h.clock.advance(5_000);
    expect(await applyStreamRetention(h.deps, h.clock.now())).toEqual({ streams: 2, entriesRemoved: 1 });
    expect(await all(aged)).toEqual([]);
    expect(await applyStreamRetention(h.deps, h.clock.now())).toEqual({ streams: 2, entriesRemoved: 0 });
  });
});
