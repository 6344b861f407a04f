import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { TIER_TO_PB, tierOfPb } from "@pm/agents";
import { uuidFromBytes } from "@pm/domain";
import { AgentRegistryService } from "@pm/rpc";
import type { TierAgent } from "./tier-agent.ts";

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface RegistrationOptions {
  readonly agentId: string;
  readonly host: string;
  readonly endpoint: string;
  readonly token: string;
  readonly transport: Transport;
  readonly log: Logger;
  /** Watermarks per tier, reported with usage. */
  readonly watermarks: Readonly<Record<string, { high: number; low: number }>>;
}

/** Region keys the control plane knows for this agent: `<payloadId>@<TIER>`. */
export type KnownRegions = ReadonlySet<string>;

/**
 * Registers the agent with the control plane, heartbeats capacity and usage per tier, and
 * re-registers when the control plane forgot it (restart with an in-memory catalog) or was away.
 */
export class Registration {
  private readonly client: Client<typeof AgentRegistryService>;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private intervalMs = 3_000;
  private registered = false;

  constructor(
    private readonly agent: TierAgent,
    private readonly opts: RegistrationOptions,
  ) {
    this.client = createClient(AgentRegistryService, opts.transport);
  }

  private headers(): HeadersInit {
    return this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {};
  }

  private tiers() {
    return this.agent.tiers().map((b) => ({
      tier: TIER_TO_PB[b.tier],
      capacityBytes: BigInt(b.capacityBytes),
      usedBytes: BigInt(b.usedBytes()),
      highWatermark: this.opts.watermarks[b.tier]?.high ?? 0.9,
      lowWatermark: this.opts.watermarks[b.tier]?.low ?? 0.75,
    }));
  }

  /** Registers once and returns the regions the catalog places on this agent. */
  async register(): Promise<KnownRegions> {
    const res = await this.client.registerAgent(
      {
        agentId: this.opts.agentId,
        host: this.opts.host,
        endpoint: this.opts.endpoint,
        tiers: this.tiers(),
        gpus: [],
      },
      { headers: this.headers(), timeoutMs: 10_000 },
    );
    this.intervalMs = res.heartbeatIntervalMs || this.intervalMs;
    this.registered = true;
    return new Set(
      res.knownRegions.map(
        (r) => `${uuidFromBytes(r.payloadId?.value ?? new Uint8Array(16))}@${tierOfPb(r.tier)}`,
      ),
    );
  }

  /** Starts the heartbeat loop (registering first if needed). Failures are logged and retried. */
  start(): void {
    const beat = async () => {
      if (this.stopped) return;
      try {
        if (!this.registered) {
          await this.register();
          this.opts.log.info({ agentId: this.opts.agentId }, "registered with the control plane");
        } else {
          const res = await this.client.heartbeat(
            { agentId: this.opts.agentId, tiers: this.tiers() },
            { headers: this.headers(), timeoutMs: 5_000 },
          );
          if (res.reregister) this.registered = false;
        }
      } catch (e) {
        this.opts.log.warn({ err: (e as Error).message }, "heartbeat to the control plane failed; retrying");
      }
      if (!this.stopped) this.timer = setTimeout(beat, this.registered ? this.intervalMs : 1_000);
    };
    this.timer = setTimeout(beat, 0);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
