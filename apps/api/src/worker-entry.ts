// Composition root of the API on Cloudflare Workers (workerd). Imports only runtime-neutral
// modules: app.ts, logger.ts, metrics.ts and edge/*, never main.ts or index.ts (they pull in
// node:http2, pino and the SQLite/Postgres catalogs).
import { Code } from "@connectrpc/connect";
import { DEFAULT_DOMAIN_CONFIG, type JobQueue, type RegionAllocator, type UseCaseDeps } from "@pm/domain";
// The in-memory catalog is acceptable on the edge for now: state lives as long as the isolate and
// is not shared between isolates. A Postgres-backed edge configuration (pg runs in workerd over
// TCP) replaces it later.
import { MemoryCatalog } from "@pm/domain/testing";
import type { ExecutionContext, Hono } from "hono";
import { createApp } from "./app.ts";
import { type EdgeConfig, EdgeConfigError, type EdgeEnv, loadEdgeConfig } from "./edge/edge-config.ts";
import { MemoryRegionAllocator } from "./edge/memory-region-allocator.ts";
import { NoBackendRegionAllocator } from "./edge/no-backend-region-allocator.ts";
import { consoleLogger, type Logger } from "./logger.ts";
import { noopMetrics } from "./metrics.ts";
import { restError } from "./rest/gateway.ts";

function allocatorFor(config: EdgeConfig): RegionAllocator {
  return config.testDisk.enabled
    ? new MemoryRegionAllocator(config.testDisk.capacityBytes)
    : new NoBackendRegionAllocator();
}

function build(env: EdgeEnv): Hono {
  const config = loadEdgeConfig(env);
  const log: Logger = consoleLogger(config.logLevel);
  const catalog = new MemoryCatalog();
  // No job queue reaches the edge yet: moves and deferred deletions are logged and dropped, as on
  // Node without a worker.
  const jobs: JobQueue = {
    async enqueue(job) {
      log.warn({ job }, "no job queue configured on the edge; the job was dropped");
    },
  };
  const useCases: UseCaseDeps = {
    catalog,
    allocator: allocatorFor(config),
    jobs,
    clock: { now: () => Date.now() },
    ids: { newId: () => crypto.randomUUID() },
    presigner: undefined,
    config: DEFAULT_DOMAIN_CONFIG,
  };
  return createApp({
    useCases,
    log,
    metrics: noopMetrics,
    auth: config.auth,
    heartbeatIntervalMs: 3_000, // the Node default (config.ts)
    newRequestId: () => crypto.randomUUID(),
    maxBodyBytes: config.maxBodyBytes,
    readiness: { catalog: () => catalog.ping() },
  });
}

// One app per isolate, built on the first request (bindings only arrive with a request). A bad
// configuration is remembered too, so every request answers the same error until redeployed.
let app: Hono | EdgeConfigError | undefined;

export default {
  fetch(req: Request, env: EdgeEnv, ctx: ExecutionContext): Response | Promise<Response> {
    if (app === undefined) {
      try {
        app = build(env);
      } catch (e) {
        if (!(e instanceof EdgeConfigError)) throw e;
        // Logged, not answered: problems may quote binding values.
        console.error(e.message);
        app = e;
      }
    }
    if (app instanceof EdgeConfigError) {
      return restError(
        500,
        Code.Internal,
        "the API's edge configuration is invalid; the Worker's log lists the problems",
      );
    }
    return app.fetch(req, env, ctx);
  },
};
