import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { createHttp1UnaryTransport } from "@pm/rpc/node";

/**
 * Transports to tier agents for a Node control-plane process (API or worker). Unary calls to an
 * `http:` agent go over @pm/rpc's hand-written HTTP/1.1 Connect client (keep-alive connections,
 * about a third of connect-node's CPU per call; docs/benchmarks.md); streams, and `https:`
 * agents, use Connect over node:http(s) with keep-alive connections shared by every agent.
 * createRegionAllocation's default `transportFor`.
 */
export function nodeAgentTransports(): (endpoint: string) => Transport {
  const http = new HttpAgent({ keepAlive: true });
  const https = new HttpsAgent({ keepAlive: true });
  return (endpoint) => {
    const standard = createConnectTransport({
      baseUrl: endpoint,
      httpVersion: "1.1",
      nodeOptions: { agent: endpoint.startsWith("https:") ? https : http },
    });
    return endpoint.startsWith("http:")
      ? createHttp1UnaryTransport({ baseUrl: endpoint, fallback: standard })
      : standard;
  };
}
