import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";

/**
 * Transports to tier agents for a Node control-plane process (API or worker): Connect over
 * node:http(s) with keep-alive connections shared by every agent, about a quarter less CPU per
 * call than fetch (docs/benchmarks.md). createRegionAllocation's default `transportFor`.
 */
export function nodeAgentTransports(): (endpoint: string) => Transport {
  const http = new HttpAgent({ keepAlive: true });
  const https = new HttpsAgent({ keepAlive: true });
  return (endpoint) =>
    createConnectTransport({
      baseUrl: endpoint,
      httpVersion: "1.1",
      nodeOptions: { agent: endpoint.startsWith("https:") ? https : http },
    });
}
