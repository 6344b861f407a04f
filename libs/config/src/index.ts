import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { z } from "zod";

/** How an environment variable's text becomes a config value. */
export type EnvKind = "string" | "number" | "bool" | "bool-or-auto" | "tokens";

/** One `PM_*` variable: where it lands in the section and how it is parsed. */
export interface EnvBinding {
  readonly path: readonly string[];
  readonly kind: EnvKind;
}

/**
 * The agent token (PM_AGENT_TOKEN) shared by the API, the workers and the agents: sent as
 * `authorization: Bearer <token>`, so it must be one word of visible ASCII. A secret file's
 * trailing newline is the usual way to get that wrong; "" means no token.
 */
export const agentTokenSchema = z
  .string()
  .regex(
    /^[\x21-\x7e]*$/,
    "must be visible ASCII without spaces or newlines (a secret file's trailing newline?)",
  )
  .default("");

/** Invalid configuration; `problems` lists every one, so an operator fixes them in one go. */
export class ConfigError extends Error {
  constructor(
    readonly problems: readonly string[],
    section = "",
  ) {
    super(
      `invalid ${section ? `${section} ` : ""}configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`,
    );
    this.name = "ConfigError";
  }
}

function setIn(obj: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let cur = obj;
  for (const k of path.slice(0, -1)) {
    if (typeof cur[k] !== "object" || cur[k] === null) cur[k] = {};
    cur = cur[k] as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = value;
}

function envValue(name: string, kind: EnvKind, text: string, problems: string[]): unknown {
  switch (kind) {
    case "number": {
      const n = Number(text);
      if (!Number.isFinite(n)) problems.push(`${name}=${text} is not a number`);
      return n;
    }
    case "bool-or-auto":
      if (text === "auto") return "auto";
      return envValue(name, "bool", text, problems);
    case "bool":
      if (!["true", "false", "1", "0"].includes(text)) problems.push(`${name}=${text} must be true or false`);
      return text === "true" || text === "1";
    case "tokens": {
      const tokens: Record<string, string> = {};
      for (const pair of text.split(",")) {
        const [token, ns] = pair.split("=");
        if (!token || !ns) problems.push(`${name} must look like token=namespace,token2=namespace2`);
        else tokens[token.trim()] = ns.trim();
      }
      return tokens;
    }
    case "string":
      return text;
  }
}

export interface LoadSectionOptions<S extends z.ZodType> {
  /** YAML file with one mapping per role (`api:`, `worker:`, `agent:`); undefined = defaults only. */
  readonly file: string | undefined;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly section: string;
  readonly schema: S;
  readonly envTable: Readonly<Record<string, EnvBinding>>;
  /** Further checks on the parsed config; returns problems. */
  readonly check?: (config: z.infer<S>) => string[];
}

/**
 * Reads one role's section of the YAML file, applies `PM_*` overrides (empty values are ignored),
 * validates with the schema, and returns the config — or throws ConfigError listing every problem.
 */
export function loadSection<S extends z.ZodType>(opts: LoadSectionOptions<S>): z.infer<S> {
  const problems: string[] = [];
  let raw: Record<string, unknown> = {};
  if (opts.file) {
    let doc: unknown;
    try {
      doc = parseYaml(readFileSync(opts.file, "utf8"));
    } catch (e) {
      throw new ConfigError([`cannot read config file ${opts.file}: ${(e as Error).message}`], opts.section);
    }
    const section = (doc as Record<string, unknown> | null)?.[opts.section];
    if (
      section !== undefined &&
      section !== null &&
      (typeof section !== "object" || Array.isArray(section))
    ) {
      throw new ConfigError([`${opts.file}: ${opts.section}: must be a mapping`], opts.section);
    }
    raw = structuredClone((section as Record<string, unknown> | undefined) ?? {});
  }
  for (const [name, binding] of Object.entries(opts.envTable)) {
    const text = opts.env[name];
    if (text === undefined || text === "") continue;
    const before = problems.length;
    const value = envValue(name, binding.kind, text, problems);
    // A variable that did not parse is reported once, not again by the schema.
    if (problems.length === before) setIn(raw, binding.path, value);
  }
  const parsed = opts.schema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      problems.push(`${opts.section}.${issue.path.join(".") || "(root)"}: ${issue.message}`);
    }
  } else if (opts.check) {
    problems.push(...opts.check(parsed.data));
  }
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems, opts.section);
  return parsed.data;
}
