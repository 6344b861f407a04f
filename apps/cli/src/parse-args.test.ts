import { describe, expect, it } from "vitest";
import { editDistance, type FlagSpecs, parseArgs, suggest, UsageError } from "./parse-args.ts";

const FLAGS: FlagSpecs = {
  tier: { type: "string", value: "TIER", help: "tier" },
  size: { type: "string", help: "size" },
  force: { type: "boolean", help: "force" },
  output: { type: "string", short: "o", help: "output" },
  parent: { type: "string", multiple: true, help: "parent" },
};

function usage(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return (e as Error).message;
  }
  throw new Error("expected a UsageError");
}

describe("parseArgs", () => {
  it("reads --flag value, --flag=value, switches and positionals in any order", () => {
    const a = parseArgs(["x", "--tier", "RAM", "--size=64MiB", "--force", "y"], FLAGS, [
      { name: "a" },
      { name: "b" },
    ]);
    expect(a.positionals).toEqual(["x", "y"]);
    expect(a.string("tier")).toBe("RAM");
    expect(a.string("size")).toBe("64MiB");
    expect(a.bool("force")).toBe(true);
    expect(a.has("output")).toBe(false);
    expect(a.string("output")).toBeUndefined();
  });

  it("accepts =true/=false on switches and rejects other values", () => {
    expect(parseArgs(["--force=false"], FLAGS).bool("force")).toBe(false);
    expect(parseArgs(["--force=yes"], FLAGS).bool("force")).toBe(true);
    expect(usage(() => parseArgs(["--force=maybe"], FLAGS))).toMatch(/--force is a switch/);
  });

  it("reads short flags with a separate or attached value", () => {
    expect(parseArgs(["-o", "out.bin"], FLAGS).string("output")).toBe("out.bin");
    expect(parseArgs(["-oout.bin"], FLAGS).string("output")).toBe("out.bin");
    expect(usage(() => parseArgs(["-x"], FLAGS))).toBe("unknown flag -x");
  });

  it("keeps every value of a repeatable flag and rejects repeats of the others", () => {
    const a = parseArgs(["--parent", "a", "--parent=b:op", "--parent", "c"], FLAGS);
    expect(a.strings("parent")).toEqual(["a", "b:op", "c"]);
    expect(a.strings("tier")).toEqual([]);
    expect(usage(() => parseArgs(["--tier", "RAM", "--tier", "DISK"], FLAGS))).toMatch(/more than once/);
  });

  it("treats everything after -- as positional, and - as a positional", () => {
    const a = parseArgs(["--", "--force", "-o"], FLAGS, [{ name: "f", variadic: true }]);
    expect(a.positionals).toEqual(["--force", "-o"]);
    expect(a.bool("force")).toBe(false);
    expect(parseArgs(["-"], FLAGS, [{ name: "f" }]).positionals).toEqual(["-"]);
  });

  it("reports unknown flags with a suggestion", () => {
    expect(usage(() => parseArgs(["--tire", "RAM"], FLAGS))).toBe(
      "unknown flag --tire (did you mean --tier?)",
    );
    expect(usage(() => parseArgs(["--zzzzzz"], FLAGS))).toBe("unknown flag --zzzzzz");
  });

  it("reports a string flag without a value", () => {
    expect(usage(() => parseArgs(["--tier"], FLAGS))).toBe("--tier needs a value (TIER)");
    expect(usage(() => parseArgs(["--tier", "--force"], FLAGS))).toBe("--tier needs a value (TIER)");
  });

  it("checks required flags", () => {
    const flags: FlagSpecs = { size: { type: "string", required: true, help: "" } };
    expect(usage(() => parseArgs([], flags))).toBe("--size is required");
    expect(parseArgs(["--size", "1"], flags).required("size")).toBe("1");
    expect(usage(() => parseArgs([], FLAGS).required("tier"))).toBe("--tier is required");
  });

  it("checks the number of positionals", () => {
    const one = [{ name: "id" }];
    expect(usage(() => parseArgs([], FLAGS, one))).toBe("missing <id>");
    expect(usage(() => parseArgs(["a", "b"], FLAGS, one))).toBe('unexpected argument "b"');
    expect(parseArgs([], FLAGS, [{ name: "id", optional: true }]).positionals).toEqual([]);
    const many = [{ name: "stream" }, { name: "id", variadic: true }];
    expect(usage(() => parseArgs(["s"], FLAGS, many))).toBe("missing <id>");
    expect(parseArgs(["s", "a", "b", "c"], FLAGS, many).positionals).toEqual(["s", "a", "b", "c"]);
  });

  it("does not treat inherited object keys as flags", () => {
    expect(usage(() => parseArgs(["--constructor"], FLAGS))).toMatch(/^unknown flag --constructor/);
    expect(usage(() => parseArgs(["--toString"], FLAGS))).toMatch(/^unknown flag --toString/);
  });
});

describe("suggestions", () => {
  it("computes edit distances", () => {
    expect(editDistance("", "")).toBe(0);
    expect(editDistance("list", "lst")).toBe(1);
    expect(editDistance("kitten", "sitting")).toBe(3);
  });

  it("suggests only close candidates", () => {
    expect(suggest("lst", ["list", "lease", "stats"])).toBe(" (did you mean list?)");
    expect(suggest("frobnicate", ["list", "lease", "stats"])).toBe("");
  });
});
