import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { DEFAULT_DOMAIN_CONFIG, type UseCaseDeps } from "@pm/domain";
import {
  FakeAllocator,
  FakeClock,
  MemoryCatalog,
  RecordingJobQueue,
  SequentialIds,
} from "@pm/domain/testing";
import {
  PayloadAdminService,
  PayloadCatalogService,
  PayloadDataService,
  PayloadStreamService,
} from "@pm/rpc";
import { createApp } from "../app.ts";
import { consoleLogger } from "../logger.ts";
import { PromMetrics } from "../node/prom-metrics.ts";

/** Use cases on an in-memory catalog and the fake region allocator (DISK and RAM tiers). */
export function makeTestUseCases(diskCapacity = 1024 ** 3, now = Date.now()) {
  const catalog = new MemoryCatalog();
  const clock = new FakeClock(now);
  const jobs = new RecordingJobQueue();
  const allocator = new FakeAllocator({ DISK: diskCapacity, RAM: 1024 ** 3 });
  const deps: UseCaseDeps = {
    catalog,
    allocator,
    jobs,
    clock,
    ids: new SequentialIds(),
    presigner: undefined,
    config: DEFAULT_DOMAIN_CONFIG,
  };
  return { deps, catalog, allocator, jobs, clock };
}

/**
 * An API app wired to an in-memory catalog and the fake region allocator (DISK and RAM tiers), for
 * in-process tests of the transports. Real regions are exercised by the agent and e2e tests.
 */
export function makeTestApp(opts: { tokens?: Record<string, string>; diskCapacity?: number } = {}) {
  const { deps, catalog, allocator, jobs, clock } = makeTestUseCases(opts.diskCapacity, Date.now());
  const metrics = new PromMetrics(false);
  let n = 0;
  const app = createApp({
    useCases: deps,
    log: consoleLogger("silent"),
    metrics,
    auth: { tokens: opts.tokens ?? {}, agentToken: "" },
    heartbeatIntervalMs: 1000,
    newRequestId: () => `req-${++n}`,
    maxBodyBytes: 64 * 1024,
    readiness: { catalog: () => catalog.ping() },
  });
  const fetchApp = (input: RequestInfo | URL, init?: RequestInit) =>
    Promise.resolve(app.fetch(new Request(input, init)));
  const connect = createConnectTransport({ baseUrl: "http://api.test", fetch: fetchApp });
  const connectBinary = createConnectTransport({
    baseUrl: "http://api.test",
    fetch: fetchApp,
    useBinaryFormat: true,
  });
  const grpcWeb = createGrpcWebTransport({ baseUrl: "http://api.test", fetch: fetchApp });
  return {
    app,
    allocator,
    deps,
    clock,
    jobs,
    metrics,
    fetch: fetchApp,
    clients: (transport = connect) => ({
      catalog: createClient(PayloadCatalogService, transport),
      data: createClient(PayloadDataService, transport),
      admin: createClient(PayloadAdminService, transport),
      stream: createClient(PayloadStreamService, transport),
    }),
    transports: { connect, connectBinary, grpcWeb },
    cleanup: () => undefined,
  };
}
