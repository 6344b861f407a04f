import { ConfigError, loadConfig, startApi } from "@pm/api";
import { AgentConfigError, loadAgentConfig, startAgent } from "@pm/tier-agent";

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
    // Validate every role's configuration before starting anything.
    const apiConfig = role === "all" || role === "api" ? loadConfig(configFile, env) : undefined;
    const agentConfig = role === "all" || role === "agent" ? loadAgentConfig(configFile, env) : undefined;
    if (role === "worker") {
      console.error("the worker role is not available in this build yet; run 'all', 'api' or 'agent'");
      return 1;
    }
    if (apiConfig) {
      const api = await startApi(apiConfig);
      running.push(api);
      // In one process the agent registers with the API it runs beside, wherever that listens.
      if (agentConfig && role === "all")
        running.push(await startAgent({ ...agentConfig, controlPlaneUrl: api.httpUrl }));
    } else if (agentConfig) {
      running.push(await startAgent(agentConfig));
    }
  } catch (e) {
    if (e instanceof ConfigError || e instanceof AgentConfigError) {
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
