import { afterEach, describe, expect, it } from "vitest";
import { consoleLogger } from "../logger.ts";
import { notifierFor } from "../rpc/stream-service.ts";
import type { InProcessStreamNotifier } from "../streams/in-process-stream-notifier.ts";
import { makeTestApp } from "../testing/test-app.ts";

// The stream routes of the REST gateway (google.api.http of payload_stream_service.proto), including
// the empty-namespace path segment and Subscribe as newline-delimited JSON.

let t: ReturnType<typeof makeTestApp>;
const aborts: AbortController[] = [];
afterEach(() => {
  for (const a of aborts.splice(0)) a.abort();
  t?.cleanup();
});

const json = (body: unknown, method = "POST") => ({
  method,
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});

async function call(
  path: string,
  init?: RequestInit,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await t.fetch(`http://api.test${path}`, init);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function committedPayloadB64(): Promise<string> {
  const alloc = await call("/v1/payloads", json({ sizeBytes: "8", preferredTier: "TIER_DISK" }));
  const id = (alloc.body.payloadDescriptor as { payloadId: { value: string } }).payloadId.value;
  const b64url = Buffer.from(id, "base64").toString("base64url");
  expect((await call(`/v1/payloads/${b64url}/commit`, { method: "POST" })).status).toBe(200);
  return id;
}

/** Reads newline-delimited JSON objects from a streamed body, one at a time. */
function lines(body: ReadableStream<Uint8Array>) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  return {
    async next(ms = 2_000): Promise<Record<string, unknown> | undefined> {
      const deadline = Date.now() + ms;
      for (;;) {
        const nl = buffered.indexOf("\n");
        if (nl >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          return JSON.parse(line) as Record<string, unknown>;
        }
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no complete line within ${ms} ms (have ${JSON.stringify(buffered)})`);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const r = await Promise.race([
          reader.read(),
          new Promise<"timeout">((resolve) => {
            timer = setTimeout(() => resolve("timeout"), left);
          }),
        ]);
        clearTimeout(timer);
        if (r === "timeout") continue;
        if (r.done) {
          if (buffered.trim() !== "") throw new Error(`stream ended inside a line: ${buffered}`);
          return undefined;
        }
        buffered += decoder.decode(r.value, { stream: true });
      }
    },
    cancel: () => reader.cancel(),
  };
}

describe("stream REST routes", () => {
  it("serves every unary stream RPC, with the default namespace as an empty path segment", async () => {
    t = makeTestApp();
    const p = await committedPayloadB64();
    expect(
      await call(
        "/v1/streams",
        json({ stream: { name: "cams" }, retentionMaxEntries: "10", retention_max_age_sec: "0" }),
      ),
    ).toEqual({ status: 200, body: {} });
    expect((await call("/v1/streams", json({ stream: { name: "cams" } }))).body).toMatchObject({
      status: "ALREADY_EXISTS",
      details: [{ reason: "ALREADY_EXISTS" }],
    });
    const appended = await call(
      "/v1/streams//cams/entries",
      json({
        items: [
          { payloadId: { value: p }, tags: { a: "b" } },
          { payload_id: { value: p }, durationNs: "5" },
        ],
      }),
    );
    expect(appended).toEqual({ status: 200, body: { firstOffset: "0", lastOffset: "1" } });

    const read = await call("/v1/streams//cams/entries?start_offset=1&max_entries=5");
    expect(read.status).toBe(200);
    const entries = read.body.entries as Record<string, unknown>[];
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({
      stream: { name: "cams", namespace: "" },
      offset: "1",
      payloadId: { value: p },
      durationNs: "5",
      tags: {},
    });
    const notBefore = new Date(Date.now() + 3_600_000).toISOString();
    expect((await call(`/v1/streams//cams/entries?not_before=${notBefore}`)).body).toEqual({ entries: [] });

    const range = await call("/v1/streams//cams/range?start_offset=0&end_offset=0");
    expect((range.body.entries as { tags: unknown }[]).map((e) => e.tags)).toEqual([{ a: "b" }]);

    expect(await call("/v1/streams//cams/commit", json({ consumerGroup: "g", offset: "1" }))).toEqual({
      status: 200,
      body: {},
    });
    expect(await call("/v1/streams//cams/committed?consumer_group=g")).toEqual({
      status: 200,
      body: { offset: "1" },
    });

    await call("/v1/streams", json({ stream: { name: "cams", namespace: "prod" } }));
    const listed = await call("/v1/streams?page_size=1");
    expect(listed.status).toBe(200);
    expect(listed.body.streams).toEqual([
      expect.objectContaining({
        stream: { name: "cams", namespace: "" },
        retentionMaxEntries: "10",
        firstOffset: "0",
        lastOffset: "1",
        entryCount: "2",
      }),
    ]);
    const token = listed.body.nextPageToken as string;
    expect(token).not.toBe("");
    const second = await call(`/v1/streams?page_size=1&page_token=${token}`);
    expect((second.body.streams as { stream: unknown }[]).map((s) => s.stream)).toEqual([
      { name: "cams", namespace: "prod" },
    ]);
    expect((await call("/v1/streams?namespace=prod")).body.streams).toHaveLength(1);

    expect(await call("/v1/streams//cams", { method: "DELETE" })).toEqual({ status: 200, body: {} });
    expect((await call("/v1/streams//cams/entries")).status).toBe(404);
    expect((await call("/v1/streams/prod/cams/entries")).status).toBe(200);
  });

  it("maps stream errors to gRPC-Gateway statuses", async () => {
    t = makeTestApp();
    await call("/v1/streams", json({ stream: { name: "s" } }));
    const cases: [string, RequestInit | undefined, number, string][] = [
      ["/v1/streams", json({ stream: { name: "" } }), 400, "INVALID_ARGUMENT"],
      ["/v1/streams//missing/entries", undefined, 404, "NOT_FOUND"],
      ["/v1/streams//missing", { method: "DELETE" }, 404, "NOT_FOUND"],
      ["/v1/streams//s/entries", json({ items: [] }), 400, "INVALID_ARGUMENT"],
      ["/v1/streams//s/range?start_offset=3&end_offset=2", undefined, 400, "INVALID_ARGUMENT"],
      ["/v1/streams//s/commit", json({ consumerGroup: "g", offset: "0" }), 400, "INVALID_ARGUMENT"],
      ["/v1/streams//s/committed", undefined, 400, "INVALID_ARGUMENT"],
      ["/v1/streams?page_token=nope", undefined, 400, "INVALID_ARGUMENT"],
    ];
    for (const [path, init, status, code] of cases) {
      const res = await call(path, init);
      expect({ path, status: res.status, code: res.body.status }).toEqual({ path, status, code });
    }
  });
});

describe("Subscribe over REST (newline-delimited JSON)", () => {
  async function subscribeRest(query: string, path = "/v1/streams//cams/subscribe") {
    const ac = new AbortController();
    aborts.push(ac);
    const res = await t.fetch(`http://api.test${path}${query}`, { signal: ac.signal });
    return { res, ac };
  }

  it("streams {result} lines: replay, then live appends, then {error} when the stream is deleted", async () => {
    t = makeTestApp();
    const p = await committedPayloadB64();
    await call("/v1/streams", json({ stream: { name: "cams" } }));
    await call(
      "/v1/streams//cams/entries",
      json({ items: [{ payloadId: { value: p } }, { payloadId: { value: p } }] }),
    );

    const { res } = await subscribeRest("?offset=0");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/x-ndjson");
    const feed = lines(res.body!);
    const first = await feed.next();
    expect(first).toEqual({
      result: {
        entry: expect.objectContaining({
          stream: { name: "cams", namespace: "" },
          offset: "0",
          payloadId: { value: p },
        }),
      },
    });
    expect(((await feed.next())!.result as { entry: { offset: string } }).entry.offset).toBe("1");

    const live = feed.next(1_000);
    await new Promise((r) => setTimeout(r, 20));
    await call(
      "/v1/streams//cams/entries",
      json({ items: [{ payloadId: { value: p }, tags: { live: "1" } }] }),
    );
    expect(await live).toEqual({
      result: { entry: expect.objectContaining({ offset: "2", tags: { live: "1" } }) },
    });

    const end = feed.next(1_000);
    await new Promise((r) => setTimeout(r, 20));
    await call("/v1/streams//cams", { method: "DELETE" });
    expect(await end).toEqual({
      error: expect.objectContaining({
        code: 5,
        status: "NOT_FOUND",
        message: expect.stringMatching(/deleted/),
        details: [expect.objectContaining({ reason: "STREAM_NOT_FOUND" })],
      }),
    });
    expect(await feed.next()).toBeUndefined();
  });

  it("honours offset=0 as set, from_latest and from_beginning", async () => {
    t = makeTestApp();
    const p = await committedPayloadB64();
    await call("/v1/streams", json({ stream: { name: "cams" }, retentionMaxEntries: "2" }));
    await call(
      "/v1/streams//cams/entries",
      json({
        items: [{ payloadId: { value: p } }, { payloadId: { value: p } }, { payloadId: { value: p } }],
      }),
    );
    for (const query of ["?offset=0", "?from_beginning=true", ""]) {
      const { res, ac } = await subscribeRest(query);
      const feed = lines(res.body!);
      expect({ query, line: await feed.next() }).toMatchObject({
        query,
        line: { result: { entry: { offset: "1" } } },
      });
      ac.abort();
    }
    const latest = subscribeRest("?from_latest=true&max_inflight=4");
    await new Promise((r) => setTimeout(r, 50));
    await call("/v1/streams//cams/entries", json({ items: [{ payloadId: { value: p } }] }));
    const { res } = await latest;
    expect(await lines(res.body!).next()).toMatchObject({ result: { entry: { offset: "3" } } });
  });

  it("answers an error before any entry with its HTTP status and one {error} line", async () => {
    t = makeTestApp();
    const { res } = await subscribeRest("?offset=0", "/v1/streams//nope/subscribe");
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toBe("application/x-ndjson");
    const text = await res.text();
    expect(text.endsWith("\n")).toBe(true);
    expect(JSON.parse(text)).toEqual({
      error: expect.objectContaining({
        code: 5,
        status: "NOT_FOUND",
        details: [expect.objectContaining({ reason: "STREAM_NOT_FOUND" })],
      }),
    });
    const bad = await subscribeRest("?offset=1&from_latest=true", "/v1/streams//nope/subscribe");
    expect(bad.res.status).toBe(400);
    expect(JSON.parse(await bad.res.text())).toMatchObject({ error: { status: "INVALID_ARGUMENT" } });
    const unknown = await subscribeRest("?bogus=1", "/v1/streams//nope/subscribe");
    expect(unknown.res.status).toBe(400);
  });

  it("requires the caller's token like every other route", async () => {
    t = makeTestApp({ tokens: { "token-aaaa": "team-a" } });
    const { res } = await subscribeRest("?offset=0");
    expect(res.status).toBe(401);
    expect(JSON.parse(await res.text())).toMatchObject({ error: { status: "UNAUTHENTICATED" } });
  });

  it("ends the server-side feed when the REST client disconnects", async () => {
    t = makeTestApp();
    const p = await committedPayloadB64();
    await call("/v1/streams", json({ stream: { name: "cams" } }));
    await call("/v1/streams//cams/entries", json({ items: [{ payloadId: { value: p } }] }));
    const { res, ac } = await subscribeRest("?offset=0");
    const feed = lines(res.body!);
    await feed.next();
    ac.abort();
    await feed.cancel().catch(() => undefined);
    const notifier = notifierFor({
      useCases: t.deps,
      log: consoleLogger("silent"),
    }) as InProcessStreamNotifier;
    const deadline = Date.now() + 1_000;
    while (notifier.subscriberCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(notifier.subscriberCount).toBe(0);
  });
});
