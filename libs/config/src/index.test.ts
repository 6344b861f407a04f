import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { ConfigError, loadSection } from "./index.ts";

const schema = z
  .object({
    port: z.number().int().default(80),
    on: z.boolean().default(false),
    gpu: z.union([z.boolean(), z.literal("auto")]).default("auto"),
    nested: z.object({ name: z.string().default("x") }).prefault({}),
    tokens: z.record(z.string(), z.string()).default({}),
  })
  .strict();
const envTable = {
  PM_PORT: { path: ["port"], kind: "number" },
  PM_ON: { path: ["on"], kind: "bool" },
  PM_GPU: { path: ["gpu"], kind: "bool-or-auto" },
  PM_NAME: { path: ["nested", "name"], kind: "string" },
  PM_TOKENS: { path: ["tokens"], kind: "tokens" },
} as const;

function problems(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).problems;
  }
  throw new Error("expected a ConfigError");
}

function yaml(text: string): string {
  const f = join(mkdtempSync(join(tmpdir(), "pm-config-")), "c.yaml");
  writeFileSync(f, text);
  return f;
}

describe("loadSection", () => {
  it("applies defaults, the file's section, then environment overrides", () => {
    const file = yaml("role:\n  port: 81\n  nested: { name: from-file }\nother: { port: 1 }\n");
    const c = loadSection({
      file,
      env: { PM_ON: "1", PM_GPU: "auto", PM_TOKENS: "t1=a,t2=b", PM_NAME: "" },
      section: "role",
      schema,
      envTable,
    });
    expect(c).toEqual({
      port: 81,
      on: true,
      gpu: "auto",
      nested: { name: "from-file" },
      tokens: { t1: "a", t2: "b" },
    });
    expect(
      loadSection({ file, env: { PM_PORT: "90", PM_GPU: "false" }, section: "role", schema, envTable }),
    ).toMatchObject({ port: 90, gpu: false });
  });

  it("lists every problem at once, naming the section and the variable", () => {
    const file = yaml("role:\n  port: nope\n  unknown: 1\n");
    const p = problems(() =>
      loadSection({ file, env: { PM_ON: "yes", PM_TOKENS: "bad" }, section: "role", schema, envTable }),
    );
    expect(p).toEqual(
      expect.arrayContaining([
        "PM_ON=yes must be true or false",
        "PM_TOKENS must look like token=namespace,token2=namespace2",
        expect.stringMatching(/^role\.port: /),
        expect.stringMatching(/^role\.\(root\): .*unknown/i),
      ]),
    );
  });

  it("refuses an unreadable file and a section that is not a mapping", () => {
    expect(
      problems(() =>
        loadSection({ file: "/nonexistent/c.yaml", env: {}, section: "role", schema, envTable }),
      )[0],
    ).toMatch(/^cannot read config file \/nonexistent\/c.yaml/);
    expect(
      problems(() =>
        loadSection({ file: yaml("role: [1, 2]\n"), env: {}, section: "role", schema, envTable }),
      )[0],
    ).toMatch(/role: must be a mapping/);
  });

  it("runs the extra check only on a valid config", () => {
    const p = problems(() =>
      loadSection({
        file: undefined,
        env: {},
        section: "role",
        schema,
        envTable,
        check: (c) => [`port ${c.port} taken`],
      }),
    );
    expect(p).toEqual(["port 80 taken"]);
  });
});
