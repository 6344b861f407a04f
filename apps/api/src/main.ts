import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { createConnectTransport } from "@connectrpc/connect-web";
import { AgentRegionAllocator } from "@pm/agents";
import { openCatalog } from "@pm/db";
import {
  DEFAULT_DOMAIN_CONFIG,
  DomainError,
  isAgentLive,
  type JobQueue,
  type ObjectPresigner,
  type RegionAllocator,
  type UseCaseDeps,
} from "@pm/domain";
import { createS3Client, ObjectRegionAllocator, S3ObjectPresigner, TieredRegionAllocator } from "@pm/objects";
import pino from "pino";
import { createApp } from "./app.ts";
import type { ApiConfig } from "./config.ts";
import type { Logger } from "./logger.ts";
import { PromMetrics } from "./node/prom-metrics.ts";
import { listen, type RunningServers } from "./node/servers.ts";
import { InProcessStreamNotifier } from "./streams/in-process-stream-notifier.ts";

export interface ApiHandle extends RunningServers {
  readonly deps: UseCaseDeps;
}

export interface ApiOverrides {
  /** Job queue to hand work to (the worker's queue); default: jobs are logged and dropped. */
  readonly jobs?: JobQueue;
  readonly log?: Logger;
}

/**
 * Composition root of the API on Node: builds the catalog, the agent-backed region allocator (with
 * the object store beside it when configured), metrics and logger from the validated config, and
 * serves the app. Returns a handle whose close() drains both listeners.
 */
export async function startApi(config: ApiConfig, overrides: ApiOverrides = {}): Promise<ApiHandle> {
  const log: Logger = overrides.log ?? pino({ level: config.logLevel, name: "payload-manager-api" });
  mkdirSync(resolve(config.dataDir), { recursive: true, mode: 0o700 });
  const catalog = await openCatalog(config.catalogUrl);
  const clock = { now: () => Date.now() };
  const agents = new AgentRegionAllocator({
    catalog,
    clock,
    agentTtlMs: config.agentTtlMs,
    transportFor: (endpoint) => createConnectTransport({ baseUrl: endpoint }),
  });
  // With an object store, OBJECT placements live there (the API presigns; agents move the bytes).
  let allocator: RegionAllocator = agents;
  let presigner: ObjectPresigner | undefined;
  const os = config.objectStore;
  const s3 = os ? createS3Client({ ...os, endpoint: os.endpoint ?? "" }) : undefined;
  if (os && s3) {
    presigner = new S3ObjectPresigner(s3, { now: clock.now });
    allocator = new TieredRegionAllocator({
      agents,
      objects: new ObjectRegionAllocator(s3, { bucket: os.bucket, keyPrefix: os.keyPrefix }),
    });
  }
  const jobs: JobQueue = overrides.jobs ?? {
    async enqueue(job) {
      log.warn({ job }, "no job queue configured; the job was dropped");
    },
  };
  const deps: UseCaseDeps = {
    catalog,
    allocator,
    jobs,
    clock,
    ids: { newId: () => randomUUID() },
    presigner,
    config: {
      ...DEFAULT_DOMAIN_CONFIG,
      objectUrlTtlMs: os?.urlTtlMs ?? DEFAULT_DOMAIN_CONFIG.objectUrlTtlMs,
      defaultLeaseMs: config.leases.defaultMs,
      maxLeaseMs: config.leases.maxMs,
      allocationTimeoutMs: config.allocationTimeoutMs,
      agentTtlMs: config.agentTtlMs,
    },
  };
  const metrics = new PromMetrics();
  const streamFeeds = new AbortController();
  const rpcDeps = {
    useCases: deps,
    log,
    metrics,
    auth: config.auth,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    newRequestId: randomUUID,
    streamNotifier: new InProcessStreamNotifier(),
    streamShutdown: streamFeeds.signal,
  };
  const app = createApp({
    ...rpcDeps,
    maxBodyBytes: config.maxBodyBytes,
    readiness: {
      catalog: () => catalog.ping(),
      agents: async () => {
        const agents = await catalog.transaction((tx) => tx.listAgents());
        if (!agents.some((a) => isAgentLive(a, clock.now(), config.agentTtlMs))) {
          throw new DomainError(
            "NO_AGENT",
            "no live tier agent has registered; start one (payload-manager agent)",
          );
        }
      },
    },
  });
  const servers = await listen(app, rpcDeps, config);
  log.info(
    { http: servers.httpUrl, grpc: servers.grpcUrl, catalog: config.catalogUrl, objectBucket: os?.bucket },
    "payload-manager API listening",
  );
  return {
    ...servers,
    deps,
    async close() {
      streamFeeds.abort(); // live Subscribe feeds end, so the listeners can drain
      await servers.close();
      await catalog.close();
      s3?.destroy();
    },
  };
}
