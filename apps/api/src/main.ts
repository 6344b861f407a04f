import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { Agent } from "node:http";
import { resolve } from "node:path";
import { createConnectTransport } from "@connectrpc/connect-node";
import { openCatalog, PostgresStreamNotifier, parseCatalogUrl } from "@pm/db";
import {
  DEFAULT_DOMAIN_CONFIG,
  DomainError,
  isAgentLive,
  type JobQueue,
  RecentAllocations,
  type UseCaseDeps,
} from "@pm/domain";
import { createRegionAllocation } from "@pm/objects";
import { BullJobQueue } from "@pm/queue";
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

/** Uncommitted allocations a replica remembers (about 1 KiB each), for CommitPayload. */
const RECENT_ALLOCATIONS = 10_000;

/**
 * Composition root of the API on Node: builds the catalog, the agent-backed region allocator (with
 * the object store beside it when configured), metrics and logger from the validated config, and
 * serves the app. Returns a handle whose close() drains both listeners.
 */
export async function startApi(config: ApiConfig, overrides: ApiOverrides = {}): Promise<ApiHandle> {
  const log: Logger = overrides.log ?? pino({ level: config.logLevel, name: "payload-manager-api" });
  mkdirSync(resolve(config.dataDir), { recursive: true, mode: 0o700 });
  const metrics = new PromMetrics();
  const catalog = await openCatalog(config.catalogUrl, {
    postgres: { onGroupCommit: (size, statement) => metrics.observeGroupCommit(size, statement) },
  });
  const clock = { now: () => Date.now() };
  // Agents hold GPU/RAM/DISK bytes; with an object store, OBJECT placements live there (the API
  // only presigns and HEADs; agents move the bytes).
  const regions = createRegionAllocation({
    catalog,
    clock,
    agentTtlMs: config.agentTtlMs,
    agentToken: config.auth.agentToken,
    objectStore: config.objectStore,
    onCreateBatch: (size) => metrics.observeAgentBatch(size),
  });
  const { allocator, presigner } = regions;
  // On its own, the API enqueues follow-up work on the worker's BullMQ queue; enqueue fails fast
  // (UNAVAILABLE) while Redis is down, and the worker's sweep repairs what was not enqueued.
  const ownQueue = overrides.jobs
    ? undefined
    : new BullJobQueue({
        redisUrl: config.queue.redisUrl,
        queueName: config.queue.name,
        prefix: config.queue.prefix,
        log,
      });
  const jobs: JobQueue = overrides.jobs ?? ownQueue!;

  const deps: UseCaseDeps = {
    catalog,
    allocator,
    jobs,
    clock,
    ids: { newId: () => randomUUID() },
    presigner,
    config: {
      ...DEFAULT_DOMAIN_CONFIG,
      objectUrlTtlMs: config.objectStore?.urlTtlMs ?? DEFAULT_DOMAIN_CONFIG.objectUrlTtlMs,
      defaultLeaseMs: config.leases.defaultMs,
      maxLeaseMs: config.leases.maxMs,
      allocationTimeoutMs: config.allocationTimeoutMs,
      agentTtlMs: config.agentTtlMs,
    },
    // Commits of payloads this replica allocated skip reading the row back (ADR 0007).
    recentAllocations: new RecentAllocations(RECENT_ALLOCATIONS, config.allocationTimeoutMs),
  };
  // Replicas on one Postgres catalog wake each other's Subscribe feeds over LISTEN/NOTIFY; with
  // SQLite or memory there is one process per catalog, so in-process delivery reaches everyone.
  const catalogAt = parseCatalogUrl(config.catalogUrl);
  const streamNotifier =
    catalogAt.kind === "postgres"
      ? await PostgresStreamNotifier.open({ url: catalogAt.url, local: new InProcessStreamNotifier(), log })
      : new InProcessStreamNotifier();
  const streamFeeds = new AbortController();
  const rpcDeps = {
    useCases: deps,
    log,
    metrics,
    auth: config.auth,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    newRequestId: randomUUID,
    streamNotifier,
    streamShutdown: streamFeeds.signal,
  };
  const app = createApp({
    ...rpcDeps,
    maxBodyBytes: config.maxBodyBytes,
    readiness: {
      catalog: () => catalog.ping(),
      ...(ownQueue && { queue: () => ownQueue.ping() }),
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
    {
      http: servers.httpUrl,
      grpc: servers.grpcUrl,
      catalog: config.catalogUrl,
      objectBucket: config.objectStore?.bucket,
    },
    "payload-manager API listening",
  );
  return {
    ...servers,
    deps,
    async close() {
      streamFeeds.abort(); // live Subscribe feeds end, so the listeners can drain
      await servers.close();
      if (streamNotifier instanceof PostgresStreamNotifier) await streamNotifier.close();
      await ownQueue?.close();
      await catalog.close();
      regions.close();
    },
  };
}
