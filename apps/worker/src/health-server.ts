import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { describeFailure } from "@pm/queue";

export interface HealthServerOptions {
  readonly host: string;
  readonly port: number;
  /** Readiness checks by name (catalog, queue); each rejects when its dependency is down. */
  readonly checks: Readonly<Record<string, () => Promise<void>>>;
  readonly metrics: () => Promise<{ contentType: string; body: string }>;
  /** A check that takes longer than this counts as failed. */
  readonly checkTimeoutMs?: number;
}

export interface HealthServer {
  /** http://host:port */
  readonly url: string;
  close(): Promise<void>;
}

/** `/healthz` (the process is up), `/readyz` (every dependency answers) and `/metrics` (Prometheus). */
export async function startHealthServer(opts: HealthServerOptions): Promise<HealthServer> {
  const timeoutMs = opts.checkTimeoutMs ?? 2_000;
  const server = createServer((req, res) => {
    handle(req, res).catch((e) => {
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end(`internal error: ${describeFailure(e)}\n`);
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end("use GET\n");
      return;
    }
    switch (path) {
      case "/healthz":
        res.writeHead(200, { "content-type": "application/json" }).end('{"status":"ok"}\n');
        return;
      case "/readyz": {
        const results = await Promise.all(
          Object.entries(opts.checks).map(async ([name, check]) => {
            try {
              await withTimeout(check(), timeoutMs, `${name} did not answer within ${timeoutMs} ms`);
              return [name, "ok"] as const;
            } catch (e) {
              return [name, describeFailure(e)] as const;
            }
          }),
        );
        const ok = results.every(([, r]) => r === "ok");
        const body = { status: ok ? "ok" : "unavailable", checks: Object.fromEntries(results) };
        res
          .writeHead(ok ? 200 : 503, { "content-type": "application/json" })
          .end(`${JSON.stringify(body)}\n`);
        return;
      }
      case "/metrics": {
        const m = await opts.metrics();
        res.writeHead(200, { "content-type": m.contentType }).end(m.body);
        return;
      }
      default:
        res
          .writeHead(404, { "content-type": "text/plain" })
          .end("not found: try /healthz, /readyz, /metrics\n");
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
