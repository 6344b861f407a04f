import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { MAX_CREATE_BATCH, regionOf, tierOfPb } from "@pm/agents";
import { idFromBytes, type PayloadId, type StorageTier, uuidToBytes } from "@pm/domain";
import { type CreateRegionRequest, type Tier, type TierAgentService, Tier as TierPb } from "@pm/rpc";
import type { TierAgent } from "./tier-agent.ts";
import { TierError } from "./tiers/tier-backend.ts";

const WIRE: Record<TierError["code"], Code> = {
  FULL: Code.ResourceExhausted,
  EXISTS: Code.AlreadyExists,
  NOT_FOUND: Code.NotFound,
  INVALID: Code.InvalidArgument,
  UNSUPPORTED: Code.FailedPrecondition,
  IO: Code.Internal,
};

function wire<T>(fn: () => Promise<T>): Promise<T> {
  return fn().catch((e: unknown) => {
    if (e instanceof TierError) throw new ConnectError(e.message, WIRE[e.code]);
    if (e instanceof ConnectError) throw e;
    if ((e as { code?: string }).code === "INVALID_ARGUMENT")
      throw new ConnectError((e as Error).message, Code.InvalidArgument);
    throw new ConnectError(`agent error: ${(e as Error).message}`, Code.Internal);
  });
}

const idOf = (v: { value: Uint8Array } | undefined): PayloadId =>
  idFromBytes(v?.value, "payload_id") as PayloadId;

function tierOf(t: Tier): StorageTier {
  if (t === TierPb.UNSPECIFIED || t === TierPb.VOID)
    throw new TierError("INVALID", "tier must be GPU, RAM, DISK or OBJECT");
  try {
    return tierOfPb(t);
  } catch {
    throw new TierError("INVALID", `unknown tier ${t}`);
  }
}

/** The agent's own Connect service, called by the API and workers. */
export function tierAgentService(agent: TierAgent): ServiceImpl<typeof TierAgentService> {
  const createRegion = (req: CreateRegionRequest) =>
    wire(async () => {
      const id = idOf(req.payloadId);
      const tier = tierOf(req.tier);
      const info = await agent.create(id, tier, Number(req.sizeBytes));
      return regionOf(req.payloadId!.value, tier, info.sizeBytes, info.location);
    });
  return {
    createRegion,
    createRegions: async (req) => {
      if (req.regions.length > MAX_CREATE_BATCH) {
        throw new ConnectError(
          `CreateRegions takes at most ${MAX_CREATE_BATCH} regions, got ${req.regions.length}; split the batch`,
          Code.InvalidArgument,
        );
      }
      // Each region is created (or refused) exactly as CreateRegion would; one refusal does
      // not affect the others.
      const settled = await Promise.allSettled(req.regions.map(createRegion));
      return {
        results: settled.map((s) =>
          s.status === "fulfilled"
            ? { result: { case: "region" as const, value: s.value } }
            : {
                result: {
                  case: "error" as const,
                  value: {
                    code: ConnectError.from(s.reason).code,
                    message: ConnectError.from(s.reason).rawMessage,
                  },
                },
              },
        ),
      };
    },
    freeRegion: (req) =>
      wire(async () => {
        await agent.free(idOf(req.payloadId), tierOf(req.tier));
        return {};
      }),
    statRegion: (req) =>
      wire(async () => {
        const tier = tierOf(req.tier);
        const info = await agent.stat(idOf(req.payloadId), tier);
        return regionOf(req.payloadId!.value, tier, info.sizeBytes, info.location);
      }),
    listRegions: () =>
      wire(async () => {
        const regions = [];
        for (const b of agent.tiers()) {
          for (const r of await b.list()) {
            regions.push(regionOf(uuidToBytes(r.payloadId), b.tier, r.sizeBytes, r.location));
          }
        }
        return { regions };
      }),
    copyRegion: (req) =>
      wire(async () => {
        const id = idOf(req.payloadId);
        const to = tierOf(req.toTier);
        const from = tierOf(req.fromTier);
        const object =
          from === "OBJECT" || to === "OBJECT" ? { bucket: req.bucket, key: req.key } : undefined;
        const out = await agent.copy(id, from, to, req.fsync, object);
        return {
          region: regionOf(req.payloadId!.value, to, out.region.sizeBytes, out.region.location),
          bytesCopied: BigInt(out.bytesCopied),
          durationUs: BigInt(out.durationUs),
          checksum: out.checksum ?? "",
        };
      }),
    checksumRegion: (req) =>
      wire(async () => ({ checksum: await agent.checksum(idOf(req.payloadId), tierOf(req.tier)) })),
  };
}
