import { Code, createConnectRouter } from "@connectrpc/connect";
import { createFetchHandler } from "@connectrpc/connect/protocol";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { compileRoutes, handleRest, restError } from "./rest/gateway.ts";
import { interceptors, type RpcDeps, registerServices, SERVICES } from "./rpc/router.ts";

export type ReadinessCheck = () => Promise<void>;

export interface AppDeps extends RpcDeps {
  /** Largest request body accepted on any transport. */
  readonly maxBodyBytes: number;
  /** Named dependencies /readyz checks (database, queue, agents…). Each throws when not ready. */
  readonly readiness: Readonly<Record<string, ReadinessCheck>>;
}

/**
 * The API as a fetch handler: Connect (JSON and binary) and gRPC-Web under
 * `/payload.manager.*`, REST under `/v1/`, plus `/healthz`, `/readyz` and `/metrics`. Runtime-neutral:
 * the same app runs on Node and in workerd; native gRPC (HTTP/2 trailers) is served on Node by
 * `node/grpc-server.ts` from the same services.
 */
export function createApp(deps: AppDeps): Hono {
  const router = createConnectRouter({
    interceptors: interceptors(deps),
    readMaxBytes: deps.maxBodyBytes,
    jsonOptions: { ignoreUnknownFields: true, alwaysEmitImplicit: true },
  });
  registerServices(router, deps);
  const handlers = new Map(router.handlers.map((h) => [h.requestPath, createFetchHandler(h)]));
  const routes = compileRoutes(SERVICES);
  const call = (rpcPath: string, req: Request) => {
    const h = handlers.get(rpcPath);
    if (!h) throw new Error(`no handler for ${rpcPath}`);
    return h(req);
  };

  const app = new Hono();
  // RPC paths are limited by the Connect router (readMaxBytes), which answers in each protocol's own
  // error shape; REST and everything else by this middleware.
  app.use(
    "/v1/*",
    bodyLimit({
      maxSize: deps.maxBodyBytes,
      onError: () =>
        restError(
          413,
          Code.ResourceExhausted,
          `request body exceeds ${deps.maxBodyBytes} bytes; payload bytes never travel through the API — write them to the descriptor's location`,
        ),
    }),
  );
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    const checks: Record<string, string> = {};
    let ok = true;
    await Promise.all(
      Object.entries(deps.readiness).map(async ([name, check]) => {
        try {
          await check();
          checks[name] = "ok";
        } catch (e) {
          ok = false;
          checks[name] = (e as Error).message;
        }
      }),
    );
    return c.json({ status: ok ? "ready" : "not ready", checks }, ok ? 200 : 503);
  });
  app.get("/metrics", async (c) => {
    const m = await deps.metrics.render();
    return c.body(m.body, 200, { "content-type": m.contentType });
  });
  app.post("/:rpc{payload\\.manager\\.[a-z.0-9]+\\.[A-Za-z]+Service}/:method", (c) => {
    const h = handlers.get(new URL(c.req.url).pathname);
    if (!h) return restError(404, Code.Unimplemented, `unknown RPC ${new URL(c.req.url).pathname}`);
    return h(c.req.raw);
  });
  app.all("/v1/*", async (c) => {
    const res = await handleRest(routes, c.req.raw, call);
    return (
      res ??
      restError(
        404,
        Code.NotFound,
        `no REST route ${c.req.method} ${new URL(c.req.url).pathname}; see docs/api.md for the routes`,
      )
    );
  });
  app.notFound((c) =>
    restError(
      404,
      Code.NotFound,
      `no route ${c.req.method} ${new URL(c.req.url).pathname}; REST lives under /v1/, RPCs under /payload.manager.services.v1.*`,
    ),
  );
  app.onError((err) => {
    deps.log.error({ err }, "unhandled error in HTTP layer");
    return restError(500, Code.Internal, "internal error; the server logged the details");
  });
  return app;
}
