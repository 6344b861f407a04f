import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadWorkerConfig, WorkerConfigError } from "./config.ts";

function yamlFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "pm-worker-config-"));
  const file = join(dir, "config.yaml");
  writeFileSync(file, text);
  return file;
}

function problems(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(WorkerConfigError);
    return (e as WorkerConfigError).problems;
  }
  throw new Error("expected WorkerConfigError, but the configuration loaded");
}

describe("loadWorkerConfig", () => {
  it("has documented defaults", () => {
    expect(loadWorkerConfig(undefined, {})).toEqual({
      redisUrl: "redis://127.0.0.1:6379",
      catalogUrl: "sqlite:./.payload-manager/catalog.db",
      logLevel: "info",
      concurrency: 8,
      sweepIntervalMs: 1_000,
      pressureIntervalMs: 2_000,
      streamRetentionIntervalMs: 30_000,
      queue: {
        name: "payload-manager",
        prefix: "pm",
        attempts: 5,
        backoffMs: 1_000,
        commandTimeoutMs: 5_000,
      },
      metrics: { host: "127.0.0.1", port: 9464 },
      allocationTimeoutMs: 600_000,
      agentTtlMs: 15_000,
      moveTimeoutMs: 1_800_000,
      agentToken: "",
    });
  });

  it("takes the agent token from PM_AGENT_TOKEN, as the API and the agents do", () => {
    expect(loadWorkerConfig(undefined, { PM_AGENT_TOKEN: "s3cret" }).agentToken).toBe("s3cret");
  });

  it("reads the worker: section of the YAML file, and PM_* variables override it", () => {
    const file = yamlFile(`
api:
  httpPort: 8080
worker:
  concurrency: 2
  sweepIntervalMs: 500
  queue:
    name: jobs
  metrics:
    port: 9999
`);
    const c = loadWorkerConfig(file, {
      PM_REDIS_URL: "redis://redis:6379/2",
      PM_CATALOG_URL: "postgres://pm@db:5432/pm",
      PM_WORKER_CONCURRENCY: "16",
      PM_QUEUE_PREFIX: "prod",
      PM_PRESSURE_INTERVAL_MS: "0",
      PM_STREAM_RETENTION_INTERVAL_MS: "0",
    });
    expect(c).toMatchObject({
      redisUrl: "redis://redis:6379/2",
      catalogUrl: "postgres://pm@db:5432/pm",
      concurrency: 16,
      sweepIntervalMs: 500,
      pressureIntervalMs: 0,
      streamRetentionIntervalMs: 0,
      queue: { name: "jobs", prefix: "prod", attempts: 5 },
      metrics: { host: "127.0.0.1", port: 9999 },
    });
  });

  it("lists every problem at once", () => {
    const file = yamlFile(`
worker:
  redisUrl: http://localhost:6379
  concurrency: 0
  queue:
    name: "a:b"
  colour: blue
`);
    const found = problems(() => loadWorkerConfig(file, { PM_SWEEP_INTERVAL_MS: "soon" }));
    expect(found).toHaveLength(5);
    expect(found.join("\n")).toMatch(/PM_SWEEP_INTERVAL_MS=soon is not a number/);
    expect(found.join("\n")).toMatch(/worker\.redisUrl: must be a redis:\/\/ or rediss:\/\/ URL/);
    expect(found.join("\n")).toMatch(/worker\.concurrency/);
    expect(found.join("\n")).toMatch(/worker\.queue\.name/);
    expect(found.join("\n")).toMatch(/colour/);
  });

  it("rejects a catalog URL the worker cannot open", () => {
    expect(problems(() => loadWorkerConfig(undefined, { PM_CATALOG_URL: "mysql://db/pm" }))).toEqual([
      expect.stringMatching(/^worker\.catalogUrl: database URL scheme "mysql:" is not supported/),
    ]);
  });

  it("says which file it could not read", () => {
    expect(problems(() => loadWorkerConfig("/nonexistent/pm.yaml", {}))[0]).toMatch(
      /cannot read config file \/nonexistent\/pm\.yaml/,
    );
  });

  it("rejects a worker: section that is not a mapping", () => {
    expect(problems(() => loadWorkerConfig(yamlFile("worker: 3\n"), {}))[0]).toMatch(/must be a mapping/);
  });
});
