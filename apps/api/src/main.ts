import { randomUUID } from "node:crypto";
import { join, resolve } from "node:path";
import { openCatalog } from "@pm/db";
import { DEFAULT_DOMAIN_CONFIG, type JobQueue, type UseCaseDeps } from "@pm/domain";
import pino from "pino";
import { createApp } from "./app.ts";
import type { ApiConfig } from "./config.ts";
import type { Logger } from "./logger.ts";
import { DiskRegionAllocator } from "./node/disk-region-allocator.ts";
import { PromMetrics } from "./node/prom-metrics.ts";
import { listen, type RunningServers } from "./node/servers.ts";

export interface ApiHandle extends RunningServers {
  readonly deps: UseCaseDeps;
}

export interface ApiOverrides {
  /** Job queue to hand work to (the worker's queue); default: jobs are logged and dropped. */
  readonly jobs?: JobQueue;
  readonly log?: Logger;
}

/**
 * Composition root of the API on Node: builds the catalog, allocator, metrics and logger from the
 * validated config, and serves the app. Returns a handle whose close() drains both listeners.
 */
export async function startApi(config: ApiConfig, overrides: ApiOverrides = {}): Promise<ApiHandle> {
  const log: Logger = overrides.log ?? pino({ level: config.logLevel, name: "payload-manager-api" });
  const catalog = await openCatalog(config.catalogUrl, { baseDir: resolve(config.dataDir) });
  const allocator = new DiskRegionAllocator(
    config.disk.root ?? join(config.dataDir, "disk"),
    config.disk.capacityBytes,
  );
  const jobs: JobQueue = overrides.jobs ?? {
    async enqueue(job) {
      log.warn({ job }, "no job queue configured; the job was dropped");
    },
  };
  const deps: UseCaseDeps = {
    catalog,
    allocator,
    jobs,
    clock: { now: () => Date.now() },
    ids: { newId: () => randomUUID() },
    presigner: undefined,
    config: {
      ...DEFAULT_DOMAIN_CONFIG,
      defaultLeaseMs: config.leases.defaultMs,
      maxLeaseMs: config.leases.maxMs,
      allocationTimeoutMs: config.allocationTimeoutMs,
      agentTtlMs: config.agentTtlMs,
    },
  };
  const metrics = new PromMetrics();
  const rpcDeps = {
    useCases: deps,
    log,
    metrics,
    auth: config.auth,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    newRequestId: randomUUID,
  };
  const app = createApp({
    ...rpcDeps,
    maxBodyBytes: config.maxBodyBytes,
    readiness: { catalog: () => catalog.ping() },
  });
  const servers = await listen(app, rpcDeps, config);
  log.info(
    { http: servers.httpUrl, grpc: servers.grpcUrl, catalog: config.catalogUrl },
    "payload-manager API listening",
  );
  return {
    ...servers,
    deps,
    async close() {
      await servers.close();
      await catalog.close();
    },
  };
}
