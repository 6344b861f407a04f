import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { createConnectTransport } from "@connectrpc/connect-web";
import { AgentRegionAllocator } from "@pm/agents";
import { openCatalog } from "@pm/db";
import { DEFAULT_DOMAIN_CONFIG, DomainError, isAgentLive, type JobQueue, type UseCaseDeps } from "@pm/domain";
import pino from "pino";
import { createApp } from "./app.ts";
import type { ApiConfig } from "./config.ts";
import type { Logger } from "./logger.ts";
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
 * Composition root of the API on Node: builds the catalog, the agent-backed region allocator,
 * metrics and logger from the validated config, and serves the app. Returns a handle whose close() drains both listeners.
 */
export async function startApi(config: ApiConfig, overrides: ApiOverrides = {}): Promise<ApiHandle> {
  const log: Logger = overrides.log ?? pino({ level: config.logLevel, name: "payload-manager-api" });
  mkdirSync(resolve(config.dataDir), { recursive: true, mode: 0o700 });
  const catalog = await openCatalog(config.catalogUrl);
  const clock = { now: () => Date.now() };
  const allocator = new AgentRegionAllocator({
    catalog,
    clock,
    agentTtlMs: config.agentTtlMs,
    transportFor: (endpoint) => createConnectTransport({ baseUrl: endpoint }),
  });
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
