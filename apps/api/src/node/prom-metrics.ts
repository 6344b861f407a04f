import { Counter, collectDefaultMetrics, Histogram, Registry } from "prom-client";
import type { Metrics } from "../metrics.ts";

/** Prometheus metrics on prom-client: request counts and latency by service, method, code, transport. */
export class PromMetrics implements Metrics {
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: "pm_api_requests_total",
    help: "RPCs handled, by service, method, result code and transport",
    labelNames: ["service", "method", "code", "transport"] as const,
    registers: [this.registry],
  });
  private readonly latency = new Histogram({
    name: "pm_api_request_duration_seconds",
    help: "RPC latency in seconds, by service, method, result code and transport",
    labelNames: ["service", "method", "code", "transport"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });

  private readonly groupCommit = new Histogram({
    name: "pm_catalog_group_commit_batch_size",
    help: "Calls coalesced into one Postgres statement by group commit, by statement (leases, payload_reads, payload_writes)",
    labelNames: ["statement"] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [this.registry],
  });
  private readonly agentBatch = new Histogram({
    name: "pm_agent_create_regions_batch_size",
    help: "Region creations coalesced into one CreateRegions call to a tier agent",
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [this.registry],
  });

  constructor(defaultMetrics = true) {
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: "pm_api_" });
  }

  observeRequest(
    labels: { service: string; method: string; code: string; transport: string },
    seconds: number,
  ): void {
    this.requests.inc(labels);
    this.latency.observe(labels, seconds);
  }

  /** One group-commit batch of `size` calls of `statement` was sent to Postgres. */
  observeGroupCommit(size: number, statement: string): void {
    this.groupCommit.observe({ statement }, size);
  }

  /** One CreateRegions call carrying `size` regions was sent to a tier agent. */
  observeAgentBatch(size: number): void {
    this.agentBatch.observe(size);
  }

  async render() {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
