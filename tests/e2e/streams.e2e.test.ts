import http from "node:http";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { createPayloadClient, idBytes, type PayloadClient } from "@pm/client";
import { put } from "@pm/client/node";
import { PayloadStreamService, Tier } from "@pm/rpc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningSystem, removeDataDir, startSystem } from "../support/system.ts";

// Streams through the real `payload-manager` process (SQLite catalog, real agent): a gRPC
// subscriber on the HTTP/2 port is woken by appends made over Connect on the HTTP port — one
// notifier serves both servers — and REST Subscribe streams newline-delimited JSON over a socket.

let sys: RunningSystem;
let client: PayloadClient;

beforeAll(async () => {
  sys = await startSystem({ role: "all" });
  client = createPayloadClient({ baseUrl: sys.url });
});
afterAll(async () => {
  await sys?.stop();
  if (sys) removeDataDir(sys.dataDir);
});

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

describe("streams end to end", () => {
  it("a gRPC subscriber gets appends made over Connect promptly, and NOT_FOUND on delete", async () => {
    const stream = { namespace: "e2e", name: "grpc-feed" };
    const { id } = await put(client, Buffer.from("frame-0"), { tier: Tier.DISK });
    await client.stream.createStream({ stream, retentionMaxEntries: 1000n });
    await client.stream.append({ stream, items: [{ payloadId: idBytes(id) }] });

    const session = new Http2SessionManager(sys.grpcUrl);
    const grpc = createClient(
      PayloadStreamService,
      createGrpcTransport({ baseUrl: sys.grpcUrl, sessionManager: session }),
    );
    const ac = new AbortController();
    const it = grpc
      .subscribe({ stream, start: { case: "offset", value: 0n } }, { signal: ac.signal })
      [Symbol.asyncIterator]();
    try {
      const first = await within(it.next(), 5_000, "the replayed entry");
      expect(first.value?.entry?.offset).toBe(0n);
      const live = it.next();
      await new Promise((r) => setTimeout(r, 50));
      const started = performance.now();
      await client.stream.append({ stream, items: [{ payloadId: idBytes(id), tags: { n: "1" } }] });
      const pushed = await within(live, 2_000, "the pushed entry");
      expect(performance.now() - started).toBeLessThan(2_000);
      expect(pushed.value?.entry).toMatchObject({ offset: 1n, tags: { n: "1" } });

      const end = it.next().then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      await new Promise((r) => setTimeout(r, 50));
      await client.stream.deleteStream({ stream });
      expect((await within(end, 2_000, "the end of the subscription"))?.code).toBe(Code.NotFound);
    } finally {
      ac.abort();
      // An open HTTP/2 session would hold the server's graceful shutdown.
      session.abort();
    }
  });

  it("REST Subscribe streams {result} lines over a real socket until the client hangs up", async () => {
    const { id } = await put(client, Buffer.from("frame-1"), { tier: Tier.DISK });
    await client.stream.createStream({ stream: { namespace: "", name: "rest-feed" } });
    const body = JSON.stringify({
      items: [{ payloadId: { value: Buffer.from(idBytes(id).value).toString("base64") } }],
    });
    const append = () =>
      fetch(`${sys.url}/v1/streams//rest-feed/entries`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
    expect((await append()).status).toBe(200);

    const ac = new AbortController();
    const res = await fetch(`${sys.url}/v1/streams//rest-feed/subscribe?offset=0`, { signal: ac.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/x-ndjson");
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    const line = async () => {
      while (!text.includes("\n")) {
        const r = await within(reader.read(), 3_000, "a streamed line");
        if (r.done) throw new Error("the stream ended");
        text += decoder.decode(r.value, { stream: true });
      }
      const nl = text.indexOf("\n");
      const out = JSON.parse(text.slice(0, nl)) as { result: { entry: { offset: string } } };
      text = text.slice(nl + 1);
      return out;
    };
    expect((await line()).result.entry.offset).toBe("0");
    expect((await append()).status).toBe(200);
    expect((await line()).result.entry.offset).toBe("1");
    ac.abort();
    await reader.cancel().catch(() => undefined);
    // The server is still healthy and serving the stream after the client left.
    expect((await append()).status).toBe(200);
    const read = await client.stream.read({ stream: { namespace: "", name: "rest-feed" } });
    expect(read.entries.map((e) => e.offset)).toEqual([0n, 1n, 2n]);
  });

  // Last: it stops the system.
  it("a graceful shutdown ends live subscriptions instead of waiting for them", async () => {
    await client.stream.createStream({ stream: { namespace: "", name: "shutdown" } });
    const { id } = await put(client, Buffer.from("frame-2"), { tier: Tier.DISK });
    await client.stream.append({
      stream: { namespace: "", name: "shutdown" },
      items: [{ payloadId: idBytes(id) }],
    });
    // A connection of its own (no keep-alive pool), so only the live feed can hold the shutdown.
    const body = new Promise<{ status: number; text: string }>((resolve, reject) => {
      http
        .get(`${sys.url}/v1/streams//shutdown/subscribe?offset=0`, { agent: false }, (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            text += chunk;
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
          res.on("error", reject);
        })
        .on("error", reject);
    });
    // The first entry is there before the shutdown starts.
    await new Promise((r) => setTimeout(r, 200));
    const exit = await within(sys.stop("SIGTERM"), 10_000, "the shutdown");
    expect(exit).toBe(0);
    const { status, text } = await within(body, 2_000, "the end of the REST stream");
    expect(status).toBe(200);
    expect(
      text
        .trim()
        .split("\n")
        .map((l) => Object.keys(JSON.parse(l) as object)),
    ).toEqual([["result"]]);
  });
});
