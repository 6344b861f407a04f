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
import { TierAgentService } from "@pm/rpc";
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
}

/**
 * Places regions on tier agents: picks a live agent with room on the tier (locality hint first,
 * then most free space) from what agents last reported, asks it to create the region, and falls
 * back to the next candidate when an agent is unreachable or turns out to be full. Frees and copies
 * go to the agent that owns the region.
 */
export class AgentRegionAllocator implements RegionAllocator {
  private readonly clients = new Map<string, AgentClient>();

  constructor(private readonly opts: AgentRegionAllocatorOptions) {}

  clientFor(endpoint: string): AgentClient {
    let c = this.clients.get(endpoint);
    if (!c) {
      c = createClient(TierAgentService, this.opts.transportFor(endpoint));
      this.clients.set(endpoint, c);
    }
    return c;
  }

  private async agents(): Promise<AgentRecord[]> {
    return this.opts.catalog.transaction((tx) => tx.listAgents());
  }

  async tiers(): Promise<readonly StorageTier[]> {
    const now = this.opts.clock.now();
    const tiers = new Set<StorageTier>();
    for (const a of await this.agents()) {
      if (now - a.lastHeartbeatAt <= this.opts.agentTtlMs) for (const t of a.tiers) tiers.add(t.tier);
    }
    return [...tiers];
  }

  async allocate(req: AllocateRegionRequest): Promise<Placement> {
    const all = await this.agents();
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
    if (!decision.ok) {
      throw new DomainError(decision.reason === "NO_AGENT" ? "NO_AGENT" : "TIER_FULL", decision.message);
    }
    const failures: string[] = [];
    let full = 0;
    for (const agent of decision.agents) {
      try {
        const region = await this.clientFor(agent.endpoint).createRegion(
          {
            payloadId: { value: uuidToBytes(req.payloadId) },
            tier: TIER_TO_PB[req.tier],
            sizeBytes: BigInt(req.sizeBytes),
          },
          { timeoutMs: this.opts.timeoutMs ?? 10_000 },
        );
        return placementFromRegion(region, agent.agentId, agent.host);
      } catch (e) {
        const err = ConnectError.from(e);
        if (err.code === Code.ResourceExhausted) full++;
        else if (err.code !== Code.Unavailable && err.code !== Code.DeadlineExceeded)
          throw agentError(err, agent);
        failures.push(`${agent.agentId}: ${err.rawMessage}`);
      }
    }
    if (full === decision.agents.length) {
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
    const agent = await this.opts.catalog.transaction((tx) => tx.getAgent(placement.agentId));
    if (!agent) {
      throw new DomainError(
        "UNAVAILABLE",
        `tier agent ${placement.agentId} holding the region is not registered; it must come back to free or copy it`,
      );
    }
    return agent;
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

  async copy(req: CopyRegionRequest): Promise<Placement> {
    const agent = await this.ownerOf(req.from);
    if (req.toTier !== "OBJECT" && !agent.tiers.some((t) => t.tier === req.toTier)) {
      throw new DomainError(
        "TIER_UNAVAILABLE",
        `agent ${agent.agentId} holding payload ${req.payloadId} has no ${req.toTier} tier; bytes only move host-locally or to the object store`,
      );
    }
    try {
      const res = await this.clientFor(agent.endpoint).copyRegion(
        {
          payloadId: { value: uuidToBytes(req.payloadId) },
          fromTier: TIER_TO_PB[req.from.tier],
          toTier: TIER_TO_PB[req.toTier],
          fsync: req.fsync,
        },
        { timeoutMs: this.opts.copyTimeoutMs ?? 30 * 60_000 },
      );
      if (!res.region) throw new Error(`agent ${agent.agentId} answered CopyRegion without a region`);
      return placementFromRegion(res.region, agent.agentId, agent.host);
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
    default:
      return new DomainError(
        "UNAVAILABLE",
        `${where} failed: ${err.rawMessage}; retry, and check the agent's logs if it persists`,
      );
  }
}
