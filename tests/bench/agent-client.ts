// The control plane's client to a tier agent (PM_BENCH=agent-client): the transport the API and the
// workers use (nodeAgentTransports: @pm/rpc's hand-written HTTP/1.1 client for unary calls) against
// connect-node's Connect transport over keep-alive node:http, the baseline and what they used before.
// Both call one real tier agent process (`payload-manager agent`); the call is ListRegions on an
// agent that holds no regions, so what is measured is the call, not the agent's work. The figure
// is this process's CPU per call (the client) next to the agent's, at 1 and 16 calls in flight.

import { Agent as HttpAgent } from "node:http";
import { type Client, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { nodeAgentTransports } from "@pm/objects";
import { TierAgentService } from "@pm/rpc";
import { cpuSeconds, startControlPlane } from "./control-plane.ts";
import { closedLoop, fmt, table } from "./lib/stats.ts";

const SECONDS = Number(process.env.PM_BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.PM_BENCH_ROUNDS ?? 3);

type AgentClient = Client<typeof TierAgentService>;

export async function agentClientBench(): Promise<void> {
  const cp = await startControlPlane();
  try {
    const clients: [string, AgentClient][] = [
      ["connect-node transport (baseline)", createClient(TierAgentService, baselineTransport(cp.agentUrl))],
      [
        "nodeAgentTransports (HTTP/1.1 unary)",
        createClient(TierAgentService, nodeAgentTransports()(cp.agentUrl)),
      ],
    ];
    const rows: (string | number)[][] = [];
    for (const concurrency of [1, 16]) {
      // Per round, both clients back to back, so the ratio compares figures taken moments apart.
      const perRound: { client: number; agent: number; rate: number; p99: number }[][] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const out = [];
        for (const [, c] of clients) {
          const op = async () => {
            await c.listRegions({}, { timeoutMs: 5_000 });
          };
          await closedLoop(op, concurrency, 0.5);
          const cpu0 = process.cpuUsage();
          const agent0 = cpuSeconds(cp.pids.agent);
          const r = await closedLoop(op, concurrency, SECONDS);
          const cpu = process.cpuUsage(cpu0);
          out.push({
            client: (cpu.user + cpu.system) / r.ops,
            agent: ((cpuSeconds(cp.pids.agent) - agent0) * 1e6) / r.ops,
            rate: r.opsPerSec,
            p99: r.p99Ms,
          });
        }
        perRound.push(out);
      }
      // The median round by the client-CPU ratio (lean ÷ baseline).
      const ratio = (r: (typeof perRound)[number]) => r[1]!.client / r[0]!.client;
      const sorted = [...perRound].sort((a, b) => ratio(a) - ratio(b));
      const median = sorted[Math.floor(sorted.length / 2)]!;
      const range = `${fmt(ratio(sorted[0]!))}–${fmt(ratio(sorted.at(-1)!))}`;
      for (const [i, [name]] of clients.entries()) {
        const m = median[i]!;
        rows.push([
          name,
          String(concurrency),
          m.rate,
          m.p99,
          m.client,
          m.agent,
          i === 0 ? "1.00x" : `${fmt(ratio(median))}x (${range})`,
        ]);
      }
    }
    table(
      `Control plane → tier agent client (ListRegions on an empty agent, ${SECONDS}s per cell, ${ROUNDS} round(s), median round by the client-CPU ratio, with the range)`,
      [
        "client",
        "in flight",
        "calls/s",
        "p99 ms",
        "client CPU µs/call",
        "agent CPU µs/call",
        "client CPU ÷ baseline",
      ],
      rows,
    );
  } finally {
    await cp.close();
  }
}

/** What nodeAgentTransports gave before: Connect over node:http with keep-alive connections. */
function baselineTransport(baseUrl: string) {
  return createConnectTransport({
    baseUrl,
    httpVersion: "1.1",
    nodeOptions: { agent: new HttpAgent({ keepAlive: true }) },
  });
}
