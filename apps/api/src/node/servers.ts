import { once } from "node:events";
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { getRequestListener } from "@hono/node-server";
import type { Hono } from "hono";
import { interceptors, type RpcDeps, registerServices } from "../rpc/router.ts";
import { unaryFastPath } from "./unary-fast-path.ts";

export interface ListenOptions {
  readonly host: string;
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly maxBodyBytes: number;
}

export interface RunningServers {
  readonly httpUrl: string;
  readonly grpcUrl: string;
  close(): Promise<void>;
}

/** Native gRPC (HTTP/2 with trailers): `application/grpc…` but not `application/grpc-web…`. */
function isNativeGrpc(contentType = ""): boolean {
  return contentType.startsWith("application/grpc") && !contentType.startsWith("application/grpc-web");
}

/** Connect (unary and streaming, JSON or binary) and gRPC-Web (binary or JSON) request types. */
const RPC_CONTENT_TYPE =
  /^application\/(?:(?:connect\+)?(?:json(?:; ?charset=utf-?8)?|proto)|grpc-web(?:\+(?:proto|json(?:; ?charset=utf-?8)?))?)$/i;

/**
 * Serves the app on two ports: HTTP/1.1 (Connect, gRPC-Web, REST, health, metrics) and cleartext
 * HTTP/2 where `application/grpc` goes to the Node gRPC adapter (a fetch Response cannot carry
 * trailers) and everything else as on HTTP/1.1.
 *
 * Connect and gRPC-Web calls (POST under `/payload.manager.`) skip the Hono app and its
 * Node→fetch→Node conversions: they go straight to a Node Connect adapter built from the same
 * services, interceptors, size limit and JSON options as `createApp`'s router (and, like it, no
 * compression), so answers, error shapes and metrics are the same. Paths that name no registered
 * method, and everything else (REST, health, metrics), go to the Hono app. Before both, binary
 * unary Connect calls take the fast path (unary-fast-path.ts), which answers them alike.
 */
export async function listen(app: Hono, deps: RpcDeps, opts: ListenOptions): Promise<RunningServers> {
  const honoListener = getRequestListener(app.fetch);
  const common = {
    routes: (router: ConnectRouter) => registerServices(router, deps),
    interceptors: interceptors(deps),
    readMaxBytes: opts.maxBodyBytes,
    jsonOptions: { ignoreUnknownFields: true, alwaysEmitImplicit: true },
  };
  const grpc = connectNodeAdapter({ ...common, connect: false, grpcWeb: false, grpc: true });
  const rpc = connectNodeAdapter({
    ...common,
    // createApp's router accepts no compressed messages; the Node adapter would default to gzip + br.
    acceptCompression: [],
    connect: true,
    grpcWeb: true,
    grpc: false,
    // Same function, typed for the adapter (its response type is a narrower union than Hono's).
    fallback: (req, res) => void honoListener(req as http.IncomingMessage, res as http.ServerResponse),
  });
  // Only content types the Connect adapter serves; anything else (answered 415) takes the Hono path
  // so the refusal looks as before.
  const isRpc = (req: http.IncomingMessage | http2.Http2ServerRequest) =>
    req.method === "POST" &&
    (req.url ?? "").startsWith("/payload.manager.") &&
    RPC_CONTENT_TYPE.test(req.headers["content-type"] ?? "");
  const fast = unaryFastPath(deps, opts.maxBodyBytes);
  const h1 = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    if (fast(req, res)) return;
    if (isRpc(req)) rpc(req, res);
    else honoListener(req, res);
  });
  const h2 = http2.createServer({}, (req, res) => {
    if (isNativeGrpc(req.headers["content-type"])) grpc(req, res);
    else if (fast(req, res)) return;
    else if (isRpc(req)) rpc(req, res);
    else honoListener(req, res);
  });
  const sessions = new Set<http2.Http2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  h1.listen(opts.httpPort, opts.host);
  h2.listen(opts.grpcPort, opts.host);
  await Promise.all([once(h1, "listening"), once(h2, "listening")]);
  const url = (s: { address(): AddressInfo | string | null }) => {
    const a = s.address() as AddressInfo;
    return `http://${a.address.includes(":") ? `[${a.address}]` : a.address}:${a.port}`;
  };
  return {
    httpUrl: url(h1),
    grpcUrl: url(h2),
    async close() {
      // Stop accepting, then let in-flight calls finish: HTTP/1.1 connections are closed as soon as
      // they go idle (re-checked until the server has closed), HTTP/2 sessions are told to finish
      // their open streams and accept no new ones.
      const h1Closed = new Promise<void>((r) => h1.close(() => r()));
      const h2Closed = new Promise<void>((r) => h2.close(() => r()));
      for (const session of sessions) session.close();
      h1.closeIdleConnections();
      const idle = setInterval(() => h1.closeIdleConnections(), 50);
      try {
        await Promise.all([h1Closed, h2Closed]);
      } finally {
        clearInterval(idle);
      }
    },
  };
}
