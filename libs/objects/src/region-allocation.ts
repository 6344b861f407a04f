import type { Transport } from "@connectrpc/connect";
import { AgentRegionAllocator } from "@pm/agents";
import type { Catalog, Clock, ObjectPresigner, RegionAllocator } from "@pm/domain";
import { nodeAgentTransports } from "./agent-transports.ts";
import { ObjectRegionAllocator } from "./object-region-allocator.ts";
import type { ObjectStoreSettings } from "./object-store-config.ts";
import { createS3Client } from "./s3-client.ts";
import { S3ObjectPresigner } from "./s3-object-presigner.ts";
import { TieredRegionAllocator } from "./tiered-region-allocator.ts";

export interface RegionAllocation {
  readonly allocator: RegionAllocator;
  readonly presigner: ObjectPresigner | undefined;
  /** Releases the S3 client's sockets. */
  close(): void;
}

/**
 * The region allocator a control-plane process (API or worker) uses: tier agents for GPU, RAM and
 * DISK, and — when an object store is configured — the object store for OBJECT placements, with
 * copies to and from it run by agents.
 */
export function createRegionAllocation(opts: {
  readonly catalog: Catalog;
  readonly clock: Clock;
  readonly agentTtlMs: number;
  /** How to reach an agent's endpoint; default: nodeAgentTransports with `agentToken`. */
  readonly transportFor?: (endpoint: string) => Transport;
  /** The agents' token (PM_AGENT_TOKEN), sent on every call to an agent; "" or absent: none. */
  readonly agentToken?: string | undefined;
  readonly objectStore: ObjectStoreSettings | undefined;
  /** See AgentRegionAllocatorOptions.agentsCacheMs; default 1000 ms. */
  readonly agentsCacheMs?: number;
  /** See AgentRegionAllocatorOptions.onCreateBatch. */
  readonly onCreateBatch?: (size: number) => void;
}): RegionAllocation {
  const agents = new AgentRegionAllocator({
    ...opts,
    transportFor: opts.transportFor ?? nodeAgentTransports({ token: opts.agentToken }),
    agentsCacheMs: opts.agentsCacheMs ?? 1_000,
  });
  const os = opts.objectStore;
  if (!os) return { allocator: agents, presigner: undefined, close: () => undefined };
  const s3 = createS3Client({ ...os, endpoint: os.endpoint ?? "" });
  return {
    allocator: new TieredRegionAllocator({
      agents,
      objects: new ObjectRegionAllocator(s3, { bucket: os.bucket, keyPrefix: os.keyPrefix }),
    }),
    presigner: new S3ObjectPresigner(s3, { now: opts.clock.now }),
    close: () => s3.destroy(),
  };
}
