import { once } from "node:events";
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { getRequestListener } from "@hono/node-server";
import type { Hono } from "hono";
import { interceptors, type RpcDeps, registerServices } from "../rpc/router.ts";

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

/**
 * Serves the app on two ports: HTTP/1.1 (Connect, gRPC-Web, REST, health, metrics) and cleartext
 * HTTP/2 where `application/grpc` goes to the Node gRPC adapter (a fetch Response cannot carry
 * trailers) and everything else to the same Hono app.
 */
export async function listen(app: Hono, deps: RpcDeps, opts: ListenOptions): Promise<RunningServers> {
  const honoListener = getRequestListener(app.fetch);
  const grpc = connectNodeAdapter({
    routes: (router) => registerServices(router, deps),
    interceptors: interceptors(deps),
    readMaxBytes: opts.maxBodyBytes,
    jsonOptions: { ignoreUnknownFields: true, alwaysEmitImplicit: true },
    connect: false,
    grpcWeb: false,
    grpc: true,
  });
  const h1 = http.createServer({ keepAliveTimeout: 65_000 }, honoListener);
  const h2 = http2.createServer({}, (req, res) => {
    const ct = req.headers["content-type"] ?? "";
    if (ct.startsWith("application/grpc") && !ct.startsWith("application/grpc-web")) grpc(req, res);
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
