import { create } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { GetLineageResponseSchema } from "@pm/rpc";
import type { Command } from "../command.ts";
import { formatId, formatTable } from "../format.ts";
import { parseId, parseParent, parseSmallUint } from "../parse-values.ts";

const add: Command = {
  name: "lineage add",
  summary: "record that a payload was derived from others (AddLineage)",
  positionals: [{ name: "child" }],
  flags: {
    parent: {
      type: "string",
      multiple: true,
      required: true,
      value: "ID[:OP[:ROLE]]",
      help: "a parent, with the operation and role that made the child (repeatable)",
    },
  },
  examples: ["payloadctl lineage add <child> --parent <a>:resize:input --parent <b>:resize:mask"],
  async run(ctx, args) {
    const child = parseId(args.positionals[0]!, "child id");
    const parents = args.strings("parent").map(parseParent);
    await ctx.client.catalog.addLineage({ child, parents }, { signal: ctx.signal });
    ctx.respond(EmptySchema, create(EmptySchema), () =>
      ctx.print(`recorded ${parents.length} parent${parents.length === 1 ? "" : "s"} of ${formatId(child)}`),
    );
    return undefined;
  },
};

const get: Command = {
  name: "lineage get",
  summary: "walk a payload's lineage, downstream by default (GetLineage)",
  positionals: [{ name: "id" }],
  flags: {
    upstream: { type: "boolean", help: "walk to the parents instead of the children" },
    depth: { type: "string", value: "N", help: "levels to walk (server default when 0)" },
  },
  async run(ctx, args) {
    const depth = args.string("depth");
    const res = await ctx.client.catalog.getLineage(
      {
        id: parseId(args.positionals[0]!),
        upstream: args.bool("upstream"),
        maxDepth: depth === undefined ? 0 : parseSmallUint(depth, "--depth", 2 ** 32 - 1),
      },
      { signal: ctx.signal },
    );
    ctx.respond(GetLineageResponseSchema, res, () =>
      ctx.print(
        formatTable(
          ["PARENT", "CHILD", "OPERATION", "ROLE"],
          res.edges.map((e) => [formatId(e.parent), formatId(e.child), e.operation || "-", e.role || "-"]),
        ),
      ),
    );
    return undefined;
  },
};

export const lineageCommands: readonly Command[] = [add, get];
