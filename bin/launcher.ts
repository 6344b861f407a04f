import { ConfigError, loadConfig, startApi } from "@pm/api";
import { migrate } from "@pm/db";
import { isDomainError } from "@pm/domain";
import { AgentConfigError, loadAgentConfig, startAgent } from "@pm/tier-agent";
import { createInProcessJobQueue, loadWorkerConfig, startWorker, WorkerConfigError } from "@pm/worker";

const USAGE = `usage: payload-manager [all|api|worker|agent|migrate] [--config file.yaml]

  all      API + worker + a local tier agent in one process (default; embedded SQLite catalog)
  api      the stateless API (Connect, gRPC, gRPC-Web, REST)
  worker   background jobs (expiry, reaping, tiering)
  agent    the per-host tier agent
  migrate  apply pending catalog migrations (api.catalogUrl / PM_CATALOG_URL) and exit

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
    } else if (["all", "api", "worker", "agent", "migrate"].includes(a)) role = a;
    else {
      console.error(`unknown argument ${JSON.stringify(a)}\n\n${USAGE}`);
      return 1;
    }
  }
  if (configFile === "") {
    console.error(`--config needs a file name\n\n${USAGE}`);
    return 1;
  }

  if (role === "migrate") return runMigrate(configFile, env);

  const running: Stoppable[] = [];
  try {
    // Validate every role's configuration before starting anything.
    const apiConfig = role === "all" || role === "api" ? loadConfig(configFile, env) : undefined;
    const agentConfig = role === "all" || role === "agent" ? loadAgentConfig(configFile, env) : undefined;
    const workerConfig = role === "all" || role === "worker" ? loadWorkerConfig(configFile, env) : undefined;
    if (role === "all" && apiConfig && agentConfig && workerConfig) {
      // One process: the API hands jobs to an in-process queue that runs the worker's handlers
      // (the same ones BullMQ runs in production) on the API's catalog and allocator.
      const queue = createInProcessJobQueue({
        concurrency: workerConfig.concurrency,
        sweepIntervalMs: workerConfig.sweepIntervalMs,
        pressureIntervalMs: workerConfig.pressureIntervalMs,
        streamRetentionIntervalMs: workerConfig.streamRetentionIntervalMs,
      });
      const api = await startApi(apiConfig, { jobs: queue });
      running.push(api);
      // The agent registers with the API it runs beside, wherever that listens.
      running.push(await startAgent({ ...agentConfig, controlPlaneUrl: api.httpUrl }));
      queue.start(api.deps);
      running.push(queue);
    } else if (apiConfig) {
      running.push(await startApi(apiConfig));
    } else if (agentConfig) {
      running.push(await startAgent(agentConfig));
    } else if (workerConfig) {
      running.push(await startWorker(workerConfig));
    }
  } catch (e) {
    if (e instanceof ConfigError || e instanceof AgentConfigError || e instanceof WorkerConfigError) {
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

/**
 * `payload-manager migrate`: brings the catalog database up to the newest schema, prints what it
 * applied. Exit 0 on success, 2 when the configuration (or the catalog URL in it) is invalid, 1
 * when the database cannot be migrated (unreachable, refused).
 */
async function runMigrate(
  configFile: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): Promise<number> {
  let url: string;
  try {
    url = loadConfig(configFile, env).catalogUrl;
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      return 2;
    }
    throw e;
  }
  try {
    const result = await migrate(url);
    console.log(
      result.applied.length > 0
        ? `applied migrations ${result.applied.join(", ")}; the catalog schema is at version ${result.current}`
        : `nothing to apply; the catalog schema is at version ${result.current}`,
    );
    return 0;
  } catch (e) {
    if (isDomainError(e) && e.code === "INVALID_ARGUMENT") {
      console.error(`invalid configuration:\n  - api.catalogUrl: ${e.message}`);
      return 2;
    }
    if (isDomainError(e)) {
      console.error(`migration failed: ${e.message}`);
      return 1;
    }
    throw e;
  }
}
