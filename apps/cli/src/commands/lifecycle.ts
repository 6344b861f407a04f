import { create } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import {
  AllocatePayloadResponseSchema,
  CommitPayloadResponseSchema,
  type EvictionPolicy,
  EvictionPolicySchema,
  ListPayloadsResponseSchema,
  PayloadState,
  type PayloadSummary,
  ResolveSnapshotResponseSchema,
  Tier,
} from "@pm/rpc";
import type { Command } from "../command.ts";
import {
  descriptorFields,
  formatBytes,
  formatFields,
  formatId,
  formatMs,
  formatTable,
  stateName,
  tierName,
} from "../format.ts";
import {
  parseDurationMs,
  parseId,
  parsePriority,
  parseSize,
  parseSmallUint,
  parseState,
  parseTier,
} from "../parse-values.ts";

const ID = [{ name: "id" }] as const;

export const allocate: Command = {
  name: "allocate",
  summary: "reserve space for a new payload (AllocatePayload)",
  description:
    "Reserves a region on a tier and prints its writable descriptor. Write the bytes there, then run\n" +
    "'payloadctl commit <id>'. Never-committed allocations are reaped after the allocation timeout.\n" +
    "To upload a file in one step use 'payloadctl put'.",
  flags: {
    size: { type: "string", value: "SIZE", help: "bytes to reserve: 1048576, 64MiB, 1GiB", required: true },
    tier: { type: "string", value: "TIER", help: "RAM, DISK, GPU or OBJECT", required: true },
    "ttl-ms": { type: "string", value: "MS", help: "expire this long after allocation (e.g. 3600000, 1h)" },
    "no-evict": { type: "boolean", help: "never evict or expire this payload automatically" },
    host: { type: "string", value: "HOST", help: "prefer a tier agent on this host" },
    priority: { type: "string", value: "P", help: "eviction priority: LOW, NORMAL, HIGH or NEVER" },
    "spill-target": { type: "string", value: "TIER", help: "where eviction moves it (DISK, OBJECT, VOID…)" },
    "min-residency-tier": { type: "string", value: "TIER", help: "keep it on this tier or a faster one" },
    "require-durable": { type: "boolean", help: "a durable copy must exist before it leaves RAM/GPU" },
  },
  async run(ctx, args) {
    const sizeBytes = parseSize(args.required("size"));
    const preferredTier = parseTier(args.required("tier"));
    let evictionPolicy: EvictionPolicy | undefined;
    if (["priority", "spill-target", "min-residency-tier", "require-durable"].some((f) => args.has(f))) {
      const p = args.string("priority");
      const spill = args.string("spill-target");
      const floor = args.string("min-residency-tier");
      evictionPolicy = create(EvictionPolicySchema, {
        ...(p === undefined ? {} : { priority: parsePriority(p) }),
        ...(spill === undefined
          ? {}
          : { spillTarget: parseTier(spill, "--spill-target", { allowVoid: true }) }),
        ...(floor === undefined ? {} : { minResidencyTier: parseTier(floor, "--min-residency-tier") }),
        requireDurable: args.bool("require-durable"),
      });
    }
    const ttl = args.string("ttl-ms");
    const res = await ctx.client.catalog.allocatePayload(
      {
        sizeBytes,
        preferredTier,
        ttlMs: ttl === undefined ? 0n : parseDurationMs(ttl, "--ttl-ms"),
        noEvict: args.bool("no-evict"),
        preferredHost: args.string("host") ?? "",
        ...(evictionPolicy ? { evictionPolicy } : {}),
      },
      { signal: ctx.signal },
    );
    ctx.respond(AllocatePayloadResponseSchema, res, () => {
      const fields = res.payloadDescriptor ? descriptorFields(res.payloadDescriptor) : [];
      if (res.objectUploadPath) fields.push(["upload to", res.objectUploadPath]);
      ctx.print(formatFields(fields));
      if (res.payloadDescriptor)
        ctx.note(`write the bytes, then: payloadctl commit ${formatId(res.payloadDescriptor.payloadId)}`);
    });
    return undefined;
  },
};

export const commit: Command = {
  name: "commit",
  summary: "mark a written payload readable (CommitPayload)",
  positionals: ID,
  flags: {
    size: { type: "string", value: "SIZE", help: "bytes actually written, when known" },
    checksum: { type: "string", value: "ALGO:HEX", help: "checksum of the bytes, e.g. xxh64:0123abcd…" },
  },
  async run(ctx, args) {
    const size = args.string("size");
    const res = await ctx.client.catalog.commitPayload(
      {
        id: parseId(args.positionals[0]!),
        sizeBytes: size === undefined ? 0n : parseSize(size),
        checksum: args.string("checksum") ?? "",
      },
      { signal: ctx.signal },
    );
    ctx.respond(CommitPayloadResponseSchema, res, () =>
      ctx.print(formatFields(res.payloadDescriptor ? descriptorFields(res.payloadDescriptor) : [])),
    );
    return undefined;
  },
};

export const deleteCommand: Command = {
  name: "delete",
  summary: "delete a payload and free its bytes (Delete)",
  description:
    "Without --force a payload under a live read lease is not deleted (ABORTED). With --force the\n" +
    "leases are revoked and the bytes are freed once their holders have released them or they expire.",
  positionals: ID,
  flags: { force: { type: "boolean", help: "revoke live leases instead of failing" } },
  async run(ctx, args) {
    const id = parseId(args.positionals[0]!);
    await ctx.client.catalog.delete({ id, force: args.bool("force") }, { signal: ctx.signal });
    ctx.respond(EmptySchema, create(EmptySchema), () => ctx.print(`deleted ${formatId(id)}`));
    return undefined;
  },
};

export const resolve: Command = {
  name: "resolve",
  summary: "show where a payload's bytes are, without a lease (ResolveSnapshot)",
  positionals: ID,
  async run(ctx, args) {
    const res = await ctx.client.data.resolveSnapshot(
      { id: parseId(args.positionals[0]!) },
      { signal: ctx.signal },
    );
    ctx.respond(ResolveSnapshotResponseSchema, res, () =>
      ctx.print(formatFields(res.payloadDescriptor ? descriptorFields(res.payloadDescriptor) : [])),
    );
    return undefined;
  },
};

function summaryRows(payloads: readonly PayloadSummary[]): string[][] {
  return payloads.map((p) => [
    formatId(p.id),
    tierName(p.tier),
    stateName(p.state),
    formatBytes(p.sizeBytes),
    String(p.activeLeases),
    formatMs(p.createdAtMs),
    p.expiresAtMs > 0n ? formatMs(p.expiresAtMs) : "never",
  ]);
}

export const list: Command = {
  name: "list",
  summary: "list payloads, newest first (ListPayloads)",
  flags: {
    tier: { type: "string", value: "TIER", help: "only payloads on this tier" },
    state: { type: "string", value: "STATE", help: "only payloads in this state (ACTIVE, DURABLE, …)" },
    "page-size": { type: "string", value: "N", help: "payloads per page (server default when 0)" },
    "page-token": { type: "string", value: "T", help: "continue from a previous page" },
    all: { type: "boolean", help: "follow page tokens to the end and print everything" },
  },
  async run(ctx, args) {
    const tier = args.string("tier");
    const state = args.string("state");
    const size = args.string("page-size");
    const req = {
      tierFilter: tier === undefined ? Tier.UNSPECIFIED : parseTier(tier),
      stateFilter: state === undefined ? PayloadState.UNSPECIFIED : parseState(state),
      pageSize: size === undefined ? 0 : parseSmallUint(size, "--page-size"),
      pageToken: args.string("page-token") ?? "",
    };
    const res = await ctx.client.catalog.listPayloads(req, { signal: ctx.signal });
    if (args.bool("all")) {
      const seen = new Set<string>([req.pageToken]);
      while (res.nextPageToken !== "") {
        // A server that hands back a token it already gave would loop forever; stop instead.
        if (seen.has(res.nextPageToken)) break;
        seen.add(res.nextPageToken);
        const next = await ctx.client.catalog.listPayloads(
          { ...req, pageToken: res.nextPageToken },
          { signal: ctx.signal },
        );
        res.payloads.push(...next.payloads);
        res.nextPageToken = next.nextPageToken;
      }
    }
    ctx.respond(ListPayloadsResponseSchema, res, () => {
      ctx.print(
        formatTable(
          ["PAYLOAD", "TIER", "STATE", "SIZE", "LEASES", "CREATED", "EXPIRES"],
          summaryRows(res.payloads),
          ["left", "left", "left", "right", "right"],
        ),
      );
      const more = res.nextPageToken ? `; next page: --page-token ${res.nextPageToken}` : "";
      ctx.note(`${res.payloads.length} of ${res.totalCount} payloads${more}`);
    });
    return undefined;
  },
};
