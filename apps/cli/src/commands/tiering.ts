import { create } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { PromoteResponseSchema, PromotionPolicy, SpillPolicy, SpillResponseSchema, Tier } from "@pm/rpc";
import { type Command, EXIT } from "../command.ts";
import { descriptorFields, formatFields, formatId, formatTable, stateName, tierName } from "../format.ts";
import { parseDurationMs, parseId, parseTier } from "../parse-values.ts";

export const promote: Command = {
  name: "promote",
  summary: "move a payload to a faster tier (Promote)",
  positionals: [{ name: "id" }],
  flags: {
    tier: { type: "string", value: "TIER", help: "target tier, faster than the current one", required: true },
    blocking: { type: "boolean", help: "wait for the move instead of queueing it" },
  },
  async run(ctx, args) {
    const id = parseId(args.positionals[0]!);
    const targetTier = parseTier(args.required("tier"));
    const res = await ctx.client.catalog.promote(
      {
        id,
        targetTier,
        policy: args.bool("blocking") ? PromotionPolicy.BLOCKING : PromotionPolicy.BEST_EFFORT,
      },
      { signal: ctx.signal },
    );
    ctx.respond(PromoteResponseSchema, res, () => {
      if (res.payloadDescriptor) ctx.print(formatFields(descriptorFields(res.payloadDescriptor)));
      if (!args.bool("blocking")) ctx.note(`promotion of ${formatId(id)} to ${tierName(targetTier)} queued`);
    });
    return undefined;
  },
};

export const spill: Command = {
  name: "spill",
  summary: "move payloads to a slower tier (Spill); exit code 2 when any item failed",
  description:
    "Each payload gets its own result; the command exits 2 when at least one could not be spilled.\n" +
    "The target defaults to the payload's spill target, else the next slower tier; VOID deletes.",
  positionals: [{ name: "id", variadic: true }],
  flags: {
    tier: { type: "string", value: "TIER", help: "target tier: DISK, OBJECT or VOID" },
    blocking: { type: "boolean", help: "wait for the moves instead of queueing them" },
    "wait-for-leases": { type: "boolean", help: "wait for live leases to end instead of failing" },
    fsync: { type: "boolean", help: "fsync disk copies before switching placement" },
  },
  async run(ctx, args) {
    const ids = args.positionals.map((t) => parseId(t));
    const tier = args.string("tier");
    const res = await ctx.client.catalog.spill(
      {
        ids,
        policy: args.bool("blocking") ? SpillPolicy.BLOCKING : SpillPolicy.BEST_EFFORT,
        waitForLeases: args.bool("wait-for-leases"),
        fsync: args.bool("fsync"),
        targetTier: tier === undefined ? Tier.UNSPECIFIED : parseTier(tier, "--tier", { allowVoid: true }),
      },
      { signal: ctx.signal },
    );
    const failed = res.results.filter((r) => !r.ok).length;
    ctx.respond(SpillResponseSchema, res, () =>
      ctx.print(
        formatTable(
          ["PAYLOAD", "RESULT", "TIER", "STATE", "ERROR"],
          res.results.map((r) => [
            formatId(r.id),
            r.ok ? "ok" : "failed",
            r.payloadDescriptor ? tierName(r.payloadDescriptor.tier) : "-",
            r.payloadDescriptor ? stateName(r.payloadDescriptor.state) : "-",
            r.errorMessage,
          ]),
        ),
      ),
    );
    if (failed > 0) {
      ctx.note(`error: ${failed} of ${res.results.length} payloads were not spilled`);
      return EXIT.rpc;
    }
    return undefined;
  },
};

export const prefetch: Command = {
  name: "prefetch",
  summary: "hint that a payload will be read soon from a faster tier (Prefetch, asynchronous)",
  positionals: [{ name: "id" }],
  flags: { tier: { type: "string", value: "TIER", help: "tier to bring it to", required: true } },
  async run(ctx, args) {
    const id = parseId(args.positionals[0]!);
    const targetTier = parseTier(args.required("tier"));
    await ctx.client.catalog.prefetch({ id, targetTier }, { signal: ctx.signal });
    ctx.respond(EmptySchema, create(EmptySchema), () =>
      ctx.print(`prefetch of ${formatId(id)} to ${tierName(targetTier)} requested`),
    );
    return undefined;
  },
};

export const pin: Command = {
  name: "pin",
  summary: "protect a payload from eviction and spill (Pin)",
  positionals: [{ name: "id" }],
  flags: { "duration-ms": { type: "string", value: "MS", help: "pin for this long (default: until unpin)" } },
  async run(ctx, args) {
    const id = parseId(args.positionals[0]!);
    const d = args.string("duration-ms");
    await ctx.client.catalog.pin(
      { id, durationMs: d === undefined ? 0n : parseDurationMs(d, "--duration-ms") },
      { signal: ctx.signal },
    );
    ctx.respond(EmptySchema, create(EmptySchema), () => ctx.print(`pinned ${formatId(id)}`));
    return undefined;
  },
};

export const unpin: Command = {
  name: "unpin",
  summary: "remove a pin (Unpin)",
  positionals: [{ name: "id" }],
  async run(ctx, args) {
    const id = parseId(args.positionals[0]!);
    await ctx.client.catalog.unpin({ id }, { signal: ctx.signal });
    ctx.respond(EmptySchema, create(EmptySchema), () => ctx.print(`unpinned ${formatId(id)}`));
    return undefined;
  },
};
