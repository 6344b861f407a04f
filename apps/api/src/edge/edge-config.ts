/**
 * The Worker's configuration, from its env bindings: the Workers counterpart of `config.ts`, which
 * reads YAML from the filesystem and so cannot run in workerd. Same `PM_*` names and rules as there.
 * Validated by hand: zod (with its locales) would roughly double the Worker bundle for six values.
 */
export interface EdgeConfig {
  readonly logLevel: "debug" | "info" | "warn" | "error" | "silent";
  readonly auth: {
    /** Bearer token → namespace; empty = no authentication (single tenant "default"). */
    readonly tokens: Readonly<Record<string, string>>;
    readonly agentToken: string;
  };
  readonly maxBodyBytes: number;
  /** Reservation-only DISK tier for tests and demos (edge/memory-region-allocator.ts). */
  readonly testDisk: { readonly enabled: boolean; readonly capacityBytes: number };
}

/** Thrown when the Worker's bindings are invalid; lists every problem. */
export class EdgeConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid edge configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "EdgeConfigError";
  }
}

/** The bindings the Worker reads; every other binding is ignored. */
export interface EdgeEnv {
  readonly PM_LOG_LEVEL?: string;
  readonly PM_AUTH_TOKENS?: string;
  readonly PM_AGENT_TOKEN?: string;
  readonly PM_MAX_BODY_BYTES?: string;
  readonly PM_EDGE_TEST_DISK?: string;
  readonly PM_EDGE_TEST_DISK_CAPACITY_BYTES?: string;
}

const LOG_LEVELS = ["debug", "info", "warn", "error", "silent"] as const;
const NAMESPACE = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Validates the Worker's env bindings once; throws EdgeConfigError listing every problem. */
export function loadEdgeConfig(env: EdgeEnv): EdgeConfig {
  const problems: string[] = [];
  const str = (name: keyof EdgeEnv): string | undefined => {
    const v: unknown = env[name];
    if (v === undefined || v === "") return undefined;
    if (typeof v !== "string") {
      problems.push(`${name} must be a text binding (a var or a secret)`);
      return undefined;
    }
    return v;
  };
  const positiveInt = (name: keyof EdgeEnv, fallback: number): number => {
    const v = str(name);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (Number.isSafeInteger(n) && n > 0) return n;
    problems.push(`${name}=${v} must be a positive integer`);
    return fallback;
  };

  const level = str("PM_LOG_LEVEL") ?? "info";
  const logLevel = LOG_LEVELS.find((l) => l === level);
  if (!logLevel) problems.push(`PM_LOG_LEVEL=${level} must be one of ${LOG_LEVELS.join(", ")}`);

  const tokens: Record<string, string> = {};
  const rawTokens = str("PM_AUTH_TOKENS");
  if (rawTokens !== undefined) {
    rawTokens.split(",").forEach((pair, i) => {
      const [token = "", ns = ""] = pair.split("=").map((s) => s.trim());
      // Positions, never token text: problems end up in logs.
      if (token.length < 8) problems.push(`PM_AUTH_TOKENS entry ${i + 1}: the token must be 8+ characters`);
      else if (!NAMESPACE.test(ns))
        problems.push(`PM_AUTH_TOKENS entry ${i + 1}: the namespace must match ${NAMESPACE.source}`);
      else tokens[token] = ns;
    });
  }

  const testDisk = str("PM_EDGE_TEST_DISK") ?? "0";
  if (testDisk !== "0" && testDisk !== "1")
    problems.push(`PM_EDGE_TEST_DISK must be 0 or 1, got ${JSON.stringify(testDisk)}`);

  const config: EdgeConfig = {
    logLevel: logLevel ?? "info",
    auth: { tokens, agentToken: str("PM_AGENT_TOKEN") ?? "" },
    maxBodyBytes: positiveInt("PM_MAX_BODY_BYTES", 4 * 1024 * 1024),
    testDisk: {
      enabled: testDisk === "1",
      capacityBytes: positiveInt("PM_EDGE_TEST_DISK_CAPACITY_BYTES", 1024 ** 3),
    },
  };
  if (problems.length > 0) throw new EdgeConfigError(problems);
  return config;
}
