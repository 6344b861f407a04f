// Wiring for the worker's job tests: the in-process runner with the real handlers over the
// domain's fakes, driven by a fake clock. Each test reads as a scenario on `h`.
import {
  type AgentRecord,
  type AllocateRequest,
  acquireReadLease,
  allocatePayload,
  commitPayload,
  DEFAULT_DOMAIN_CONFIG,
  type DomainConfig,
  type Lease,
  type Payload,
  type PayloadId,
  type RequestContext,
  type StorageTier,
  type UseCaseDeps,
} from "@pm/domain";
import { FakeAllocator, FakeClock, MemoryCatalog, SequentialIds } from "@pm/domain/testing";
import type { InProcessJobQueue, JobFinishEvent } from "@pm/queue";
import { ManualTimers } from "@pm/queue/testing";
import { createInProcessJobs } from "../in-process.ts";

export const MiB = 1024 * 1024;

export interface HarnessOptions {
  readonly capacity?: Partial<Record<StorageTier, number>>;
  readonly config?: Partial<DomainConfig>;
  readonly sweepIntervalMs?: number | false;
  readonly pressureIntervalMs?: number | false;
  readonly streamRetentionIntervalMs?: number | false;
}

export interface WorkerHarness {
  readonly deps: UseCaseDeps;
  readonly jobs: InProcessJobQueue;
  readonly catalog: MemoryCatalog;
  readonly allocator: FakeAllocator;
  readonly clock: FakeClock;
  readonly ctx: RequestContext;
  /** Every job run that finished, in order. */
  readonly events: JobFinishEvent[];
  /** Moves the fake clock, running every timer (delays, retries, periodic jobs) that falls due. */
  advance(ms: number): Promise<void>;
  /** Lets queued jobs run without moving the clock. */
  settle(): Promise<void>;
  allocated(tier?: StorageTier, overrides?: Partial<AllocateRequest>): Promise<Payload>;
  committed(tier?: StorageTier, overrides?: Partial<AllocateRequest>): Promise<Payload>;
  leased(id: PayloadId, durationMs: number): Promise<Lease>;
  peek(id: PayloadId): Promise<Payload | undefined>;
  /** Records a heartbeat of agent-1 (the FakeAllocator's agent) reporting what it holds now. */
  heartbeat(
    tiers: Partial<Record<StorageTier, { capacity: number; high: number; low: number }>>,
    at?: number,
  ): Promise<void>;
  /** Events of one job name: [outcome, counts]. */
  outcomes(name: string): [string, unknown][];
  close(): Promise<void>;
}

export function workerHarness(opts: HarnessOptions = {}): WorkerHarness {
  const clock = new FakeClock();
  const timers = new ManualTimers(clock);
  const catalog = new MemoryCatalog();
  const allocator = new FakeAllocator(opts.capacity ?? { GPU: 64 * MiB, RAM: 64 * MiB, DISK: 256 * MiB });
  const events: JobFinishEvent[] = [];
  const running = createInProcessJobs(
    {
      catalog,
      allocator,
      clock,
      ids: new SequentialIds(),
      presigner: undefined,
      config: { ...DEFAULT_DOMAIN_CONFIG, ...opts.config },
    },
    {
      timers,
      backoffMs: 1_000,
      sweepIntervalMs: opts.sweepIntervalMs ?? 1_000,
      pressureIntervalMs: opts.pressureIntervalMs ?? 2_000,
      streamRetentionIntervalMs: opts.streamRetentionIntervalMs ?? 30_000,
      observer: { jobFinished: (e) => events.push(e) },
    },
  );
  const { deps } = running;
  const ctx: RequestContext = { namespace: "team-a" };
  const request = (tier: StorageTier, overrides: Partial<AllocateRequest>): AllocateRequest => ({
    sizeBytes: MiB,
    tier,
    ttlMs: 0,
    noEvict: false,
    evictionPolicy: undefined,
    preferredHost: undefined,
    ...overrides,
  });
  const h: WorkerHarness = {
    deps,
    jobs: running.jobs,
    catalog,
    allocator,
    clock,
    ctx,
    events,
    advance: (ms) => timers.advance(ms, () => running.idle()),
    settle: () => running.idle(),
    async allocated(tier = "RAM", overrides = {}) {
      return (await allocatePayload(deps, ctx, request(tier, overrides))).payload;
    },
    async committed(tier = "RAM", overrides = {}) {
      const p = await h.allocated(tier, overrides);
      return (await commitPayload(deps, ctx, { id: p.id, sizeBytes: 0, checksum: "" })).payload;
    },
    async leased(id, durationMs) {
      const grant = await acquireReadLease(deps, ctx, {
        id,
        minTier: undefined,
        promotionPolicy: "BEST_EFFORT",
        durationMs,
      });
      return grant.lease;
    },
    peek: (id) => catalog.transaction((tx) => tx.getPayload(id)),
    async heartbeat(tiers, at = clock.now()) {
      const agent: AgentRecord = {
        agentId: "agent-1",
        host: "host-1",
        endpoint: "http://agent-1.invalid:7070",
        tiers: Object.entries(tiers).map(([tier, t]) => ({
          tier: tier as StorageTier,
          capacityBytes: t.capacity,
          usedBytes: allocator.used(tier as StorageTier),
          highWatermark: t.high,
          lowWatermark: t.low,
        })),
        lastHeartbeatAt: at,
        registeredAt: at,
      };
      await catalog.transaction((tx) => tx.upsertAgent(agent));
    },
    outcomes: (name) => events.filter((e) => e.name === name).map((e) => [e.outcome, e.counts]),
    close: () => running.close(),
  };
  return h;
}
