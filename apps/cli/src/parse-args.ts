/** A mistake on the command line: exit code 1, printed with a usage hint. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

export interface FlagSpec {
  /** "string" flags take a value (`--tier RAM` or `--tier=RAM`); "boolean" flags take none. */
  readonly type: "string" | "boolean";
  /** One-letter alias, e.g. "o" for `-o file`. */
  readonly short?: string;
  /** May be given more than once; every value is kept in order. */
  readonly multiple?: boolean;
  /** The command cannot run without it (shown without brackets in the usage line). */
  readonly required?: boolean;
  /** Placeholder shown in help, e.g. "N" or "TIER". */
  readonly value?: string;
  readonly help: string;
}

export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

export interface PositionalSpec {
  /** Shown in usage as `<name>`. */
  readonly name: string;
  readonly optional?: boolean;
  /** Takes every remaining argument (at least one unless optional). Only the last may be variadic. */
  readonly variadic?: boolean;
}

/** The flags and positional arguments of one command line, checked against its specs. */
export class ParsedArgs {
  constructor(
    readonly positionals: readonly string[],
    private readonly values: ReadonlyMap<string, readonly string[]>,
  ) {}

  has(name: string): boolean {
    return this.values.has(name);
  }

  /** The last value of a string flag, or undefined when it was not given. */
  string(name: string): string | undefined {
    const v = this.values.get(name);
    return v?.[v.length - 1];
  }

  /** Every value of a repeatable flag, in order. */
  strings(name: string): readonly string[] {
    return this.values.get(name) ?? [];
  }

  bool(name: string): boolean {
    return this.string(name) === "true";
  }

  /** The value of a flag the command cannot do without. */
  required(name: string): string {
    const v = this.string(name);
    if (v === undefined) throw new UsageError(`--${name} is required`);
    return v;
  }
}

const BOOL_TEXT: Readonly<Record<string, string>> = {
  true: "true",
  yes: "true",
  "1": "true",
  false: "false",
  no: "false",
  "0": "false",
};

/**
 * Parses `argv` against the flag and positional specs of one command. Accepts `--flag value`,
 * `--flag=value`, `-o value`, `--bool`, `--bool=false`, and `--` to end the flags (so a file
 * called `-x` can be named). Anything unknown or missing is a UsageError.
 */
export function parseArgs(
  argv: readonly string[],
  flags: FlagSpecs,
  positionals: readonly PositionalSpec[] = [],
): ParsedArgs {
  const values = new Map<string, string[]>();
  const rest: string[] = [];
  const byShort = new Map<string, string>();
  for (const [name, spec] of Object.entries(flags)) if (spec.short) byShort.set(spec.short, name);

  const set = (name: string, spec: FlagSpec, value: string) => {
    const prev = values.get(name);
    if (prev && !spec.multiple && spec.type === "string")
      throw new UsageError(`--${name} was given more than once`);
    if (prev && spec.multiple) prev.push(value);
    else values.set(name, [value]);
  };

  let i = 0;
  let flagsEnded = false;
  while (i < argv.length) {
    const tok = argv[i++]!;
    if (flagsEnded || tok === "-" || !tok.startsWith("-")) {
      rest.push(tok);
      continue;
    }
    if (tok === "--") {
      flagsEnded = true;
      continue;
    }
    let name: string;
    let inline: string | undefined;
    if (tok.startsWith("--")) {
      const eq = tok.indexOf("=");
      name = eq === -1 ? tok.slice(2) : tok.slice(2, eq);
      inline = eq === -1 ? undefined : tok.slice(eq + 1);
    } else {
      // Short flags: `-o file` or `-ofile`. No value in this CLI is negative, so `-5` is an error too.
      const long = byShort.get(tok[1] ?? "");
      if (!long) throw new UsageError(`unknown flag ${tok}`);
      name = long;
      inline = tok.length > 2 ? tok.slice(2) : undefined;
    }
    const spec = Object.hasOwn(flags, name) ? flags[name] : undefined;
    if (!spec) throw new UsageError(`unknown flag --${name}${suggest(name, Object.keys(flags), "--")}`);
    if (spec.type === "boolean") {
      if (inline === undefined) set(name, spec, "true");
      else {
        const b = BOOL_TEXT[inline.toLowerCase()];
        if (!b) throw new UsageError(`--${name} is a switch; give it no value or =true/=false`);
        set(name, spec, b);
      }
      continue;
    }
    if (inline === undefined) {
      const next = argv[i];
      if (next === undefined || (next.startsWith("--") && next.length > 2))
        throw new UsageError(`--${name} needs a value${spec.value ? ` (${spec.value})` : ""}`);
      inline = next;
      i++;
    }
    set(name, spec, inline);
  }

  for (const [name, spec] of Object.entries(flags))
    if (spec.required && !values.has(name)) throw new UsageError(`--${name} is required`);

  let p = 0;
  for (const spec of positionals) {
    if (spec.variadic) {
      if (p >= rest.length && !spec.optional) throw new UsageError(`missing <${spec.name}>`);
      p = rest.length;
      break;
    }
    if (p >= rest.length) {
      if (!spec.optional) throw new UsageError(`missing <${spec.name}>`);
      break;
    }
    p++;
  }
  if (p < rest.length) throw new UsageError(`unexpected argument ${JSON.stringify(rest[p])}`);
  return new ParsedArgs(rest, values);
}

/** Levenshtein distance, for "did you mean" hints on typos. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** ` (did you mean --x?)` when one candidate is close to what was typed, else "". */
export function suggest(typed: string, candidates: readonly string[], prefix = ""): string {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(typed.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(typed, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best ? ` (did you mean ${prefix}${best}?)` : "";
}
