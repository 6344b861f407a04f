import type { ServiceImpl } from "@connectrpc/connect";
import {
  acquireReadLease,
  addLineage,
  agentHeartbeat,
  allocatePayload,
  appendMetadataEvent,
  commitPayload,
  deletePayload,
  getLineage,
  getMetadata,
  invalidArgument,
  listMetadataEvents,
  listPayloads,
  type PayloadId,
  pin,
  prefetch,
  promote,
  registerAgent,
  releaseLease,
  renewLease,
  resolveSnapshot,
  spill,
  stats,
  type TierUsage,
  type UseCaseDeps,
  unpin,
  updateMetadata,
  uuidToBytes,
} from "@pm/domain";
import {
  type AgentRegistryService,
  MetadataUpdateMode,
  type PayloadAdminService,
  type PayloadCatalogService,
  type PayloadDataService,
} from "@pm/rpc";
import { requestOf } from "./context.ts";
import {
  descriptorToPb,
  evictionPolicyFromPb,
  leaseIdFromPb,
  msToTimestamp,
  payloadIdFromPb,
  payloadIdToPb,
  promotionFromPb,
  spillPolicyFromPb,
  stateFromPb,
  stateToPb,
  storageTierFromPb,
  tierFromPb,
  tierToPb,
  timestampToMs,
  u64,
} from "./mapping.ts";

export function catalogService(deps: UseCaseDeps): ServiceImpl<typeof PayloadCatalogService> {
  return {
    async allocatePayload(req, ctx) {
      const view = await allocatePayload(deps, requestOf(ctx), {
        sizeBytes: u64(req.sizeBytes, "size_bytes"),
        tier: tierFromPb(req.preferredTier, "preferred_tier"),
        ttlMs: u64(req.ttlMs, "ttl_ms"),
        noEvict: req.noEvict,
        evictionPolicy: evictionPolicyFromPb(req.evictionPolicy),
        preferredHost: req.preferredHost,
      });
      const l = view.payload.placement.location;
      return {
        payloadDescriptor: descriptorToPb(view),
        objectUploadPath: l.kind === "object" ? `s3://${l.bucket}/${l.key}` : "",
      };
    },
    async commitPayload(req, ctx) {
      const view = await commitPayload(deps, requestOf(ctx), {
        id: payloadIdFromPb(req.id),
        sizeBytes: u64(req.sizeBytes, "size_bytes"),
        checksum: req.checksum,
      });
      return { payloadDescriptor: descriptorToPb(view) };
    },
    async importPayload(req, ctx) {
      await commitPayload(deps, requestOf(ctx), {
        id: payloadIdFromPb(req.id),
        sizeBytes: u64(req.sizeBytes, "size_bytes"),
        checksum: "",
      });
      return {};
    },
    async delete(req, ctx) {
      await deletePayload(deps, requestOf(ctx), { id: payloadIdFromPb(req.id), force: req.force });
      return {};
    },
    async promote(req, ctx) {
      const view = await promote(deps, requestOf(ctx), {
        id: payloadIdFromPb(req.id),
        targetTier: tierFromPb(req.targetTier, "target_tier"),
        policy: promotionFromPb(req.policy),
      });
      return { payloadDescriptor: descriptorToPb(view) };
    },
    async spill(req, ctx) {
      if (req.ids.length === 0)
        throw invalidArgument("ids is empty: name at least one payload to spill", { field: "ids" });
      if (req.ids.length > 1000)
        throw invalidArgument("ids has more than 1000 payloads; spill in batches", { field: "ids" });
      const results = await spill(deps, requestOf(ctx), {
        ids: req.ids.map((id, i) => payloadIdFromPb(id, `ids[${i}]`)),
        policy: spillPolicyFromPb(req.policy),
        waitForLeases: req.waitForLeases,
        fsync: req.fsync,
        targetTier: tierFromPb(req.targetTier, "target_tier"),
      });
      return {
        results: results.map((r) => ({
          id: payloadIdToPb(r.id),
          ok: r.ok,
          errorMessage: r.errorMessage,
          payloadDescriptor: r.descriptor ? descriptorToPb(r.descriptor) : undefined,
        })),
      };
    },
    async prefetch(req, ctx) {
      await prefetch(
        deps,
        requestOf(ctx),
        payloadIdFromPb(req.id),
        tierFromPb(req.targetTier, "target_tier"),
      );
      return {};
    },
    async pin(req, ctx) {
      await pin(deps, requestOf(ctx), payloadIdFromPb(req.id), u64(req.durationMs, "duration_ms"));
      return {};
    },
    async unpin(req, ctx) {
      await unpin(deps, requestOf(ctx), payloadIdFromPb(req.id));
      return {};
    },
    async addLineage(req, ctx) {
      await addLineage(
        deps,
        requestOf(ctx),
        payloadIdFromPb(req.child, "child"),
        req.parents.map((e, i) => ({
          parent: payloadIdFromPb(e.parent, `parents[${i}].parent`),
          operation: e.operation,
          role: e.role,
          parameters: e.parameters,
        })),
      );
      return {};
    },
    async getLineage(req, ctx) {
      const edges = await getLineage(deps, requestOf(ctx), {
        id: payloadIdFromPb(req.id),
        upstream: req.upstream,
        maxDepth: req.maxDepth,
      });
      return {
        edges: edges.map((e) => ({
          parent: payloadIdToPb(e.parent),
          child: payloadIdToPb(e.child),
          operation: e.operation,
          role: e.role,
          parameters: e.parameters,
        })),
      };
    },
    async updatePayloadMetadata(req, ctx) {
      const id = payloadIdFromPb(req.id);
      if (req.mode !== MetadataUpdateMode.UNSPECIFIED && !MetadataUpdateMode[req.mode]) {
        throw invalidArgument(`mode has unknown value ${req.mode}; use MERGE or REPLACE`, { field: "mode" });
      }
      const m = await updateMetadata(deps, requestOf(ctx), {
        id,
        mode: req.mode === MetadataUpdateMode.REPLACE ? "REPLACE" : "MERGE",
        data: req.metadata?.data ?? new Uint8Array(),
        schema: req.metadata?.schema ?? "",
      });
      return {
        id: payloadIdToPb(id),
        metadata: { id: payloadIdToPb(id), data: m.data, schema: m.schema },
        updatedAt: msToTimestamp(m.updatedAt),
      };
    },
    async getPayloadMetadata(req, ctx) {
      const id = payloadIdFromPb(req.id);
      const m = await getMetadata(deps, requestOf(ctx), id);
      return {
        metadata: { id: payloadIdToPb(id), data: m.data, schema: m.schema },
        updatedAt: m.updatedAt ? msToTimestamp(m.updatedAt) : undefined,
      };
    },
    async appendPayloadMetadataEvent(req, ctx) {
      const id = payloadIdFromPb(req.id);
      const ev = await appendMetadataEvent(deps, requestOf(ctx), {
        id,
        data: req.metadata?.data ?? new Uint8Array(),
        schema: req.metadata?.schema ?? "",
        source: req.source,
        version: req.version,
      });
      return { id: payloadIdToPb(id), eventTime: msToTimestamp(ev.ts) };
    },
    async listPayloadMetadataEvents(req, ctx) {
      const id = payloadIdFromPb(req.id);
      const out = await listMetadataEvents(deps, requestOf(ctx), {
        id,
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        since: timestampToMs(req.since),
        until: timestampToMs(req.until),
      });
      return {
        events: out.events.map((e) => ({
          id: payloadIdToPb(id),
          ts: msToTimestamp(e.ts),
          data: e.data,
          source: e.source,
          version: e.version,
        })),
        nextPageToken: out.nextPageToken,
      };
    },
    async listPayloads(req, ctx) {
      const out = await listPayloads(deps, requestOf(ctx), {
        tier: storageTierFromPb(req.tierFilter, "tier_filter"),
        state: stateFromPb(req.stateFilter, "state_filter"),
        pageSize: req.pageSize,
        pageToken: req.pageToken,
      });
      return {
        payloads: out.items.map(({ payload: p, liveLeases }) => ({
          id: payloadIdToPb(p.id),
          tier: tierToPb(p.placement.tier),
          state: stateToPb(p.state),
          sizeBytes: BigInt(p.sizeBytes),
          createdAtMs: BigInt(p.createdAt),
          expiresAtMs: BigInt(p.expiresAt ?? 0),
          activeLeases: liveLeases,
        })),
        nextPageToken: out.nextPageToken,
        totalCount: out.total,
      };
    },
  };
}

export function dataService(deps: UseCaseDeps): ServiceImpl<typeof PayloadDataService> {
  return {
    async resolveSnapshot(req, ctx) {
      const view = await resolveSnapshot(deps, requestOf(ctx), payloadIdFromPb(req.id));
      return { payloadDescriptor: descriptorToPb(view) };
    },
    async acquireReadLease(req, ctx) {
      const grant = await acquireReadLease(deps, requestOf(ctx), {
        id: payloadIdFromPb(req.id),
        minTier: storageTierFromPb(req.minTier, "min_tier"),
        promotionPolicy: promotionFromPb(req.promotionPolicy),
        durationMs: u64(req.minLeaseDurationMs, "min_lease_duration_ms"),
      });
      return {
        payloadDescriptor: descriptorToPb(grant.descriptor),
        leaseId: { value: uuidToBytes(grant.lease.id) },
        leaseExpiresAt: msToTimestamp(grant.lease.expiresAt),
      };
    },
    async releaseLease(req, ctx) {
      await releaseLease(deps, requestOf(ctx), leaseIdFromPb(req.leaseId));
      return {};
    },
    async renewLease(req, ctx) {
      const grant = await renewLease(
        deps,
        requestOf(ctx),
        leaseIdFromPb(req.leaseId),
        u64(req.extendMs, "extend_ms"),
      );
      return {
        leaseExpiresAt: msToTimestamp(grant.lease.expiresAt),
        payloadDescriptor: descriptorToPb(grant.descriptor),
      };
    },
  };
}

export function adminService(deps: UseCaseDeps): ServiceImpl<typeof PayloadAdminService> {
  return {
    async stats(_req, ctx) {
      const s = await stats(deps, requestOf(ctx));
      const t = (tier: string) => s.tiers.find((x) => x.tier === tier) ?? { payloads: 0, bytes: 0 };
      return {
        payloadsGpu: BigInt(t("GPU").payloads),
        payloadsRam: BigInt(t("RAM").payloads),
        payloadsDisk: BigInt(t("DISK").payloads),
        payloadsObject: BigInt(t("OBJECT").payloads),
        bytesGpu: BigInt(t("GPU").bytes),
        bytesRam: BigInt(t("RAM").bytes),
        bytesDisk: BigInt(t("DISK").bytes),
        bytesObject: BigInt(t("OBJECT").bytes),
        agents: s.agents.map((a) => ({
          agentId: a.agentId,
          host: a.host,
          endpoint: a.endpoint,
          lastHeartbeat: msToTimestamp(a.lastHeartbeatAt),
          live: a.live,
          tiers: a.tiers.map((u) => ({
            tier: tierToPb(u.tier),
            capacityBytes: BigInt(u.capacityBytes),
            usedBytes: BigInt(u.usedBytes),
          })),
        })),
      };
    },
  };
}

/** PayloadStreamService lives in its own module; re-exported so the router wires it with the rest. */
export { streamService } from "./stream-service.ts";

function tierUsageFromPb(
  tiers: readonly {
    tier: number;
    capacityBytes: bigint;
    usedBytes: bigint;
    highWatermark: number;
    lowWatermark: number;
  }[],
): TierUsage[] {
  return tiers.map((t, i) => {
    const tier = storageTierFromPb(t.tier, `tiers[${i}].tier`);
    if (!tier) throw invalidArgument(`tiers[${i}].tier is required`, { field: "tiers" });
    return {
      tier,
      capacityBytes: u64(t.capacityBytes, "capacity_bytes"),
      usedBytes: u64(t.usedBytes, "used_bytes"),
      highWatermark: t.highWatermark || 0.9,
      lowWatermark: t.lowWatermark || 0.75,
    };
  });
}

/** Tier agents register and heartbeat here; placement reads what they report. */
export function agentRegistryService(
  deps: UseCaseDeps,
  heartbeatIntervalMs: number,
): ServiceImpl<typeof AgentRegistryService> {
  return {
    async registerAgent(req) {
      const known = await registerAgent(deps, {
        agentId: req.agentId,
        host: req.host,
        endpoint: req.endpoint,
        tiers: tierUsageFromPb(req.tiers),
      });
      return {
        heartbeatIntervalMs,
        knownRegions: known.map((r) => ({
          payloadId: payloadIdToPb(r.payloadId as PayloadId),
          tier: tierToPb(r.tier),
        })),
      };
    },
    async heartbeat(req) {
      const ok = await agentHeartbeat(deps, req.agentId, tierUsageFromPb(req.tiers));
      return { reregister: !ok };
    },
  };
}
