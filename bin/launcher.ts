import { type ApiHandle, ConfigError, loadConfig, startApi } from "@pm/api";

const USAGE = `usage: payload-manager [all|api|worker|agent] [--config file.yaml]

  all      API + worker + a local tier agent in one process (default; embedded SQLite catalog)
  api      the stateless API (Connect, gRPC, gRPC-Web, REST)
  worker   background jobs (expiry, reaping, tiering)
  agent    the per-host tier agent

Configuration: YAML file (--config) with api:/worker:/agent: sections, overridden by PM_* variables.`;

interface Stoppable {
  close(): Promise<void>;
}

/** Parses the command line, starts the requested roles and waits for SIGTERM/SIGINT. Returns the exit code. */
export async function main(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): Promise<number> {
  let role = "all";
  let configFile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--config" || a === "-c") configFile = argv[++i];
    else if (a.startsWith("--config=")) configFile = a.slice("--config=".length);
    else if (a === "--help" || a === "-h") {
      console.log(USAGE);
      return 0;
    } else if (["all", "api", "worker", "agent"].includes(a)) role = a;
    else {
      console.error(`unknown argument ${JSON.stringify(a)}\n\n${USAGE}`);
      return 1;
    }
  }
  if (configFile === "") {
    console.error(`--config needs a file name\n\n${USAGE}`);
    return 1;
  }

  const running: Stoppable[] = [];
  try {
    if (role === "all" || role === "api") {
      const api: ApiHandle = await startApi(loadConfig(configFile, env));
      running.push(api);
    }
    if (role === "worker" || role === "agent") {
      console.error(`the ${role} role is not available in this build yet; run 'all' or 'api'`);
      return 1;
    }
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      return 2;
    }
    throw e;
  }

  await new Promise<void>((resolveStop) => {
    const stop = (signal: string) => {
      console.error(`received ${signal}, shutting down`);
      resolveStop();
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
  for (const r of running.reverse()) await r.close();
  return 0;
}
