import type http from "node:http";
import { ConnectError, type ConnectRouter, createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { TierAgentService } from "@pm/rpc";
import { adapterError, unaryFastPath } from "@pm/rpc/node";
import type { Logger } from "./registration.ts";
import { tierAgentService } from "./service.ts";
import type { TierAgent } from "./tier-agent.ts";

/** Largest request body the agent reads (a CreateRegions of 256 regions is about 16 KiB). */
export const AGENT_MAX_BODY_BYTES = 4 << 20;

/**
 * The agent's HTTP request handler: binary unary Connect calls (all the API and workers send)
 * take the fast path of `@pm/rpc/node`, which skips the generic adapter's per-call machinery,
 * about a third of the agent's CPU under allocation load; everything else (JSON, gRPC-Web,
 * deadlines) goes to the Connect adapter. Both serve the same service implementation;
 * server.int.test.ts holds the two to the same answers.
 */
export function agentRequestHandler(
  agent: TierAgent,
  log: Logger,
): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  const service = tierAgentService(agent);
  const routes = (r: ConnectRouter) => r.service(TierAgentService, service);
  const adapter = connectNodeAdapter({ routes, readMaxBytes: AGENT_MAX_BODY_BYTES });
  const fast = unaryFastPath(routes, AGENT_MAX_BODY_BYTES, {
    begin: () => ({ values: () => createContextValues(), toError: adapterError }),
    onWriteFault: (e) =>
      log.warn({ err: (e as Error).message }, "failed to answer a call; closing the connection"),
  });
  return (req, res) => {
    if (!fast(req, res)) adapter(req, res);
  };
}
