import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { openCatalog, parseCatalogUrl } from "@pm/db";
import {
  type Catalog,
  type Clock,
  DEFAULT_DOMAIN_CONFIG,
  type RegionAllocator,
  type UseCaseDeps,
} from "@pm/domain";
import { createRegionAllocation } from "@pm/objects";
import { BullJobQueue, BullWorkerHost, type JobLog, redactRedisUrl } from "@pm/queue";
import pino from "pino";
import type { WorkerConfig } from "./config.ts";
import { startHealthServer } from "./health-server.ts";
import { JOB_HANDLERS } from "./jobs/index.ts";
import { WorkerMetrics } from "./metrics.ts";

/** Replacements for what startWorker would build, for tests and embedding. */
export interface WorkerOverrides {
  readonly log?: JobLog;
  readonly clock?: Clock;
  /** A catalog the caller owns (and closes); default: opened from config.catalogUrl. */
  readonly catalog?: Catalog;
  /** Default: the tier agents the catalog lists, over Connect. */
  readonly allocator?: RegionAllocator;
}

export interface WorkerHandle {
  readonly deps: UseCaseDeps;
  readonly queue: BullJobQueue;
  readonly host: BullWorkerHost;
  readonly metrics: WorkerMetrics;
  /** Base URL of /healthz, /readyz and /metrics. */
  readonly httpUrl: string;
  /** Stops taking jobs, lets the ones in flight finish, then closes Redis, HTTP and the catalog. */
  close(): Promise<void>;
}

/**
 * Composition root of the worker: opens the catalog, connects the BullMQ queue (which is also the
 * `jobs` port handlers enqueue follow-ups on), builds the agent-backed allocator, serves health and
 * metrics, and starts consuming with the periodic sweep, pressure and stream-retention jobs registered.
 */
export async function startWorker(
  config: WorkerConfig,
  overrides: WorkerOverrides = {},
): Promise<WorkerHandle> {
  const log: JobLog = overrides.log ?? pino({ level: config.logLevel, name: "payload-manager-worker" });
  const catalog = overrides.catalog ?? (await openOwnCatalog(config.catalogUrl));
  const ownsCatalog = overrides.catalog === undefined;
  const clock: Clock = overrides.clock ?? { now: () => Date.now() };
  const queue = new BullJobQueue({
    redisUrl: config.redisUrl,
    queueName: config.queue.name,
    prefix: config.queue.prefix,
    attempts: config.queue.attempts,
    backoffMs: config.queue.backoffMs,
    commandTimeoutMs: config.queue.commandTimeoutMs,
    log,
  });
  const regions = createRegionAllocation({
    catalog,
    clock,
    agentTtlMs: config.agentTtlMs,
    agentToken: config.agentToken,
    objectStore: config.objectStore,
  });
  const allocator = overrides.allocator ?? regions.allocator;
  const deps: UseCaseDeps = {
    catalog,
    allocator,
    jobs: queue,
    clock,
    ids: { newId: () => randomUUID() },
    presigner: regions.presigner,
    config: {
      ...DEFAULT_DOMAIN_CONFIG,
      allocationTimeoutMs: config.allocationTimeoutMs,
      agentTtlMs: config.agentTtlMs,
      moveTimeoutMs: config.moveTimeoutMs,
    },
  };
  const metrics = new WorkerMetrics();
  metrics.watchQueue(() => queue.depth());
  const release = async () => {
    await queue.close();
    regions.close();
    if (ownsCatalog) await catalog.close();
  };

  let health: Awaited<ReturnType<typeof startHealthServer>>;
  try {
    // Health first: while Redis is still unreachable the process is up and /readyz says why.
    health = await startHealthServer({
      host: config.metrics.host,
      port: config.metrics.port,
      checks: { catalog: () => catalog.ping(), queue: () => queue.ping() },
      metrics: () => metrics.render(),
    });
  } catch (e) {
    await release();
    throw e;
  }
  let host: BullWorkerHost;
  try {
    host = await BullWorkerHost.start({
      queue,
      deps,
      handlers: JOB_HANDLERS,
      concurrency: config.concurrency,
      periodic: {
        sweepEveryMs: config.sweepIntervalMs > 0 ? config.sweepIntervalMs : false,
        pressureEveryMs: config.pressureIntervalMs > 0 ? config.pressureIntervalMs : false,
        streamRetentionEveryMs:
          config.streamRetentionIntervalMs > 0 ? config.streamRetentionIntervalMs : false,
      },
      observer: metrics,
      log,
    });
  } catch (e) {
    await health.close();
    await release();
    throw e;
  }
  log.info(
    {
      http: health.url,
      redis: redactRedisUrl(config.redisUrl),
      queue: `${config.queue.prefix}:${config.queue.name}`,
      concurrency: config.concurrency,
      sweepIntervalMs: config.sweepIntervalMs,
      pressureIntervalMs: config.pressureIntervalMs,
      streamRetentionIntervalMs: config.streamRetentionIntervalMs,
    },
    "payload-manager worker started",
  );
  let closing: Promise<void> | undefined;
  return {
    deps,
    queue,
    host,
    metrics,
    httpUrl: health.url,
    close() {
      closing ??= (async () => {
        await host.close();
        await health.close();
        await release();
        log.info({}, "payload-manager worker stopped");
      })();
      return closing;
    },
  };
}

async function openOwnCatalog(url: string): Promise<Catalog> {
  const at = parseCatalogUrl(url);
  if (at.kind === "sqlite") mkdirSync(dirname(resolve(at.path)), { recursive: true, mode: 0o700 });
  return openCatalog(url);
}
