// The hand-written HTTP/1.1 unary transport held to connect-node's Connect transport: the same
// calls through both, against the same loopback servers (a TierAgentService behind
// connectNodeAdapter, plain HTTP servers, raw sockets writing hand-made answers), end the same way.
// Then what only the lean transport promises: one connection reused call after call, a reused
// connection closed before any answer byte retried once on a new one, HTTP/1.1 framing read by
// hand, readMaxBytes, streams handed to the fallback.
import { execFile } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import {
  type AddressInfo,
  createServer as createNetServer,
  type Server as NetServer,
  type Socket,
} from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { create, equals, toBinary } from "@bufbuild/protobuf";
import { DurationSchema, StringValueSchema } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createClient,
  createContextValues,
  type Transport,
} from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  ListRegionsResponseSchema,
  type Region,
  RegionSchema,
  type StatRegionRequest,
  StatRegionRequestSchema,
  Tier,
  TierAgentService,
} from "../index.ts";
import { createHttp1UnaryTransport, type Http1UnaryTransportOptions } from "./http1-unary-transport.ts";

// --- servers -----------------------------------------------------------------------------------

interface Listening {
  readonly baseUrl: string;
  /** TCP connections the server has accepted so far. */
  connections(): number;
  /** Of those, how many have closed. */
  closed(): number;
  close(): Promise<void>;
}

/** Starts `server` on a free loopback port, counting its connections; `close` ends them too. */
async function listen(server: http.Server | NetServer): Promise<Listening> {
  let connections = 0;
  let closed = 0;
  const sockets = new Set<Socket>();
  server.on("connection", (s: Socket) => {
    connections++;
    sockets.add(s);
    s.on("close", () => {
      closed++;
      sockets.delete(s);
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => connections,
    closed: () => closed,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** `listen`, closed after the test. */
async function serve(server: http.Server | NetServer): Promise<Listening> {
  const l = await listen(server);
  cleanups.push(l.close);
  return l;
}

/** What the implementation saw of each StatRegion call. */
interface Seen {
  readonly mode: string;
  readonly header: Headers;
  readonly timeoutMs: number | undefined;
  readonly url: string;
}

const payloadId = (n: number) => {
  const value = new Uint8Array(16);
  value[0] = n;
  value[15] = 0xa5;
  return value;
};
const ask = (n: number) => ({ payloadId: { value: payloadId(n) }, tier: Tier.RAM });

const regionFor = (req: StatRegionRequest): Region =>
  create(RegionSchema, {
    ...(req.payloadId ? { payloadId: req.payloadId } : {}),
    tier: req.tier,
    sizeBytes: 4096n + BigInt(req.payloadId?.value[0] ?? 0),
    location: { case: "ram", value: { shmName: "pm-seg-3", slabId: 7 } },
  });

/**
 * A TierAgentService on connect-node's adapter. StatRegion echoes its request as a Region with
 * a response header and a trailer, by the request's `x-mode`: `fail` throws a ConnectError with
 * metadata and details, `jitter` answers after a few milliseconds, `stall` is never answered.
 */
function agentServer(seen: Seen[] = []): http.Server {
  const routes = (r: ConnectRouter) =>
    r.service(TierAgentService, {
      async statRegion(req, ctx) {
        const mode = ctx.requestHeader.get("x-mode") ?? "";
        seen.push({ mode, header: new Headers(ctx.requestHeader), timeoutMs: ctx.timeoutMs(), url: ctx.url });
        if (mode === "fail") {
          throw new ConnectError(
            "region is held by a lease",
            Code.FailedPrecondition,
            { "x-holder": "lease-7" },
            [
              { desc: StringValueSchema, value: { value: "held by lease 7" } },
              { desc: DurationSchema, value: { seconds: 30n } },
            ],
          );
        }
        if (mode === "jitter") await sleep(1 + ((req.payloadId?.value[0] ?? 0) % 7));
        ctx.responseHeader.set("x-answer", "stat");
        ctx.responseTrailer.set("x-served-by", "agent-1");
        return regionFor(req);
      },
      listRegions() {
        return {
          regions: [
            regionFor(create(StatRegionRequestSchema, ask(1))),
            regionFor(create(StatRegionRequestSchema, ask(2))),
          ],
        };
      },
    });
  const adapter = connectNodeAdapter({ routes });
  return http.createServer((req, res) => {
    if (req.headers["x-mode"] !== "stall") adapter(req, res);
  });
}

/** A raw TCP server: `onRequest` gets each whole request (head and body) as it comes. */
function rawServer(
  onRequest: (
    conn: { readonly socket: Socket; readonly index: number; requests: number },
    head: string,
  ) => void,
): NetServer {
  let index = 0;
  return createNetServer((socket) => {
    socket.on("error", () => {});
    const conn = { socket, index: index++, requests: 0 };
    let buf = Buffer.alloc(0);
    socket.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buf.toString("latin1", 0, end);
        let bodyEnd = end + 4 + Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
          // connect-node sends its body chunked; taken whole, up to the last chunk
          const last = buf.indexOf("0\r\n\r\n", end + 4);
          if (last < 0) return;
          bodyEnd = last + 5;
        }
        if (buf.length < bodyEnd) return;
        buf = buf.subarray(bodyEnd);
        conn.requests++;
        onRequest(conn, head);
      }
    });
  });
}

/** The bytes of a Region answer to `ask(n)`. */
const regionBytes = (n: number) =>
  Buffer.from(toBinary(RegionSchema, regionFor(create(StatRegionRequestSchema, ask(n)))));
const protoHead = (extra: string) => `HTTP/1.1 200 OK\r\ncontent-type: application/proto\r\n${extra}\r\n`;
/** A whole keep-alive answer to `ask(n)` with its content-length. */
const lengthAnswer = (n: number) =>
  Buffer.concat([Buffer.from(protoHead(`content-length: ${regionBytes(n).length}\r\n`)), regionBytes(n)]);

const execFileAsync = promisify(execFile);

/** Waits until `done()` holds (the describe's timeout bounds it), without a fixed sleep. */
async function until(done: () => boolean): Promise<void> {
  while (!done()) await sleep(5);
}

// --- transports --------------------------------------------------------------------------------

/** A fallback no unary call may reach. */
const noFallback: Transport = {
  unary: () => {
    throw new Error("a unary call went to the fallback");
  },
  stream: () => {
    throw new Error("a stream went to the fallback");
  },
};

type LeanOptions = Partial<Omit<Http1UnaryTransportOptions, "baseUrl" | "fallback">>;
const lean = (baseUrl: string, o: LeanOptions = {}) =>
  createHttp1UnaryTransport({ baseUrl, fallback: noFallback, ...o });
const standard = (baseUrl: string, readMaxBytes?: number) =>
  createConnectTransport({
    baseUrl,
    httpVersion: "1.1",
    ...(readMaxBytes === undefined ? {} : { readMaxBytes }),
  });
/** The lean transport and connect-node's, on the same server. */
const both = (baseUrl: string, readMaxBytes?: number) =>
  [
    ["lean", lean(baseUrl, readMaxBytes === undefined ? {} : { readMaxBytes })],
    ["connect-node", standard(baseUrl, readMaxBytes)],
  ] as const;
const agent = (t: Transport) => createClient(TierAgentService, t);

/** The ConnectError `p` rejects with. */
async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ConnectError);
    return e as ConnectError;
  }
  throw new Error("the call succeeded");
}

/** Headers as sorted entries, without the ones that differ from answer to answer. */
const entries = (h: Headers, without: string[] = ["date"]) =>
  [...h.entries()].filter(([k]) => !without.includes(k)).sort(([a], [b]) => a.localeCompare(b));

// --- against a TierAgentService --------------------------------------------------------------

describe("HTTP/1.1 unary transport against connect-node's transport, on a TierAgentService", {
  timeout: 5_000,
}, () => {
  const seen: Seen[] = [];
  let server: Listening;

  beforeAll(async () => {
    server = await listen(agentServer(seen));
  });
  afterAll(() => server.close());

  it("returns the same messages, response headers and trailers", async () => {
    const got = [];
    for (const [, t] of both(server.baseUrl)) {
      let header = new Headers();
      let trailer = new Headers();
      const region = await agent(t).statRegion(ask(9), {
        onHeader: (h) => {
          header = h;
        },
        onTrailer: (h) => {
          trailer = h;
        },
      });
      const list = await agent(t).listRegions({});
      got.push({ region, list, header, trailer });
    }
    const [l, s] = got as [(typeof got)[0], (typeof got)[0]];
    expect(equals(RegionSchema, l.region, s.region)).toBe(true);
    expect(equals(RegionSchema, l.region, regionFor(create(StatRegionRequestSchema, ask(9))))).toBe(true);
    expect(equals(ListRegionsResponseSchema, l.list, s.list)).toBe(true);
    expect(l.list.regions.map((r) => r.sizeBytes)).toEqual([4097n, 4098n]);
    expect(l.header.get("x-answer")).toBe("stat");
    expect(entries(l.header)).toEqual(entries(s.header));
    expect(l.trailer.get("x-served-by")).toBe("agent-1");
    expect(entries(l.trailer)).toEqual(entries(s.trailer));
    expect(l.header.has("trailer-x-served-by")).toBe(false);
  });

  it("throws an implementation's ConnectError as connect-node does: code, message, metadata, details", async () => {
    const errors = [];
    for (const [, t] of both(server.baseUrl)) {
      errors.push(await failure(agent(t).statRegion(ask(1), { headers: { "x-mode": "fail" } })));
    }
    const [l, s] = errors as [ConnectError, ConnectError];
    expect(l.code).toBe(Code.FailedPrecondition);
    expect(l.code).toBe(s.code);
    expect(l.rawMessage).toBe("region is held by a lease");
    expect(l.rawMessage).toBe(s.rawMessage);
    expect(l.metadata.get("x-holder")).toBe("lease-7");
    expect(entries(l.metadata)).toEqual(entries(s.metadata));
    expect(l.details.length).toBe(2);
    expect(l.details.length).toBe(s.details.length);
    expect(l.findDetails(StringValueSchema).map((d) => d.value)).toEqual(["held by lease 7"]);
    expect(l.findDetails(StringValueSchema)).toEqual(s.findDetails(StringValueSchema));
    expect(l.findDetails(DurationSchema).map((d) => d.seconds)).toEqual([30n]);
    expect(l.findDetails(DurationSchema)).toEqual(s.findDetails(DurationSchema));
  });

  it("sends the request connect-node sends: path, Connect headers, the caller's headers, connect-timeout-ms", async () => {
    const headers: [string, string][] = [
      ["x-tenant", "acme"],
      ["x-multi", "a"],
      ["x-multi", "b"],
    ];
    for (const timeoutMs of [undefined, 0, 5_000]) {
      seen.length = 0;
      for (const [, t] of both(server.baseUrl)) {
        await agent(t).statRegion(ask(3), { headers, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
      }
      const [l, s] = seen as [Seen, Seen];
      expect(l.url).toBe(s.url);
      expect(new URL(l.url).pathname).toBe(`/${TierAgentService.typeName}/StatRegion`);
      expect(l.header.get("x-tenant")).toBe("acme");
      expect(l.header.get("x-multi")).toBe(s.header.get("x-multi"));
      for (const name of ["content-type", "connect-protocol-version", "host"]) {
        expect(l.header.get(name), name).toBe(s.header.get(name));
      }
      expect(l.header.get("content-type")).toBe("application/proto");
      expect(l.header.get("connect-timeout-ms")).toBe(s.header.get("connect-timeout-ms"));
      if (timeoutMs === 5_000) {
        expect(l.header.get("connect-timeout-ms")).toBe("5000");
        expect(l.timeoutMs).toBeGreaterThan(4_000);
        expect(l.timeoutMs).toBeLessThanOrEqual(5_000);
      } else {
        expect(l.header.has("connect-timeout-ms")).toBe(false);
        expect(l.timeoutMs).toBeUndefined();
      }
      // connect-node also sends user-agent, accept-encoding and connection: keep-alive, and its
      // body chunked where this one gives its content-length.
      const known = ["user-agent", "accept-encoding", "connection", "content-length", "transfer-encoding"];
      expect(entries(l.header, known)).toEqual(entries(s.header, known));
    }
  });

  it("gives bytes fields as plain Uint8Arrays of the message alone, as connect-node does", async () => {
    const got = [];
    for (const [, t] of both(server.baseUrl)) got.push((await agent(t).statRegion(ask(4))).payloadId!.value);
    const [l, s] = got as [Uint8Array, Uint8Array];
    expect(l).toEqual(s);
    expect(l).toEqual(payloadId(4));
    expect(Buffer.isBuffer(l)).toBe(false);
    // not a view into the socket's read chunk: at most the message's own bytes stay reachable
    expect(l.buffer.byteLength).toBeLessThanOrEqual(regionBytes(4).length);
  });

  it("writes its own Connect headers over a caller's, as connect-node does", async () => {
    const headers = {
      "content-type": "application/json",
      "connect-protocol-version": "7",
      "x-tenant": "acme",
    };
    seen.length = 0;
    for (const [, t] of both(server.baseUrl)) {
      expect((await agent(t).statRegion(ask(5), { headers })).sizeBytes).toBe(4101n);
    }
    const [l, s] = seen as [Seen, Seen];
    expect(l.header.get("content-type")).toBe("application/proto");
    expect(l.header.get("content-type")).toBe(s.header.get("content-type"));
    expect(l.header.get("connect-protocol-version")).toBe("1");
    expect(l.header.get("connect-protocol-version")).toBe(s.header.get("connect-protocol-version"));
    expect(l.header.get("x-tenant")).toBe("acme");
  });

  it("sends its own headers option on every call, a caller's header of the same name instead", async () => {
    const t = lean(server.baseUrl, {
      headers: { authorization: "Bearer agent-token", "x-tenant": "fixed", "content-type": "text/plain" },
    });
    seen.length = 0;
    await agent(t).statRegion(ask(1));
    await agent(t).statRegion(ask(2), { headers: { "x-tenant": "caller", "x-other": "1" } });
    const [first, second] = seen as [Seen, Seen];
    expect(first.header.get("authorization")).toBe("Bearer agent-token");
    expect(first.header.get("x-tenant")).toBe("fixed");
    expect(first.header.get("content-type")).toBe("application/proto");
    expect(second.header.get("authorization")).toBe("Bearer agent-token");
    expect(second.header.get("x-tenant")).toBe("caller");
    expect(second.header.get("x-other")).toBe("1");
  });

  it("rejects DEADLINE_EXCEEDED past timeoutMs, as connect-node does, and serves the next call", async () => {
    const errors = [];
    for (const [, t] of both(server.baseUrl)) {
      // The stalled call is never answered: only the deadline can end it, and not before it is due.
      const start = performance.now();
      errors.push(
        await failure(agent(t).statRegion(ask(1), { timeoutMs: 50, headers: { "x-mode": "stall" } })),
      );
      expect(performance.now() - start).toBeGreaterThanOrEqual(40);
    }
    const [l, s] = errors as [ConnectError, ConnectError];
    expect(l.code).toBe(Code.DeadlineExceeded);
    expect(l.code).toBe(s.code);
    expect(l.rawMessage).toBe(s.rawMessage);
    expect(l.rawMessage).toBe("the operation timed out");

    const t = lean(server.baseUrl);
    await agent(t).statRegion(ask(4)); // leaves a connection idle, for the stalled call to reuse
    await failure(agent(t).statRegion(ask(1), { timeoutMs: 50, headers: { "x-mode": "stall" } }));
    expect((await agent(t).statRegion(ask(5))).sizeBytes).toBe(4101n);
  });

  it("rejects CANCELED for a signal aborted before or during the call, as connect-node does", async () => {
    const reasons = [undefined, new Error("the caller went away")];
    for (const reason of reasons) {
      const errors = [];
      for (const [, t] of both(server.baseUrl)) {
        const before = new AbortController();
        before.abort(reason);
        errors.push(await failure(agent(t).statRegion(ask(1), { signal: before.signal })));
        const during = new AbortController();
        setTimeout(() => during.abort(reason), 30);
        // The stalled call is never answered: only the abort can end it (else the test times out).
        errors.push(
          await failure(
            agent(t).statRegion(ask(1), { signal: during.signal, headers: { "x-mode": "stall" } }),
          ),
        );
      }
      const [lBefore, lDuring, sBefore, sDuring] = errors as ConnectError[] as [
        ConnectError,
        ConnectError,
        ConnectError,
        ConnectError,
      ];
      for (const [l, s] of [
        [lBefore, sBefore],
        [lDuring, sDuring],
      ] as const) {
        expect(l.code).toBe(Code.Canceled);
        expect(l.code).toBe(s.code);
        expect(l.rawMessage).toBe(s.rawMessage);
      }
    }

    const t = lean(server.baseUrl);
    await agent(t).statRegion(ask(4));
    const during = new AbortController();
    setTimeout(() => during.abort(), 30);
    await failure(agent(t).statRegion(ask(1), { signal: during.signal, headers: { "x-mode": "stall" } }));
    expect((await agent(t).statRegion(ask(6))).sizeBytes).toBe(4102n);
  });

  it("takes a base URL with a path prefix as connect-node does", async () => {
    const adapter = connectNodeAdapter({
      routes: (r) => r.service(TierAgentService, { statRegion: (req) => regionFor(req) }),
      requestPathPrefix: "/agents/a1",
    });
    const prefixed = await serve(http.createServer(adapter));
    for (const [, t] of both(`${prefixed.baseUrl}/agents/a1/`)) {
      expect((await agent(t).statRegion(ask(7))).sizeBytes).toBe(4103n);
    }
  });
});

// --- connection faults and plain HTTP errors ---------------------------------------------------

describe("HTTP/1.1 unary transport faults, as connect-node reports them", { timeout: 5_000 }, () => {
  it("rejects UNAVAILABLE when nothing listens", async () => {
    const probe = createNetServer();
    probe.listen(0, "127.0.0.1");
    await once(probe, "listening");
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const errors = [];
    for (const [, t] of both(`http://127.0.0.1:${port}`))
      errors.push(await failure(agent(t).statRegion(ask(1))));
    const [l, s] = errors as [ConnectError, ConnectError];
    expect(l.code).toBe(Code.Unavailable);
    expect(l.code).toBe(s.code);
  });

  it("maps an HTTP error status that is not a Connect error by its code, as connect-node does", async () => {
    const server = await serve(
      http.createServer((req, res) => {
        const status = Number(req.headers["x-status"]);
        if (req.headers["x-json"]) {
          res.writeHead(status, { "content-type": "application/json" }).end('{"error":"not connect"}');
        } else {
          res.writeHead(status, { "content-type": "text/plain" }).end("down for maintenance");
        }
      }),
    );
    for (const [status, json] of [
      [503, false],
      [404, false],
      [429, false],
      [500, false],
      [503, true],
      [401, true],
    ] as const) {
      const headers = { "x-status": String(status), ...(json ? { "x-json": "1" } : {}) };
      const errors = [];
      for (const [, t] of both(server.baseUrl))
        errors.push(await failure(agent(t).statRegion(ask(1), { headers })));
      const [l, s] = errors as [ConnectError, ConnectError];
      expect(l.code, `${status}`).toBe(s.code);
      expect(l.rawMessage, `${status}`).toBe(s.rawMessage);
      if (status === 503) expect(l.code).toBe(Code.Unavailable);
      if (status === 404) expect(l.code).toBe(Code.Unimplemented);
    }
  });
});

// --- keep-alive ----------------------------------------------------------------------------------

describe("HTTP/1.1 unary transport connections", { timeout: 5_000 }, () => {
  it("leaves its pooled connection alone for a call whose signal was aborted before it began", async () => {
    const server = await serve(agentServer());
    const client = agent(lean(server.baseUrl));
    await client.statRegion(ask(1));
    const ac = new AbortController();
    ac.abort();
    expect((await failure(client.statRegion(ask(2), { signal: ac.signal }))).code).toBe(Code.Canceled);
    expect((await client.statRegion(ask(3))).sizeBytes).toBe(4099n);
    expect(server.connections()).toBe(1);
  });

  it("does not keep the process alive with its idle connections", async () => {
    // The server keeps the connection open too, for longer than the test waits.
    const http1 = agentServer();
    http1.keepAliveTimeout = 60_000;
    const server = await serve(http1);
    const dir = mkdtempSync(join(tmpdir(), "pm-h1-"));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    // Imports by absolute path only (the script lies outside the repository).
    const script = join(dir, "one-call.mts");
    writeFileSync(
      script,
      `import { TierAgentService } from ${JSON.stringify(join(import.meta.dirname, "../index.ts"))};
import { createHttp1UnaryTransport } from ${JSON.stringify(join(import.meta.dirname, "http1-unary-transport.ts"))};
const t = createHttp1UnaryTransport({ baseUrl: process.argv[2], fallback: undefined as never, idleTimeoutMs: 60_000 });
const r = await t.unary(TierAgentService.method.listRegions, undefined, undefined, undefined, {});
console.log(r.message.regions.length);
`,
    );
    // With the idle connection holding the event loop, this would run for its 60 s idle timeout.
    const { stdout } = await execFileAsync(process.execPath, ["--import", "tsx", script, server.baseUrl], {
      cwd: join(import.meta.dirname, "../../../.."),
      timeout: 20_000,
    });
    expect(stdout.trim()).toBe("2");
  }, 25_000);

  it("makes sequential calls over one keep-alive connection", async () => {
    const server = await serve(agentServer());
    const client = agent(lean(server.baseUrl));
    for (let i = 0; i < 20; i++) expect((await client.statRegion(ask(i))).sizeBytes).toBe(4096n + BigInt(i));
    expect(server.connections()).toBe(1);
  });

  it("gives each of many parallel calls its own answer, over several connections it then reuses", async () => {
    const server = await serve(agentServer());
    const client = agent(lean(server.baseUrl));
    const ids = Array.from({ length: 30 }, (_, i) => i + 1);
    const answers = await Promise.all(
      ids.map((i) => client.statRegion(ask(i), { headers: { "x-mode": "jitter" } })),
    );
    expect(answers.map((r) => r.payloadId?.value[0])).toEqual(ids);
    expect(answers.map((r) => r.sizeBytes)).toEqual(ids.map((i) => 4096n + BigInt(i)));
    const opened = server.connections();
    expect(opened).toBeGreaterThan(1);
    expect(opened).toBeLessThanOrEqual(30);
    for (let i = 0; i < 5; i++) await client.statRegion(ask(i));
    expect(server.connections()).toBe(opened);
  });

  it("opens a new connection once the server has closed the idle one", async () => {
    // Closes a connection idle for 30 ms, as a Node server does past its keepAliveTimeout (which
    // Node 20 stretches by a second, too slow for this test).
    const s = agentServer();
    const timers = new WeakMap<Socket, NodeJS.Timeout>();
    s.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
      clearTimeout(timers.get(req.socket));
      res.on("finish", () =>
        timers.set(
          req.socket,
          setTimeout(() => req.socket.destroy(), 30),
        ),
      );
    });
    const server = await serve(s);
    const client = agent(lean(server.baseUrl, { idleTimeoutMs: 5_000 }));
    expect((await client.statRegion(ask(1))).sizeBytes).toBe(4097n);
    await until(() => server.closed() === 1);
    expect((await client.statRegion(ask(2))).sizeBytes).toBe(4098n);
    expect(server.connections()).toBe(2);
  });

  it("closes a connection idle longer than idleTimeoutMs and opens a new one for the next call", async () => {
    const server = await serve(agentServer());
    const client = agent(lean(server.baseUrl, { idleTimeoutMs: 20 }));
    expect((await client.statRegion(ask(1))).sizeBytes).toBe(4097n);
    await until(() => server.closed() === 1); // the client closed it: the server keeps connections 5 s
    expect((await client.statRegion(ask(2))).sizeBytes).toBe(4098n);
    expect(server.connections()).toBe(2);
  });

  it("sends a call again, once, on a new connection when the reused one closes before any answer byte", async () => {
    // Answers the first request of each connection; closes a connection on its second.
    const server = await serve(
      rawServer((conn) => {
        if (conn.requests === 1) conn.socket.write(lengthAnswer(conn.index + 1));
        else conn.socket.destroy();
      }),
    );
    const client = agent(lean(server.baseUrl));
    expect((await client.statRegion(ask(1))).payloadId?.value[0]).toBe(1);
    expect((await client.statRegion(ask(2))).payloadId?.value[0]).toBe(2); // answered on connection 2
    expect(server.connections()).toBe(2);
  });

  it("fails ABORTED when the retry's new connection closes too, without trying again", async () => {
    // Answers the first request it gets; closes every connection on any later one.
    let answered = false;
    const server = await serve(
      rawServer((conn) => {
        if (answered) conn.socket.destroy();
        else conn.socket.write(lengthAnswer(1));
        answered = true;
      }),
    );
    const client = agent(lean(server.baseUrl));
    await client.statRegion(ask(1));
    expect((await failure(client.statRegion(ask(2)))).code).toBe(Code.Aborted);
    expect(server.connections()).toBe(2);
  });

  it("fails ABORTED when a new connection closes before any answer byte, as connect-node does, and tries once", async () => {
    const server = await serve(rawServer((conn) => conn.socket.destroy()));
    const e = await failure(agent(lean(server.baseUrl)).statRegion(ask(1)));
    expect(e.code).toBe(Code.Aborted);
    expect(server.connections()).toBe(1);
    expect((await failure(agent(standard(server.baseUrl)).statRegion(ask(1)))).code).toBe(e.code);
  });

  it("does not reuse a connection that sent bytes past the answer or while idle, or asked to close", async () => {
    const extras = [
      // bytes past the answer, in the same write
      (conn: { socket: Socket }) =>
        conn.socket.write(Buffer.concat([lengthAnswer(1), Buffer.from("HTTP/1.1 2")])),
      // bytes while idle
      (conn: { socket: Socket }) => {
        conn.socket.write(lengthAnswer(1));
        setTimeout(() => conn.socket.write("HTTP/1.1 200 OK\r\n"), 10);
      },
      (conn: { socket: Socket }) =>
        conn.socket.write(
          Buffer.concat([
            Buffer.from(protoHead(`connection: close\r\ncontent-length: ${regionBytes(1).length}\r\n`)),
            regionBytes(1),
          ]),
        ),
      (conn: { socket: Socket }) =>
        conn.socket.write(
          Buffer.concat([
            Buffer.from(
              `HTTP/1.0 200 OK\r\ncontent-type: application/proto\r\ncontent-length: ${regionBytes(1).length}\r\n\r\n`,
            ),
            regionBytes(1),
          ]),
        ),
    ];
    for (const answer of extras) {
      const server = await serve(rawServer(answer));
      const client = agent(lean(server.baseUrl));
      expect((await client.statRegion(ask(1))).sizeBytes).toBe(4097n);
      // The client lets the connection go (the server sees it close), then calls on a new one.
      await until(() => server.closed() === 1);
      expect((await client.statRegion(ask(1))).sizeBytes).toBe(4097n);
      expect(server.connections()).toBe(2);
    }
  });
});

// --- framing of hand-made answers --------------------------------------------------------------

/** Writes `bytes` in pieces of `size`, a few milliseconds apart. */
async function dribble(socket: Socket, bytes: Buffer, size: number): Promise<void> {
  for (let i = 0; i < bytes.length; i += size) {
    if (socket.destroyed) return;
    socket.write(bytes.subarray(i, i + size));
    await sleep(2);
  }
}

/** A chunked encoding of `body` in chunks of `size`, the first with an extension, then `end`. */
const chunked = (body: Buffer, size: number, end = "0\r\n\r\n") => {
  const parts: Buffer[] = [];
  for (let i = 0; i < body.length; i += size) {
    const chunk = body.subarray(i, i + size);
    parts.push(
      Buffer.from(`${chunk.length.toString(16)}${i === 0 ? ";ext=1" : ""}\r\n`),
      chunk,
      Buffer.from("\r\n"),
    );
  }
  return Buffer.concat([...parts, Buffer.from(end)]);
};

describe("HTTP/1.1 unary transport reading answers", { timeout: 5_000 }, () => {
  it("reads a chunked body, in several chunks across several writes, as connect-node does", async () => {
    for (const end of ["0\r\n\r\n", "0\r\nx-check: 1\r\n\r\n"]) {
      const server = await serve(
        rawServer((conn) => {
          const body = chunked(regionBytes(conn.requests), 5, end);
          void dribble(
            conn.socket,
            Buffer.concat([Buffer.from(protoHead("transfer-encoding: chunked\r\n")), body]),
            7,
          );
        }),
      );
      const client = agent(lean(server.baseUrl));
      const first = await client.statRegion(ask(1));
      expect(equals(RegionSchema, first, regionFor(create(StatRegionRequestSchema, ask(1))))).toBe(true);
      // the whole answer was read, no more: the connection is reused
      expect((await client.statRegion(ask(2))).payloadId?.value[0]).toBe(2);
      expect(server.connections()).toBe(1);
      const viaConnectNode = await agent(standard(server.baseUrl)).statRegion(ask(1));
      expect(equals(RegionSchema, first, viaConnectNode)).toBe(true);
    }
  });

  it("reads a body that ends when the server closes the connection, as connect-node does", async () => {
    const server = await serve(
      rawServer((conn) => {
        const bytes = Buffer.concat([Buffer.from(protoHead("connection: close\r\n")), regionBytes(1)]);
        void dribble(conn.socket, bytes, 9).then(() => conn.socket.end());
      }),
    );
    const client = agent(lean(server.baseUrl));
    const answer = await client.statRegion(ask(1));
    expect(equals(RegionSchema, answer, regionFor(create(StatRegionRequestSchema, ask(1))))).toBe(true);
    expect(equals(RegionSchema, answer, await agent(standard(server.baseUrl)).statRegion(ask(1)))).toBe(true);
    expect((await client.statRegion(ask(1))).sizeBytes).toBe(4097n);
  });

  it("rejects RESOURCE_EXHAUSTED for a body over readMaxBytes, in every framing, as connect-node does", async () => {
    const body = regionBytes(1);
    expect(body.length).toBeGreaterThan(16);
    const answers = [
      Buffer.concat([Buffer.from(protoHead(`content-length: ${body.length}\r\n`)), body]),
      Buffer.concat([Buffer.from(protoHead("transfer-encoding: chunked\r\n")), chunked(body, 6)]),
      Buffer.concat([Buffer.from(protoHead("connection: close\r\n")), body]),
    ];
    for (const [i, bytes] of answers.entries()) {
      const server = await serve(
        rawServer((conn) => {
          conn.socket.write(bytes);
          if (i === 2) conn.socket.end();
        }),
      );
      const errors = [];
      for (const [, t] of both(server.baseUrl, 16)) errors.push(await failure(agent(t).statRegion(ask(1))));
      const [l, s] = errors as [ConnectError, ConnectError];
      expect(l.code, `answer ${i}`).toBe(Code.ResourceExhausted);
      expect(l.code, `answer ${i}`).toBe(s.code);
      // and a body at the limit is fine
      expect(
        (await agent(lean(server.baseUrl, { readMaxBytes: body.length })).statRegion(ask(1))).sizeBytes,
      ).toBe(4097n);
    }
  });

  it("rejects INTERNAL protocol error for an answer that is not HTTP, as connect-node rejects INTERNAL", async () => {
    const server = await serve(
      rawServer((conn) => conn.socket.write("SSH-2.0-OpenSSH_9.6\r\nhello: there\r\n\r\n")),
    );
    const l = await failure(agent(lean(server.baseUrl)).statRegion(ask(1)));
    expect(l.code).toBe(Code.Internal);
    expect(l.rawMessage).toMatch(/^protocol error: /);
    const s = await failure(agent(standard(server.baseUrl)).statRegion(ask(1)));
    expect(l.code).toBe(s.code);
  });

  it("rejects INTERNAL at once for a first line that is not HTTP, though the connection stays open", async () => {
    // No blank line ever comes and the server keeps the connection: no waiting for one.
    const server = await serve(rawServer((conn) => conn.socket.write("garbage")));
    for (const [, t] of both(server.baseUrl)) {
      const e = await failure(agent(t).statRegion(ask(1)));
      expect(e.code).toBe(Code.Internal);
    }
    const l = await failure(agent(lean(server.baseUrl)).statRegion(ask(1)));
    expect(l.rawMessage).toMatch(/^protocol error: /);
  });

  it("skips 1xx answers (103 Early Hints) and reads the real one, as connect-node does", async () => {
    const server = await serve(
      rawServer((conn) => {
        conn.socket.write("HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n");
        setTimeout(() => conn.socket.write(lengthAnswer(6)), 5);
      }),
    );
    const got = [];
    for (const [, t] of both(server.baseUrl))
      got.push(await agent(t).statRegion(ask(6), { timeoutMs: 2_000 }));
    const [l, s] = got as [Region, Region];
    expect(l.sizeBytes).toBe(4102n);
    expect(equals(RegionSchema, l, s)).toBe(true);
  });

  it("rejects ABORTED when the connection closes mid-body, as connect-node does", async () => {
    const server = await serve(
      rawServer((conn) => {
        conn.socket.write(Buffer.concat([Buffer.from(protoHead("content-length: 100\r\n")), regionBytes(1)]));
        setTimeout(() => conn.socket.destroy(), 10);
      }),
    );
    const errors = [];
    for (const [, t] of both(server.baseUrl)) errors.push(await failure(agent(t).statRegion(ask(1))));
    const [l, s] = errors as [ConnectError, ConnectError];
    expect(l.code).toBe(Code.Aborted);
    expect(l.code).toBe(s.code);
    expect(server.connections()).toBe(2); // one each: nothing sent again once answer bytes came
  });
});

// --- what the transport leaves to others -------------------------------------------------------

describe("HTTP/1.1 unary transport boundaries", { timeout: 5_000 }, () => {
  it("hands streaming calls to the fallback with their arguments as given", () => {
    const calls: unknown[][] = [];
    const sentinel = Promise.resolve("from the fallback");
    const fallback: Transport = {
      unary: () => {
        throw new Error("not this");
      },
      stream: (...args: unknown[]) => {
        calls.push(args);
        return sentinel as never;
      },
    };
    const t = createHttp1UnaryTransport({ baseUrl: "http://127.0.0.1:9", fallback });
    const args = [
      TierAgentService.method.listRegions,
      new AbortController().signal,
      1234,
      { "x-tenant": "acme" },
      (async function* () {})(),
      createContextValues(),
    ] as const;
    expect(t.stream(...(args as unknown as Parameters<Transport["stream"]>))).toBe(sentinel);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toHaveLength(args.length);
    for (const [i, a] of args.entries()) expect(calls[0]![i]).toBe(a);
  });

  it("refuses an https: base URL when created, naming it", () => {
    const baseUrl = "https://agent-7.internal:8443";
    let thrown: unknown;
    try {
      createHttp1UnaryTransport({ baseUrl, fallback: noFallback });
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(ConnectError);
    expect((thrown as ConnectError).message).toContain(baseUrl);
  });
});
