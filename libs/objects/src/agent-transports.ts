import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { createHttp1UnaryTransport } from "@pm/rpc/node";

/**
 * Transports to tier agents for a Node control-plane process (API or worker). Unary calls to an
 * `http:` agent go over @pm/rpc's hand-written HTTP/1.1 Connect client (keep-alive connections,
 * 0.13–0.21× of connect-node's client CPU per call; ADR 0008, docs/benchmarks.md); streams, and
 * `https:` agents, use Connect over node:http(s) with keep-alive connections shared by every
 * agent. With a `token` (the agents' PM_AGENT_TOKEN), every call carries it as
 * `authorization: Bearer <token>`, which agents that have one require.
 * createRegionAllocation's default `transportFor`.
 */
export function nodeAgentTransports(
  opts: { readonly token?: string | undefined } = {},
): (endpoint: string) => Transport {
  const http = new HttpAgent({ keepAlive: true });
  const https = new HttpsAgent({ keepAlive: true });
  const headers: Record<string, string> = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
  const authorize: Interceptor = (next) => (req) => {
    for (const [name, value] of Object.entries(headers))
      if (!req.header.has(name)) req.header.set(name, value);
    return next(req);
  };
  return (endpoint) => {
    const standard = createConnectTransport({
      baseUrl: endpoint,
      httpVersion: "1.1",
      nodeOptions: { agent: endpoint.startsWith("https:") ? https : http },
      interceptors: [authorize],
    });
    return endpoint.startsWith("http:")
      ? createHttp1UnaryTransport({ baseUrl: endpoint, fallback: standard, headers })
      : standard;
  };
}
