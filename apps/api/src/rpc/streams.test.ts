import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { type PayloadID, type SubscribeResponse, Tier } from "@pm/rpc";
import { afterEach, describe, expect, it } from "vitest";
import { consoleLogger } from "../logger.ts";
import type { InProcessStreamNotifier } from "../streams/in-process-stream-notifier.ts";
import { makeTestApp } from "../testing/test-app.ts";
import { notifierFor } from "./stream-service.ts";

// PayloadStreamService in process over Connect (JSON and binary) and gRPC-Web: every RPC's happy
// path and wire errors, and Subscribe's replay-then-push, start positions and end on delete.

let t: ReturnType<typeof makeTestApp>;
const aborts: AbortController[] = [];
afterEach(() => {
  for (const a of aborts.splice(0)) a.abort();
  t?.cleanup();
});

type Clients = ReturnType<ReturnType<typeof makeTestApp>["clients"]>;
const S = { namespace: "", name: "cams/front" };

async function committedPayload(c: Clients): Promise<PayloadID> {
  const { payloadDescriptor: d } = await c.catalog.allocatePayload({
    sizeBytes: 8n,
    preferredTier: Tier.DISK,
  });
  await c.catalog.commitPayload({ id: d!.payloadId! });
  return d!.payloadId!;
}

async function codeOf(p: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await p;
    return "ok";
  } catch (e) {
    return ConnectError.from(e).code;
  }
}

/** Pulls the next message, failing the test if none arrives within `ms`. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function subscribe(c: Clients, start: Parameters<Clients["stream"]["subscribe"]>[0]["start"], stream = S) {
  const ac = new AbortController();
  aborts.push(ac);
  const it = c.stream.subscribe({ stream, start }, { signal: ac.signal })[Symbol.asyncIterator]();
  return {
    ac,
    next: async (ms = 2_000): Promise<SubscribeResponse> => {
      const r = await within(it.next(), ms, "the next streamed entry");
      if (r.done) throw new Error("the subscription ended");
      return r.value;
    },
    it,
  };
}

describe("PayloadStreamService over Connect", () => {
  it("creates, appends, reads, ranges, commits, lists and deletes", async () => {
    t = makeTestApp();
    const c = t.clients();
    const [p1, p2] = [await committedPayload(c), await committedPayload(c)];
    await c.stream.createStream({ stream: S, retentionMaxEntries: 100n, retentionMaxAgeSec: 3600n });
    const eventTime = timestampFromMs(Date.UTC(2026, 0, 1, 12));
    const a1 = await c.stream.append({
      stream: S,
      items: [{ payloadId: p1, eventTime, durationNs: 33_333_333n, tags: { camera: "front", ä: "ü" } }],
    });
    expect([a1.firstOffset, a1.lastOffset]).toEqual([0n, 0n]);
    const a2 = await c.stream.append({ stream: S, items: [{ payloadId: p2 }, { payloadId: p1 }] });
    expect([a2.firstOffset, a2.lastOffset]).toEqual([1n, 2n]);

    const read = await c.stream.read({ stream: S, startOffset: 0n });
    expect(read.entries.map((e) => e.offset)).toEqual([0n, 1n, 2n]);
    const e0 = read.entries[0]!;
    expect(e0.stream).toMatchObject(S);
    expect(e0.payloadId!.value).toEqual(p1.value);
    expect(e0.eventTime).toMatchObject({ seconds: eventTime.seconds, nanos: 0 });
    expect(e0.appendTime!.seconds).toBeGreaterThan(0n);
    expect(e0.durationNs).toBe(33_333_333n);
    expect(e0.tags).toEqual({ camera: "front", ä: "ü" });
    expect(read.entries[1]!.eventTime).toBeUndefined();
    expect(
      (await c.stream.read({ stream: S, startOffset: 1n, maxEntries: 1n })).entries.map((e) => e.offset),
    ).toEqual([1n]);
    const future = timestampFromMs(t.clock.now() + 60_000);
    expect((await c.stream.read({ stream: S, startOffset: 0n, notBefore: future })).entries).toEqual([]);

    expect(
      (await c.stream.getRange({ stream: S, startOffset: 1n, endOffset: 2n })).entries.map((e) => e.offset),
    ).toEqual([1n, 2n]);

    expect((await c.stream.getCommitted({ stream: S, consumerGroup: "g" })).offset).toBe(0n);
    await c.stream.commit({ stream: S, consumerGroup: "g", offset: 2n });
    expect((await c.stream.getCommitted({ stream: S, consumerGroup: "g" })).offset).toBe(2n);

    await c.stream.createStream({ stream: { namespace: "prod", name: "other" } });
    const all = await c.stream.listStreams({});
    expect(all.nextPageToken).toBe("");
    expect(
      all.streams.map((i) => [
        i.stream!.namespace,
        i.stream!.name,
        i.firstOffset,
        i.lastOffset,
        i.entryCount,
      ]),
    ).toEqual([
      ["", "cams/front", 0n, 2n, 3n],
      ["prod", "other", 0n, 0n, 0n],
    ]);
    expect(all.streams[0]).toMatchObject({ retentionMaxEntries: 100n, retentionMaxAgeSec: 3600n });
    expect(all.streams[0]!.createdAt!.seconds).toBeGreaterThan(0n);
    const page = await c.stream.listStreams({ pageSize: 1 });
    expect(page.streams.map((i) => i.stream!.name)).toEqual(["cams/front"]);
    const rest = await c.stream.listStreams({ pageSize: 1, pageToken: page.nextPageToken });
    expect(rest.streams.map((i) => i.stream!.name)).toEqual(["other"]);
    expect((await c.stream.listStreams({ namespace: "prod" })).streams.map((i) => i.stream!.name)).toEqual([
      "other",
    ]);

    await c.stream.deleteStream({ stream: S });
    expect(await codeOf(c.stream.read({ stream: S }))).toBe(Code.NotFound);
    expect((await c.stream.listStreams({})).streams.map((i) => i.stream!.name)).toEqual(["other"]);
  });

  it("works the same over Connect binary and gRPC-Web", async () => {
    t = makeTestApp();
    for (const [i, transport] of [t.transports.connectBinary, t.transports.grpcWeb].entries()) {
      const c = t.clients(transport);
      const stream = { namespace: "bin", name: `s${i}` };
      const p = await committedPayload(c);
      await c.stream.createStream({ stream });
      await c.stream.append({ stream, items: [{ payloadId: p, tags: { k: "v" } }] });
      const sub = subscribe(c, { case: "offset", value: 0n }, stream);
      expect((await sub.next()).entry!.tags).toEqual({ k: "v" });
      await c.stream.append({ stream, items: [{ payloadId: p }] });
      expect((await sub.next()).entry!.offset).toBe(1n);
      sub.ac.abort();
    }
  });

  it("answers each documented error with its wire code", async () => {
    t = makeTestApp();
    const c = t.clients();
    const p = await committedPayload(c);
    const { payloadDescriptor: fresh } = await c.catalog.allocatePayload({
      sizeBytes: 8n,
      preferredTier: Tier.DISK,
    });
    await c.stream.createStream({ stream: S });
    await c.stream.append({ stream: S, items: [{ payloadId: p }] });
    const missing = { namespace: "", name: "missing" };
    const cases: [string, Promise<unknown>, Code][] = [
      ["duplicate create", c.stream.createStream({ stream: S }), Code.AlreadyExists],
      ["create without a name", c.stream.createStream({}), Code.InvalidArgument],
      ["delete a missing stream", c.stream.deleteStream({ stream: missing }), Code.NotFound],
      [
        "append to a missing stream",
        c.stream.append({ stream: missing, items: [{ payloadId: p }] }),
        Code.NotFound,
      ],
      ["append nothing", c.stream.append({ stream: S, items: [] }), Code.InvalidArgument],
      ["append without a payload id", c.stream.append({ stream: S, items: [{}] }), Code.InvalidArgument],
      [
        "append an unknown payload",
        c.stream.append({ stream: S, items: [{ payloadId: { value: new Uint8Array(16).fill(7) } }] }),
        Code.NotFound,
      ],
      [
        "append an uncommitted payload",
        c.stream.append({ stream: S, items: [{ payloadId: fresh!.payloadId! }] }),
        Code.FailedPrecondition,
      ],
      ["read a missing stream", c.stream.read({ stream: missing }), Code.NotFound],
      [
        "range end before start",
        c.stream.getRange({ stream: S, startOffset: 2n, endOffset: 1n }),
        Code.InvalidArgument,
      ],
      [
        "range too long",
        c.stream.getRange({ stream: S, startOffset: 0n, endOffset: 10_000n }),
        Code.InvalidArgument,
      ],
      ["range of a missing stream", c.stream.getRange({ stream: missing }), Code.NotFound],
      ["commit without a group", c.stream.commit({ stream: S, offset: 0n }), Code.InvalidArgument],
      [
        "commit past the end",
        c.stream.commit({ stream: S, consumerGroup: "g", offset: 1n }),
        Code.InvalidArgument,
      ],
      ["commit on a missing stream", c.stream.commit({ stream: missing, consumerGroup: "g" }), Code.NotFound],
      [
        "get committed on a missing stream",
        c.stream.getCommitted({ stream: missing, consumerGroup: "g" }),
        Code.NotFound,
      ],
      [
        "list with a foreign page token",
        c.stream.listStreams({ pageToken: "garbage" }),
        Code.InvalidArgument,
      ],
      // Names outside Latin-1 must not leak into error headers (that once turned NOT_FOUND into INTERNAL).
      [
        "delete a missing unicode stream",
        c.stream.deleteStream({ stream: { namespace: "ü", name: "Ā🎥" } }),
        Code.NotFound,
      ],
      ["offset beyond 2^53", c.stream.read({ stream: S, startOffset: 2n ** 60n }), Code.InvalidArgument],
    ];
    for (const [what, call, code] of cases)
      expect({ what, code: await codeOf(call) }).toEqual({ what, code });
    await c.stream.createStream({ stream: { namespace: "ü", name: "Ā🎥" } });
    expect(await codeOf(c.stream.createStream({ stream: { namespace: "ü", name: "Ā🎥" } }))).toBe(
      Code.AlreadyExists,
    );
    const err = ConnectError.from(await c.stream.read({ stream: missing }).catch((e: unknown) => e));
    expect(err.metadata.get("pm-error-reason")).toBe("STREAM_NOT_FOUND");
    expect(err.rawMessage).toMatch(/CreateStream/);
  });

  it("keeps tenants apart: another token's streams are invisible and its names are free", async () => {
    t = makeTestApp({ tokens: { "token-aaaa": "team-a", "token-bbbb": "team-b" } });
    const as = (token: string) =>
      t.clients(
        createConnectTransport({
          baseUrl: "http://api.test",
          fetch: t.fetch,
          interceptors: [
            (next) => (req) => {
              req.header.set("authorization", `Bearer ${token}`);
              return next(req);
            },
          ],
        }),
      );
    const a = as("token-aaaa");
    const b = as("token-bbbb");
    await a.stream.createStream({ stream: S });
    expect(await codeOf(b.stream.read({ stream: S }))).toBe(Code.NotFound);
    expect((await b.stream.listStreams({})).streams).toEqual([]);
    await b.stream.createStream({ stream: S });
    const pa = await committedPayload(a);
    expect(await codeOf(b.stream.append({ stream: S, items: [{ payloadId: pa }] }))).toBe(Code.NotFound);
    await a.stream.append({ stream: S, items: [{ payloadId: pa }] });
    expect((await b.stream.read({ stream: S })).entries).toEqual([]);
  });
});

describe("Subscribe over Connect", () => {
  it("replays from the requested offset, then pushes new appends promptly", async () => {
    t = makeTestApp();
    const c = t.clients();
    const p = await committedPayload(c);
    await c.stream.createStream({ stream: S });
    await c.stream.append({ stream: S, items: [{ payloadId: p }, { payloadId: p }, { payloadId: p }] });
    const sub = subscribe(c, { case: "offset", value: 1n });
    expect((await sub.next()).entry!.offset).toBe(1n);
    expect((await sub.next()).entry!.offset).toBe(2n);
    // Nothing more yet; an append now arrives well before the 5 s fallback re-check would.
    const pending = sub.next(1_000);
    await new Promise((r) => setTimeout(r, 20));
    const started = performance.now();
    await c.stream.append({ stream: S, items: [{ payloadId: p, tags: { live: "yes" } }, { payloadId: p }] });
    const live = await pending;
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(live.entry).toMatchObject({ offset: 3n, tags: { live: "yes" } });
    expect((await sub.next()).entry!.offset).toBe(4n);
  });

  it("treats offset 0 as set, and starts at the beginning when no start is given", async () => {
    t = makeTestApp();
    const c = t.clients();
    const p = await committedPayload(c);
    await c.stream.createStream({ stream: S, retentionMaxEntries: 2n });
    await c.stream.append({ stream: S, items: [{ payloadId: p }, { payloadId: p }, { payloadId: p }] });
    // Offsets 0 is retention-dropped: each of these replays from the oldest retained entry, 1.
    for (const start of [
      { case: "offset", value: 0n },
      { case: "fromBeginning", value: true },
      { case: undefined },
    ] as const) {
      const sub = subscribe(c, start);
      expect((await sub.next()).entry!.offset).toBe(1n);
      sub.ac.abort();
    }
  });

  it("from_latest delivers only what is appended after subscribing", async () => {
    t = makeTestApp();
    const c = t.clients();
    const p = await committedPayload(c);
    await c.stream.createStream({ stream: S });
    await c.stream.append({ stream: S, items: [{ payloadId: p }, { payloadId: p }] });
    const sub = subscribe(c, { case: "fromLatest", value: true });
    const first = sub.next();
    // Give the subscription time to open before appending (it starts after the latest entry).
    await new Promise((r) => setTimeout(r, 50));
    await c.stream.append({ stream: S, items: [{ payloadId: p }] });
    expect((await first).entry!.offset).toBe(2n);
  });

  it("ends with NOT_FOUND when the stream is deleted, and answers NOT_FOUND for a missing stream", async () => {
    t = makeTestApp();
    const c = t.clients();
    const p = await committedPayload(c);
    await c.stream.createStream({ stream: S });
    await c.stream.append({ stream: S, items: [{ payloadId: p }] });
    const sub = subscribe(c, { case: "offset", value: 0n });
    expect((await sub.next()).entry!.offset).toBe(0n);
    const end = within(sub.it.next(), 1_000, "the end of the subscription").then(
      () => "ok",
      (e: unknown) => ConnectError.from(e),
    );
    await new Promise((r) => setTimeout(r, 20));
    await c.stream.deleteStream({ stream: S });
    const err = await end;
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.NotFound);
    expect((err as ConnectError).rawMessage).toMatch(/deleted/);

    const none = subscribe(c, { case: "fromBeginning", value: true }, { namespace: "", name: "never" });
    expect(ConnectError.from(await none.next().catch((e: unknown) => e)).code).toBe(Code.NotFound);
  });

  it("stops following when the client aborts", async () => {
    t = makeTestApp();
    const c = t.clients();
    const p = await committedPayload(c);
    await c.stream.createStream({ stream: S });
    await c.stream.append({ stream: S, items: [{ payloadId: p }] });
    const sub = subscribe(c, { case: "offset", value: 0n });
    await sub.next();
    const rest = sub.it.next().then(
      (r) => r,
      (e: unknown) => ConnectError.from(e),
    );
    sub.ac.abort();
    const outcome = await within(rest, 1_000, "the aborted subscription to settle");
    expect(outcome instanceof ConnectError ? outcome.code : "done").toBe(Code.Canceled);
    // The server side let go too: nothing is left listening, and appends go on.
    const notifier = notifierFor({
      useCases: t.deps,
      log: consoleLogger("silent"),
    }) as InProcessStreamNotifier;
    const deadline = Date.now() + 1_000;
    while (notifier.subscriberCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(notifier.subscriberCount).toBe(0);
    await c.stream.append({ stream: S, items: [{ payloadId: p }] });
  });
});
