import { DomainError } from "../errors.ts";
import type { PayloadId } from "../model/ids.ts";
import type { Placement } from "../model/placement.ts";
import type { StorageTier } from "../model/tier.ts";
import type { Clock, IdGenerator } from "../ports/clock.ts";
import type { DomainJob, JobQueue } from "../ports/job-queue.ts";
import type {
  AllocateRegionRequest,
  CopyRegionRequest,
  ObjectPresigner,
  RegionAllocator,
} from "../ports/region-allocator.ts";

/** A clock that only moves when told to. */
export class FakeClock implements Clock {
  constructor(private t = Date.UTC(2026, 0, 1)) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

/** Deterministic UUIDv4-shaped ids: 00000000-0000-4000-8000-000000000001, …002, … */
export class SequentialIds implements IdGenerator {
  private n = 0;
  newId(): string {
    this.n += 1;
    return `00000000-0000-4000-8000-${this.n.toString(16).padStart(12, "0")}`;
  }
}

/** Records jobs instead of running them, so tests can assert what was queued. */
export class RecordingJobQueue implements JobQueue {
  readonly jobs: { job: DomainJob; delayMs: number }[] = [];
  async enqueue(job: DomainJob, opts?: { delayMs?: number }): Promise<void> {
    this.jobs.push({ job, delayMs: opts?.delayMs ?? 0 });
  }
}

/**
 * A region allocator that keeps regions in a map, with a per-tier capacity. It refuses tiers it
 * was not given, like a deployment without that backend, and can be told to fail copies.
 */
export class FakeAllocator implements RegionAllocator {
  readonly regions = new Map<string, { placement: Placement; sizeBytes: number }>();
  failNextCopy: DomainError | undefined;

  constructor(private readonly capacity: Partial<Record<StorageTier, number>>) {}

  private key(id: string, tier: StorageTier) {
    return `${id}@${tier}`;
  }
  used(tier: StorageTier): number {
    let n = 0;
    for (const r of this.regions.values()) if (r.placement.tier === tier) n += r.sizeBytes;
    return n;
  }
  has(id: string, tier: StorageTier): boolean {
    return this.regions.has(this.key(id, tier));
  }
  async allocate(req: AllocateRegionRequest): Promise<Placement> {
    const cap = this.capacity[req.tier];
    if (cap === undefined) {
      throw new DomainError("TIER_UNAVAILABLE", `no backend serves the ${req.tier} tier`);
    }
    if (this.used(req.tier) + req.sizeBytes > cap) {
      throw new DomainError("TIER_FULL", `the ${req.tier} tier has no room for ${req.sizeBytes} bytes`);
    }
    const placement = fakePlacement(req.payloadId, req.tier, req.sizeBytes);
    this.regions.set(this.key(req.payloadId, req.tier), { placement, sizeBytes: req.sizeBytes });
    return placement;
  }
  async free(payloadId: PayloadId, placement: Placement): Promise<void> {
    this.regions.delete(this.key(payloadId, placement.tier));
  }
  async copy(req: CopyRegionRequest): Promise<Placement> {
    const fail = this.failNextCopy;
    if (fail) {
      this.failNextCopy = undefined;
      throw fail;
    }
    if (!this.has(req.payloadId, req.from.tier))
      throw new Error(`copy from a missing region ${req.payloadId}`);
    return this.allocate({
      payloadId: req.payloadId,
      tier: req.toTier,
      sizeBytes: req.sizeBytes,
      preferredHost: undefined,
    });
  }
}

function fakePlacement(id: string, tier: StorageTier, lengthBytes: number): Placement {
  const base = { tier, agentId: tier === "OBJECT" ? "" : "agent-1", host: "host-1", lengthBytes };
  switch (tier) {
    case "GPU":
      return { ...base, location: { kind: "gpu", deviceId: 0, ipcHandle: new Uint8Array(64) } };
    case "RAM":
      return { ...base, location: { kind: "ram", shmName: `/pm-${id}` } };
    case "DISK":
      return { ...base, location: { kind: "disk", path: `/data/${id}.bin`, offsetBytes: 0 } };
    case "OBJECT":
      return { ...base, location: { kind: "object", bucket: "bucket", key: `payloads/${id}` } };
  }
}

/** An object presigner over an in-memory set of "uploaded" objects. */
export class FakePresigner implements ObjectPresigner {
  readonly objects = new Map<string, number>();
  async presign(placement: Placement, method: "GET" | "PUT", expiresAtMs: number): Promise<string> {
    const l = placement.location;
    if (l.kind !== "object") throw new Error("presign of a non-object placement");
    return `https://objects.test/${l.bucket}/${l.key}?method=${method}&expires=${expiresAtMs}`;
  }
  async head(placement: Placement): Promise<number | undefined> {
    const l = placement.location;
    return l.kind === "object" ? this.objects.get(l.key) : undefined;
  }
}
