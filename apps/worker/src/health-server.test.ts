import { DomainError } from "@pm/domain";
import { afterEach, describe, expect, it } from "vitest";
import { type HealthServer, startHealthServer } from "./health-server.ts";

let server: HealthServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(checks: Record<string, () => Promise<void>>) {
  server = await startHealthServer({
    host: "127.0.0.1",
    port: 0,
    checks,
    metrics: async () => ({ contentType: "text/plain; version=0.0.4", body: "pm_up 1\n" }),
    checkTimeoutMs: 200,
  });
  return server;
}

describe("health server", () => {
  it("answers /healthz and /metrics", async () => {
    const s = await start({});
    const health = await fetch(`${s.url}/healthz`);
    expect([health.status, await health.json()]).toEqual([200, { status: "ok" }]);
    const metrics = await fetch(`${s.url}/metrics`);
    expect([metrics.status, metrics.headers.get("content-type"), await metrics.text()]).toEqual([
      200,
      "text/plain; version=0.0.4",
      "pm_up 1\n",
    ]);
  });

  it("is ready only when every dependency answers, and says which one does not", async () => {
    let redisUp = true;
    const s = await start({
      catalog: async () => {},
      queue: async () => {
        if (!redisUp) throw new DomainError("UNAVAILABLE", "Redis is unreachable");
      },
    });
    const up = await fetch(`${s.url}/readyz`);
    expect([up.status, await up.json()]).toEqual([
      200,
      { status: "ok", checks: { catalog: "ok", queue: "ok" } },
    ]);
    redisUp = false;
    const down = await fetch(`${s.url}/readyz`);
    expect([down.status, await down.json()]).toEqual([
      503,
      { status: "unavailable", checks: { catalog: "ok", queue: "UNAVAILABLE: Redis is unreachable" } },
    ]);
  });

  it("counts a check that hangs as failed", async () => {
    const s = await start({ catalog: () => new Promise(() => {}) });
    const hung = await fetch(`${s.url}/readyz`);
    expect([hung.status, await hung.json()]).toEqual([
      503,
      { status: "unavailable", checks: { catalog: "Error: catalog did not answer within 200 ms" } },
    ]);
  });

  it("answers 404 for other paths and 405 for other methods", async () => {
    const s = await start({});
    expect((await fetch(`${s.url}/nope`)).status).toBe(404);
    expect((await fetch(`${s.url}/healthz`, { method: "POST" })).status).toBe(405);
  });
});
