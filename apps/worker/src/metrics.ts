import type { JobFinishEvent, JobObserver, JobStartEvent, QueueDepth } from "@pm/queue";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

const SWEEP_COUNTS = ["expired", "reaped", "finalized", "leasesSwept", "regionsFreed"] as const;

/**
 * Prometheus metrics of the worker: jobs by name and outcome, job duration and time queued, queue
 * depth by state (read from the queue at scrape time), sweep and pressure counts.
 */
export class WorkerMetrics implements JobObserver {
  readonly registry = new Registry();
  private readonly jobs = new Counter({
    name: "pm_worker_jobs_total",
    help: "Job runs by job name and outcome (completed, deferred, retrying, failed)",
    labelNames: ["job", "outcome"] as const,
    registers: [this.registry],
  });
  private readonly duration = new Histogram({
    name: "pm_worker_job_duration_seconds",
    help: "Job run time in seconds, by job name and outcome",
    labelNames: ["job", "outcome"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  private readonly queued = new Histogram({
    name: "pm_worker_job_queued_seconds",
    help: "Time from when a job became due to when its first attempt started, by job name",
    labelNames: ["job"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  private readonly sweep = new Counter({
    name: "pm_worker_sweep_items_total",
    help: "Items handled by the periodic sweep: expired, reaped, finalized, leasesSwept, regionsFreed",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });
  private readonly evictions = new Counter({
    name: "pm_worker_evictions_queued_total",
    help: "Eviction moves queued by pressure tiering",
    registers: [this.registry],
  });
  private depthSource: (() => Promise<QueueDepth>) | undefined;

  constructor(defaultMetrics = true) {
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: "pm_worker_" });
    const self = this;
    new Gauge({
      name: "pm_worker_queue_jobs",
      help: "Jobs in the queue by state (waiting, active, delayed, failed), read at scrape time",
      labelNames: ["state"] as const,
      registers: [this.registry],
      async collect() {
        if (!self.depthSource) return;
        // A scrape during a Redis outage still answers; the gauge keeps its last values.
        const depth = await self.depthSource().catch(() => undefined);
        if (!depth) return;
        for (const [state, n] of Object.entries(depth)) this.set({ state }, n);
      },
    });
    for (const kind of SWEEP_COUNTS) this.sweep.inc({ kind }, 0);
  }

  /** Where the queue-depth gauge reads from. */
  watchQueue(depth: () => Promise<QueueDepth>): void {
    this.depthSource = depth;
  }

  jobStarted(e: JobStartEvent): void {
    if (e.attempt === 1) this.queued.observe({ job: e.name }, e.queuedMs / 1000);
  }

  jobFinished(e: JobFinishEvent): void {
    this.jobs.inc({ job: e.name, outcome: e.outcome });
    this.duration.observe({ job: e.name, outcome: e.outcome }, e.durationMs / 1000);
    if (e.outcome !== "completed" || !e.counts) return;
    if (e.name === "sweep") {
      for (const kind of SWEEP_COUNTS) {
        const n = e.counts[kind];
        if (n) this.sweep.inc({ kind }, n);
      }
    } else if (e.name === "pressure") {
      const n = e.counts.evictionsQueued;
      if (n) this.evictions.inc(n);
    }
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
