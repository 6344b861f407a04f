import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import type { StreamNotifier, UseCaseDeps } from "@pm/domain";
import {
  AgentRegistryService,
  PayloadAdminService,
  PayloadCatalogService,
  PayloadDataService,
  PayloadStreamService,
} from "@pm/rpc";
import type { Logger } from "../logger.ts";
import type { Metrics } from "../metrics.ts";
import { kRequest } from "./context.ts";
import { codeName, toConnectError } from "./errors.ts";
import {
  adminService,
  agentRegistryService,
  catalogService,
  dataService,
  streamService,
} from "./services.ts";

export interface AuthConfig {
  /** Bearer token → tenant namespace. Empty: no authentication, everyone is "default". */
  readonly tokens: Readonly<Record<string, string>>;
  /** Token that agents present to the registry; empty = none required. */
  readonly agentToken: string;
}

export interface RpcDeps {
  readonly useCases: UseCaseDeps;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly auth: AuthConfig;
  readonly heartbeatIntervalMs: number;
  readonly newRequestId: () => string;
  /** Wakes Subscribe feeds; default: one in-process notifier per `useCases` (rpc/stream-service.ts). */
  readonly streamNotifier?: StreamNotifier | undefined;
  /** Aborting it ends every Subscribe feed, so a graceful shutdown does not wait on subscribers. */
  readonly streamShutdown?: AbortSignal | undefined;
}

export const SERVICES = [
  PayloadCatalogService,
  PayloadDataService,
  PayloadAdminService,
  PayloadStreamService,
  AgentRegistryService,
] as const;

export function transportOf(contentType: string | null, header: Headers): string {
  if (header.get("x-pm-transport") === "rest") return "rest";
  if (!contentType) return "unknown";
  if (contentType.startsWith("application/grpc-web")) return "grpc-web";
  if (contentType.startsWith("application/grpc")) return "grpc";
  return "connect";
}

/**
 * The caller's namespace from its `authorization` header (`Bearer <token>`); agents calling the
 * registry present the agent token instead. Throws UNAUTHENTICATED with what to send.
 */
export function authenticate(
  auth: AuthConfig,
  serviceTypeName: string,
  authorization: string | null,
): string {
  const bearer = /^Bearer\s+(.+)$/i.exec(authorization ?? "")?.[1];
  if (serviceTypeName === AgentRegistryService.typeName) {
    if (auth.agentToken && bearer !== auth.agentToken) {
      throw new ConnectError(
        "agent token missing or wrong; configure the agent's control-plane token",
        Code.Unauthenticated,
      );
    }
    return "default";
  }
  if (Object.keys(auth.tokens).length === 0) return "default";
  if (!bearer) {
    throw new ConnectError(
      "missing bearer token: send 'authorization: Bearer <token>'",
      Code.Unauthenticated,
    );
  }
  const ns = auth.tokens[bearer];
  if (!ns) {
    throw new ConnectError(
      "unknown bearer token; ask an operator for a token of your namespace",
      Code.Unauthenticated,
    );
  }
  return ns;
}

/**
 * Resolves the caller's namespace from `authorization: Bearer <token>`, measures the call, and maps
 * every thrown error to its wire code (rpc/errors.ts), for every transport alike.
 */
export function interceptors(deps: RpcDeps): Interceptor[] {
  return [
    (next) => async (req) => {
      const started = performance.now();
      const requestId = req.header.get("x-request-id") || deps.newRequestId();
      const transport = transportOf(req.header.get("content-type"), req.header);
      let code = "OK";
      let streaming = false;
      const observeCall = (c: string) =>
        deps.metrics.observeRequest(
          { service: req.service.typeName, method: req.method.name, code: c, transport },
          (performance.now() - started) / 1000,
        );
      try {
        const namespace = authenticate(deps.auth, req.service.typeName, req.header.get("authorization"));
        req.contextValues.set(kRequest, { namespace, requestId });
        const res = await next(req);
        if (!res.stream) return res;
        // A server stream fails while it is being read, after this call returned: map those errors
        // too, and measure the stream when it ends.
        streaming = true;
        const observe = (c: string) => observeCall(c);
        return {
          ...res,
          message: (async function* () {
            let end = "OK";
            try {
              yield* res.message;
            } catch (e) {
              const err = toConnectError(e, deps.log, requestId);
              end = codeName(err.code);
              throw err;
            } finally {
              observe(end);
            }
          })(),
        };
      } catch (e) {
        const err = toConnectError(e, deps.log, requestId);
        code = codeName(err.code);
        throw err;
      } finally {
        if (!streaming) observeCall(code);
      }
    },
  ];
}

/** Registers every service on a Connect router; shared by the fetch app and the Node gRPC adapter. */
export function registerServices(router: ConnectRouter, deps: RpcDeps): void {
  const uc = deps.useCases;
  router.service(PayloadCatalogService, catalogService(uc));
  router.service(PayloadDataService, dataService(uc));
  router.service(PayloadAdminService, adminService(uc));
  router.service(PayloadStreamService, streamService(deps));
  router.service(AgentRegistryService, agentRegistryService(uc, deps.heartbeatIntervalMs));
}
