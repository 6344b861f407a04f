import { create } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { AcquireReadLeaseResponseSchema, PromotionPolicy, RenewLeaseResponseSchema, Tier } from "@pm/rpc";
import type { Command } from "../command.ts";
import { descriptorFields, formatFields, formatId, formatTimestamp } from "../format.ts";
import { parseDurationMs, parseId, parseTier } from "../parse-values.ts";

export const lease: Command = {
  name: "lease",
  summary: "take a read lease: the bytes stay where the descriptor says (AcquireReadLease)",
  description:
    "Prints the lease id, its expiry and the readable descriptor. Renew with 'payloadctl renew',\n" +
    "end it with 'payloadctl release'. With --min-tier the payload must be on that tier or faster:\n" +
    "--blocking promotes it first, otherwise the call fails and a promotion is queued.",
  positionals: [{ name: "id" }],
  flags: {
    "min-tier": { type: "string", value: "TIER", help: "require the bytes on this tier or a faster one" },
    blocking: { type: "boolean", help: "promote first and wait, instead of failing" },
    "duration-ms": { type: "string", value: "MS", help: "lease length (server default 20 s, capped)" },
  },
  async run(ctx, args) {
    const minTier = args.string("min-tier");
    const duration = args.string("duration-ms");
    const res = await ctx.client.data.acquireReadLease(
      {
        id: parseId(args.positionals[0]!),
        minTier: minTier === undefined ? Tier.UNSPECIFIED : parseTier(minTier, "--min-tier"),
        promotionPolicy: args.bool("blocking") ? PromotionPolicy.BLOCKING : PromotionPolicy.BEST_EFFORT,
        minLeaseDurationMs: duration === undefined ? 0n : parseDurationMs(duration, "--duration-ms"),
      },
      { signal: ctx.signal },
    );
    ctx.respond(AcquireReadLeaseResponseSchema, res, () =>
      ctx.print(
        formatFields([
          ["lease", formatId(res.leaseId)],
          ["lease expires", formatTimestamp(res.leaseExpiresAt)],
          ...(res.payloadDescriptor ? descriptorFields(res.payloadDescriptor) : []),
        ]),
      ),
    );
    return undefined;
  },
};

export const renew: Command = {
  name: "renew",
  summary: "extend a live read lease (RenewLease)",
  positionals: [{ name: "lease-id" }],
  flags: {
    "extend-ms": { type: "string", value: "MS", help: "new remaining length (server default, capped)" },
  },
  async run(ctx, args) {
    const leaseId = parseId(args.positionals[0]!, "lease id");
    const extend = args.string("extend-ms");
    const res = await ctx.client.data.renewLease(
      { leaseId, extendMs: extend === undefined ? 0n : parseDurationMs(extend, "--extend-ms") },
      { signal: ctx.signal },
    );
    ctx.respond(RenewLeaseResponseSchema, res, () =>
      ctx.print(`lease ${formatId(leaseId)} renewed until ${formatTimestamp(res.leaseExpiresAt)}`),
    );
    return undefined;
  },
};

export const release: Command = {
  name: "release",
  summary: "end a read lease; unknown or expired leases succeed too (ReleaseLease)",
  positionals: [{ name: "lease-id" }],
  async run(ctx, args) {
    const leaseId = parseId(args.positionals[0]!, "lease id");
    await ctx.client.data.releaseLease({ leaseId }, { signal: ctx.signal });
    ctx.respond(EmptySchema, create(EmptySchema), () => ctx.print(`released lease ${formatId(leaseId)}`));
    return undefined;
  },
};
