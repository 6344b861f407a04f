import { DomainError, invalidArgument } from "../errors.ts";
import type {
  AgentRecord,
  LineageEdge,
  MetadataEvent,
  PayloadMetadata,
  TierStats,
  TierUsage,
} from "../model/catalog-records.ts";
import type { PayloadId } from "../model/ids.ts";
import type { PayloadState } from "../model/payload.ts";
import type { StorageTier } from "../model/tier.ts";
import type { ListCursor, PayloadListItem } from "../ports/catalog.ts";
import { isAgentLive } from "../rules/placement.ts";
import type { RequestContext, UseCaseDeps } from "./deps.ts";
import { requirePayload } from "./lookup.ts";

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;

/** Opaque keyset page tokens: base64url of `createdAt.id`. Clients must not parse them. */
export function encodePageToken(c: ListCursor): string {
  return btoa(`${c.createdAt}.${c.id}`).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

export function decodePageToken(token: string): ListCursor | undefined {
  if (token === "") return undefined;
  const bad = () =>
    invalidArgument(
      "page_token is not a token this server issued; pass next_page_token from the previous page, or empty for the first page",
      {
        field: "page_token",
      },
    );
  let text: string;
  try {
    text = atob(token.replaceAll("-", "+").replaceAll("_", "/"));
  } catch {
    throw bad();
  }
  const m = /^(\d{1,16})\.([0-9a-f-]{36})$/.exec(text);
  if (!m) throw bad();
  return { createdAt: Number(m[1]), id: m[2]! };
}

export const pageSizeOf = (requested: number): number =>
  requested <= 0 ? DEFAULT_PAGE_SIZE : Math.min(requested, MAX_PAGE_SIZE);

export interface ListPayloadsRequest {
  readonly tier: StorageTier | undefined;
  readonly state: PayloadState | undefined;
  readonly pageSize: number;
  readonly pageToken: string;
}

export interface ListPayloadsResult {
  readonly items: readonly PayloadListItem[];
  readonly nextPageToken: string;
  readonly total: number;
}

/** Newest first, keyset-paged, with the total count and live lease counts. */
export async function listPayloads(
  deps: UseCaseDeps,
  ctx: RequestContext,
  req: ListPayloadsRequest,
): Promise<ListPayloadsResult> {
  const after = decodePageToken(req.pageToken);
  const limit = pageSizeOf(req.pageSize);
  const { items, total } = await deps.catalog.transaction((tx) =>
    tx.listPayloads({
      namespace: ctx.namespace,
      tier: req.tier,
      state: req.state,
      limit: limit + 1,
      after,
      now: deps.clock.now(),
    }),
  );
  const page = items.slice(0, limit);
  const last = page[page.length - 1];
  const nextPageToken =
    items.length > limit && last
      ? encodePageToken({ createdAt: last.payload.createdAt, id: last.payload.id })
      : "";
  return { items: page, nextPageToken, total };
}

export interface StatsResult {
  readonly tiers: readonly TierStats[];
  readonly agents: readonly (AgentRecord & { readonly live: boolean })[];
}

export async function stats(deps: UseCaseDeps, ctx: RequestContext): Promise<StatsResult> {
  return deps.catalog.transaction(async (tx) => {
    const now = deps.clock.now();
    const tiers = await tx.tierStats(ctx.namespace);
    const agents = (await tx.listAgents()).map((a) => ({
      ...a,
      live: isAgentLive(a, now, deps.config.agentTtlMs),
    }));
    return { tiers, agents };
  });
}

export type MetadataMode = "MERGE" | "REPLACE";

/**
 * MERGE (and unspecified) keeps the stored data/schema where the new ones are empty, as the seed
 * did; REPLACE overwrites both. Returns the metadata as stored.
 */
export async function updateMetadata(
  deps: UseCaseDeps,
  ctx: RequestContext,
  req: { id: PayloadId; mode: MetadataMode; data: Uint8Array; schema: string },
): Promise<PayloadMetadata> {
  return deps.catalog.transaction(async (tx) => {
    await requireLivePayload(tx, ctx, req.id);
    const old = await tx.getMetadata(req.id);
    const now = deps.clock.now();
    const next: PayloadMetadata =
      req.mode === "REPLACE" || !old
        ? { payloadId: req.id, data: req.data, schema: req.schema, updatedAt: now }
        : {
            payloadId: req.id,
            data: req.data.length > 0 ? req.data : old.data,
            schema: req.schema !== "" ? req.schema : old.schema,
            updatedAt: now,
          };
    await tx.putMetadata(next);
    return next;
  });
}

async function requireLivePayload(
  tx: Parameters<typeof requirePayload>[0],
  ctx: RequestContext,
  id: PayloadId,
) {
  const p = await requirePayload(tx, ctx, id, true);
  if (p.state === "DELETING" || p.state === "EXPIRED") {
    throw new DomainError(
      "INVALID_TRANSITION",
      `payload ${id} is being deleted; its catalog entries can no longer change`,
      {
        payloadId: id,
      },
    );
  }
  return p;
}

export async function getMetadata(
  deps: UseCaseDeps,
  ctx: RequestContext,
  id: PayloadId,
): Promise<PayloadMetadata> {
  return deps.catalog.transaction(async (tx) => {
    await requirePayload(tx, ctx, id, false);
    return (await tx.getMetadata(id)) ?? { payloadId: id, data: new Uint8Array(), schema: "", updatedAt: 0 };
  });
}

export async function appendMetadataEvent(
  deps: UseCaseDeps,
  ctx: RequestContext,
  req: { id: PayloadId; data: Uint8Array; schema: string; source: string; version: string },
): Promise<MetadataEvent> {
  return deps.catalog.transaction(async (tx) => {
    await requireLivePayload(tx, ctx, req.id);
    return tx.appendMetadataEvent({
      payloadId: req.id,
      ts: deps.clock.now(),
      data: req.data,
      schema: req.schema,
      source: req.source,
      version: req.version,
    });
  });
}

/** Newest first; the page token is the seq to continue below. */
export async function listMetadataEvents(
  deps: UseCaseDeps,
  ctx: RequestContext,
  req: {
    id: PayloadId;
    pageSize: number;
    pageToken: string;
    since: number | undefined;
    until: number | undefined;
  },
): Promise<{ events: MetadataEvent[]; nextPageToken: string }> {
  let beforeSeq: number | undefined;
  if (req.pageToken !== "") {
    if (!/^\d{1,15}$/.test(req.pageToken)) {
      throw invalidArgument(
        "page_token is not a token this server issued; pass next_page_token from the previous page",
        {
          field: "page_token",
        },
      );
    }
    beforeSeq = Number(req.pageToken);
  }
  const limit = pageSizeOf(req.pageSize);
  const events = await deps.catalog.transaction(async (tx) => {
    await requirePayload(tx, ctx, req.id, false);
    return tx.listMetadataEvents({
      payloadId: req.id,
      limit: limit + 1,
      beforeSeq,
      since: req.since,
      until: req.until,
    });
  });
  const page = events.slice(0, limit);
  const last = page[page.length - 1];
  return { events: page, nextPageToken: events.length > limit && last ? String(last.seq) : "" };
}

/** Adds parent edges to a child in one transaction; every end must exist. Duplicates collapse. */
export async function addLineage(
  deps: UseCaseDeps,
  ctx: RequestContext,
  child: PayloadId,
  parents: readonly Omit<LineageEdge, "child">[],
): Promise<void> {
  if (parents.length === 0)
    throw invalidArgument("parents is empty: send at least one parent edge", { field: "parents" });
  await deps.catalog.transaction(async (tx) => {
    await requireLivePayload(tx, ctx, child);
    for (const e of parents) {
      if (e.parent === child)
        throw invalidArgument(`payload ${child} cannot be its own parent`, { field: "parents" });
      // Locked, so a parent deleted concurrently cannot leave an edge to a missing row.
      await requirePayload(tx, ctx, e.parent, true);
    }
    await tx.addLineage(parents.map((e) => ({ ...e, child })));
  });
}

/**
 * Walks lineage upstream (to ancestors) or downstream, breadth first, up to `maxDepth` levels
 * (0 = unlimited). Cycle-safe; each edge is returned once.
 */
export async function getLineage(
  deps: UseCaseDeps,
  ctx: RequestContext,
  req: { id: PayloadId; upstream: boolean; maxDepth: number },
): Promise<LineageEdge[]> {
  return deps.catalog.transaction(async (tx) => {
    await requirePayload(tx, ctx, req.id, false);
    const seenNodes = new Set<string>([req.id]);
    const seenEdges = new Set<string>();
    const out: LineageEdge[] = [];
    let frontier: PayloadId[] = [req.id];
    for (let depth = 0; frontier.length > 0 && (req.maxDepth === 0 || depth < req.maxDepth); depth++) {
      const next: PayloadId[] = [];
      for (const e of await tx.lineageEdges(frontier, req.upstream)) {
        const key = `${e.parent}|${e.child}|${e.operation}|${e.role}`;
        if (seenEdges.has(key)) continue;
        seenEdges.add(key);
        out.push(e);
        const node = req.upstream ? e.parent : e.child;
        if (!seenNodes.has(node)) {
          seenNodes.add(node);
          next.push(node);
        }
      }
      frontier = next;
    }
    return out;
  });
}

export interface RegisterAgentRequest {
  readonly agentId: string;
  readonly host: string;
  readonly endpoint: string;
  readonly tiers: readonly TierUsage[];
}

/** Records an agent and returns the regions the catalog places on it (for its reconciliation). */
export async function registerAgent(
  deps: UseCaseDeps,
  req: RegisterAgentRequest,
): Promise<{ payloadId: PayloadId; tier: StorageTier }[]> {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(req.agentId)) {
    throw invalidArgument("agent_id must be 1-64 characters of letters, digits, '.', '_' or '-'", {
      field: "agent_id",
    });
  }
  return deps.catalog.transaction(async (tx) => {
    const now = deps.clock.now();
    const old = await tx.getAgent(req.agentId);
    await tx.upsertAgent({ ...req, lastHeartbeatAt: now, registeredAt: old?.registeredAt ?? now });
    return tx.placementsOnAgent(req.agentId);
  });
}

/** Updates an agent's usage; returns false when the agent is unknown and must register again. */
export async function agentHeartbeat(
  deps: UseCaseDeps,
  agentId: string,
  tiers: readonly TierUsage[],
): Promise<boolean> {
  return deps.catalog.transaction(async (tx) => {
    const a = await tx.getAgent(agentId);
    if (!a) return false;
    await tx.upsertAgent({ ...a, tiers, lastHeartbeatAt: deps.clock.now() });
    return true;
  });
}
