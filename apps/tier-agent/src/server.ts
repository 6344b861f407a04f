import { createHash, timingSafeEqual } from "node:crypto";
import type http from "node:http";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createContextValues,
  type Interceptor,
} from "@connectrpc/connect";
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
 *
 * With a `token` (the agent token, PM_AGENT_TOKEN), every call must carry
 * `authorization: Bearer <token>` on either path, or is refused UNAUTHENTICATED before the
 * service sees it: whoever can reach the agent's port could otherwise create, free and copy
 * regions.
 */
export function agentRequestHandler(
  agent: TierAgent,
  log: Logger,
  opts: { readonly token?: string } = {},
): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  const service = tierAgentService(agent);
  const routes = (r: ConnectRouter) => r.service(TierAgentService, service);
  const check = bearerCheck(opts.token ?? "");
  const authenticate: Interceptor = (next) => (req) => {
    check(req.header.get("authorization"));
    return next(req);
  };
  const adapter = connectNodeAdapter({
    routes,
    readMaxBytes: AGENT_MAX_BODY_BYTES,
    interceptors: [authenticate],
  });
  const fast = unaryFastPath(routes, AGENT_MAX_BODY_BYTES, {
    begin: (_, req) => ({
      values: () => {
        const authorization = req.headers.authorization;
        check(typeof authorization === "string" ? authorization : null);
        return createContextValues();
      },
      toError: adapterError,
    }),
    onWriteFault: (e) =>
      log.warn({ err: (e as Error).message }, "failed to answer a call; closing the connection"),
  });
  return (req, res) => {
    if (!fast(req, res)) adapter(req, res);
  };
}

const digest = (s: string) => createHash("sha256").update(s).digest();

/** Throws UNAUTHENTICATED unless `authorization` is `Bearer <token>` (any header passes without a token). */
function bearerCheck(token: string): (authorization: string | null) => void {
  if (!token) return () => undefined;
  const want = digest(token);
  return (authorization) => {
    const bearer = /^Bearer\s+(.+)$/i.exec(authorization ?? "")?.[1];
    // Compared as digests: same length whatever was sent, and in constant time.
    if (bearer === undefined || !timingSafeEqual(digest(bearer), want)) {
      throw new ConnectError(
        bearer === undefined
          ? "missing agent token: send 'authorization: Bearer <token>' with the agents' PM_AGENT_TOKEN (API auth.agentToken, worker agentToken)"
          : "wrong agent token: the API's auth.agentToken and the worker's agentToken must equal the agent's PM_AGENT_TOKEN",
        Code.Unauthenticated,
      );
    }
  };
}
