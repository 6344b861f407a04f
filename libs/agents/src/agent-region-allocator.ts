import { type Client, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import {
  type AgentRecord,
  type AllocateRegionRequest,
  type Catalog,
  type Clock,
  type CopyRegionRequest,
  chooseAgents,
  DomainError,
  type PayloadId,
  type Placement,
  type RegionAllocator,
  type StorageTier,
  uuidToBytes,
} from "@pm/domain";
import { type Region, TierAgentService } from "@pm/rpc";
import { CreateRegionBatcher } from "./create-region-batcher.ts";
import { placementFromRegion, TIER_TO_PB } from "./region-mapping.ts";

export type AgentClient = Client<typeof TierAgentService>;

export interface AgentRegionAllocatorOptions {
  readonly catalog: Catalog;
  readonly clock: Clock;
  /** An agent silent for longer than this is not placed on. */
  readonly agentTtlMs: number;
  /** Builds a transport to an agent's advertised endpoint (Connect over fetch or HTTP/2). */
  readonly transportFor: (endpoint: string) => Transport;
  /** Per-call deadline towards agents for create/free/stat. */
  readonly timeoutMs?: number;
  /** Deadline for copies, which move whole payloads. */
  readonly copyTimeoutMs?: number;
  /**
   * Allocations place on the agent list read at most this long ago (default 0: read it every
   * time). Agents report their usage by heartbeat every few seconds anyway; an allocation that
   * fails on the cached list (no agent, tier missing or full, unreachable) is placed again on a
   * fresh read, so a new agent or a freed tier is seen at once.
   */
  readonly agentsCacheMs?: number;
  /** Called with the number of regions in every CreateRegions call sent (for metrics). */
  readonly onCreateBatch?: (size: number) => void;
}

/** Placement failures that a fresher agent list may avoid. */
const STALE_LIST_CODES = new Set(["TIER_UNAVAILABLE", "NO_AGENT", "TIER_FULL"]);

/**
 * Places regions on tier agents: picks a live agent with room on the tier (locality hint first,
 * then most free space) from what agents last reported, asks it to create the region, and falls
 * back to the next candidate when an agent is unreachable or turns out to be full. Frees and copies
 * go to the agent that owns the region.
 */
export class AgentRegionAllocator implements RegionAllocator {
  private readonly clients = new Map<string, AgentClient>();
  private readonly creators = new Map<string, CreateRegionBatcher>();
  private cached: { readonly at: number; readonly agents: AgentRecord[] } | undefined;

  constructor(private readonly opts: AgentRegionAllocatorOptions) {}

  clientFor(endpoint: string): AgentClient {
    let c = this.clients.get(endpoint);
    if (!c) {
      c = createClient(TierAgentService, this.opts.transportFor(endpoint));
      this.clients.set(endpoint, c);
    }
    return c;
  }

  /** CreateRegion towards one agent, coalesced with the concurrent ones (CreateRegions). */
  private creatorFor(endpoint: string): CreateRegionBatcher {
    let c = this.creators.get(endpoint);
    if (!c) {
      c = new CreateRegionBatcher(this.clientFor(endpoint), {
        timeoutMs: this.opts.timeoutMs ?? 10_000,
        onBatch: this.opts.onCreateBatch,
      });
      this.creators.set(endpoint, c);
    }
    return c;
  }

  private async agents(): Promise<AgentRecord[]> {
    const agents = await this.opts.catalog.autocommit((tx) => tx.listAgents());
    this.cached = { at: performance.now(), agents };
    return agents;
  }

  async allocate(req: AllocateRegionRequest): Promise<Placement> {
    const cache = this.cached;
    // Agents asked already (and full or unreachable): a fresh list does not ask them again.
    const asked = new Set<string>();
    let stale: DomainError | undefined;
    if (cache && performance.now() - cache.at < (this.opts.agentsCacheMs ?? 0)) {
      try {
        return await this.allocateAmong(cache.agents, req, asked, undefined);
      } catch (e) {
        if (!(e instanceof DomainError) || !STALE_LIST_CODES.has(e.code)) throw e;
        stale = e;
      }
    }
    return this.allocateAmong(await this.agents(), req, asked, stale);
  }

  /**
   * Places on `all`, skipping (and adding to) `asked`; when every candidate was asked already,
   * the earlier failure `previous` stands.
   */
  private async allocateAmong(
    all: readonly AgentRecord[],
    req: AllocateRegionRequest,
    asked: Set<string>,
    previous: DomainError | undefined,
  ): Promise<Placement> {
    if (!all.some((a) => a.tiers.some((t) => t.tier === req.tier))) {
      throw new DomainError(
        "TIER_UNAVAILABLE",
        `no tier agent serves the ${req.tier} tier; enable it on an agent (agent config tiers.${req.tier.toLowerCase()}) or allocate on another tier`,
      );
    }
    const decision = chooseAgents(all, {
      tier: req.tier,
      sizeBytes: req.sizeBytes,
      preferredHost: req.preferredHost,
      now: this.opts.clock.now(),
      agentTtlMs: this.opts.agentTtlMs,
    });
    if (!decision.ok && decision.reason === "NO_AGENT") throw new DomainError("NO_AGENT", decision.message);
    // Usage comes from heartbeats and lags behind frees; when no agent *reports* room, the live
    // agents with the tier are still asked (most free first): the agent enforces capacity itself.
    const candidates = (decision.ok ? decision.agents : this.liveWithTier(all, req.tier)).filter(
      (a) => !asked.has(a.agentId),
    );
    if (previous && candidates.length === 0) throw previous;
    const failures: string[] = [];
    let full = 0;
    for (const agent of candidates) {
      asked.add(agent.agentId);
      try {
        const region = await this.creatorFor(agent.endpoint).create({
          payloadId: { value: uuidToBytes(req.payloadId) },
          tier: TIER_TO_PB[req.tier],
          sizeBytes: BigInt(req.sizeBytes),
        });
        return placementFromRegion(region, agent.agentId, agent.host);
      } catch (e) {
        const err = ConnectError.from(e);
        if (err.code === Code.ResourceExhausted) full++;
        else if (err.code !== Code.Unavailable && err.code !== Code.DeadlineExceeded)
          throw agentError(err, agent);
        failures.push(`${agent.agentId}: ${err.rawMessage}`);
      }
    }
    if (full === candidates.length) {
      throw new DomainError(
        "TIER_FULL",
        `every agent with the ${req.tier} tier is full (${failures.join("; ")}); spill or delete payloads`,
      );
    }
    throw new DomainError(
      "NO_AGENT",
      `no tier agent for ${req.tier} could be reached (${failures.join("; ")}); retry shortly`,
    );
  }

  private async ownerOf(placement: Placement): Promise<AgentRecord> {
    let agent: AgentRecord | undefined;
    try {
      agent = await this.opts.catalog.autocommit((tx) => tx.getAgent(placement.agentId));
    } catch (e) {
      // The catalog is unreachable (the very fault that fails an allocation's insert): the agent
      // list this process read last still says where the agent listens, so the region of that
      // failed allocation can be freed now rather than at the agent's next reconciliation.
      const known = this.cached?.agents.find((a) => a.agentId === placement.agentId);
      if (!known || !(e instanceof DomainError && e.code === "UNAVAILABLE")) throw e;
      agent = known;
    }
    if (!agent) {
      throw new DomainError(
        "UNAVAILABLE",
        `tier agent ${placement.agentId} holding the region is not registered; it must come back to free or copy it`,
      );
    }
    return agent;
  }

  private liveWithTier(all: readonly AgentRecord[], tier: StorageTier): AgentRecord[] {
    const now = this.opts.clock.now();
    const free = (a: AgentRecord) => {
      const t = a.tiers.find((u) => u.tier === tier);
      return t ? t.capacityBytes - t.usedBytes : -1;
    };
    return all
      .filter((a) => now - a.lastHeartbeatAt <= this.opts.agentTtlMs && free(a) >= 0)
      .sort((x, y) => free(y) - free(x));
  }

  async free(payloadId: PayloadId, placement: Placement): Promise<void> {
    if (placement.location.kind === "object" && placement.agentId === "") return;
    const agent = await this.ownerOf(placement);
    try {
      await this.clientFor(agent.endpoint).freeRegion(
        { payloadId: { value: uuidToBytes(payloadId) }, tier: TIER_TO_PB[placement.tier] },
        { timeoutMs: this.opts.timeoutMs ?? 10_000 },
      );
    } catch (e) {
      throw agentError(ConnectError.from(e), agent);
    }
  }

  /**
   * Copies a region with the agent that owns it. A source in the object store is downloaded by a
   * live agent with the target tier (copyFromObject); a copy to the object store needs the target
   * object chosen by the object tier (copyToObject, through TieredRegionAllocator).
   */
  async copy(req: CopyRegionRequest): Promise<Placement> {
    if (req.from.location.kind === "object") return this.copyFromObject(req, req.from.host || undefined);
    if (req.toTier === "OBJECT") {
      throw new DomainError(
        "TIER_UNAVAILABLE",
        `the object tier is not configured on this control plane, so payload ${req.payloadId} cannot be spilled to OBJECT; set the objectStore section (PM_S3_*) or choose another tier`,
      );
    }
    const agent = await this.ownerOf(req.from);
    if (!agent.tiers.some((t) => t.tier === req.toTier)) {
      throw new DomainError(
        "TIER_UNAVAILABLE",
        `agent ${agent.agentId} holding payload ${req.payloadId} has no ${req.toTier} tier; bytes only move host-locally or to the object store`,
      );
    }
    const region = await this.copyOn(agent, req, req.from.tier, undefined);
    return placementFromRegion(region, agent.agentId, agent.host);
  }

  /**
   * Has the agent holding `req.from` upload the bytes to `target` in the object store. The object
   * placement belongs to no agent; its host records where it came from (a locality hint for
   * promoting it again).
   */
  async copyToObject(req: CopyRegionRequest, target: { bucket: string; key: string }): Promise<Placement> {
    const agent = await this.ownerOf(req.from);
    const region = await this.copyOn(agent, { ...req, toTier: "OBJECT" }, req.from.tier, target);
    const placement = placementFromRegion(region, "", agent.host);
    if (placement.location.kind !== "object")
      throw new Error(`agent ${agent.agentId} answered a copy to OBJECT with a ${placement.tier} region`);
    return placement;
  }

  /**
   * Downloads the object `req.from` into a new region on `req.toTier`, on a live agent with room on
   * that tier (one on `preferredHost` first), trying the next candidate when one is unreachable,
   * full or cannot reach the object store.
   */
  async copyFromObject(req: CopyRegionRequest, preferredHost: string | undefined): Promise<Placement> {
    const l = req.from.location;
    if (l.kind !== "object") throw new Error(`payload ${req.payloadId} is not in the object store`);
    if (req.toTier === "OBJECT") {
      throw new DomainError("INVALID_ARGUMENT", `payload ${req.payloadId} is already in the object store`);
    }
    const all = await this.agents();
    const decision = chooseAgents(all, {
      tier: req.toTier,
      sizeBytes: req.sizeBytes,
      preferredHost,
      now: this.opts.clock.now(),
      agentTtlMs: this.opts.agentTtlMs,
    });
    if (!decision.ok && decision.reason === "NO_AGENT") {
      throw new DomainError(
        "NO_AGENT",
        `cannot bring payload ${req.payloadId} back from the object store: ${decision.message}`,
      );
    }
    // As for allocations: reported usage lags frees, so live agents are asked even when none reports room.
    const candidates = decision.ok ? decision.agents : this.liveWithTier(all, req.toTier);
    const failures: string[] = [];
    let last: DomainError | undefined;
    for (const agent of candidates) {
      try {
        const region = await this.copyOn(agent, req, "OBJECT", { bucket: l.bucket, key: l.key });
        return placementFromRegion(region, agent.agentId, agent.host);
      } catch (e) {
        if (!(e instanceof DomainError)) throw e;
        // Full, unreachable, or without object-store access: another agent may do it.
        if (e.code !== "TIER_FULL" && e.code !== "UNAVAILABLE" && e.code !== "TIER_UNAVAILABLE") throw e;
        last = e;
        failures.push(e.message);
      }
    }
    throw new DomainError(
      last?.code ?? "NO_AGENT",
      `no tier agent could bring payload ${req.payloadId} back from the object store to ${req.toTier} (${failures.join("; ")}); retry shortly`,
    );
  }

  private async copyOn(
    agent: AgentRecord,
    req: CopyRegionRequest,
    fromTier: StorageTier,
    object: { bucket: string; key: string } | undefined,
  ): Promise<Region> {
    try {
      const res = await this.clientFor(agent.endpoint).copyRegion(
        {
          payloadId: { value: uuidToBytes(req.payloadId) },
          fromTier: TIER_TO_PB[fromTier],
          toTier: TIER_TO_PB[req.toTier],
          fsync: req.fsync,
          bucket: object?.bucket ?? "",
          key: object?.key ?? "",
        },
        { timeoutMs: this.opts.copyTimeoutMs ?? 30 * 60_000 },
      );
      if (!res.region) throw new Error(`agent ${agent.agentId} answered CopyRegion without a region`);
      return res.region;
    } catch (e) {
      if (e instanceof DomainError) throw e;
      throw agentError(ConnectError.from(e), agent);
    }
  }
}

/** Agent answers become domain errors: capacity, missing tiers and outages keep their meaning. */
function agentError(err: ConnectError, agent: AgentRecord): DomainError {
  const where = `tier agent ${agent.agentId} (${agent.endpoint})`;
  switch (err.code) {
    case Code.ResourceExhausted:
      return new DomainError("TIER_FULL", `${where} is full: ${err.rawMessage}`);
    case Code.AlreadyExists:
      return new DomainError("UNAVAILABLE", `${where}: ${err.rawMessage}`);
    case Code.FailedPrecondition:
      return new DomainError("TIER_UNAVAILABLE", `${where}: ${err.rawMessage}`);
    case Code.NotFound:
      return new DomainError("NOT_FOUND", `${where}: ${err.rawMessage}`);
    case Code.InvalidArgument:
      return new DomainError("INVALID_ARGUMENT", `${where}: ${err.rawMessage}`);
    case Code.Unauthenticated:
    case Code.PermissionDenied:
      // A deployment fault, not the caller's: the agent token differs between the processes.
      return new DomainError("UNAVAILABLE", `${where} refused the control plane: ${err.rawMessage}`);
    default:
      return new DomainError(
        "UNAVAILABLE",
        `${where} failed: ${err.rawMessage}; retry, and check the agent's logs if it persists`,
      );
  }
}
