import { createContextValues } from "@connectrpc/connect";
import { type FastRequest, type FastResponse, unaryFastPath as fastPath } from "@pm/rpc/node";
import { kRequest } from "../rpc/context.ts";
import { codeName, toConnectError } from "../rpc/errors.ts";
import { authenticate, type RpcDeps, registerServices } from "../rpc/router.ts";

/**
 * Binary unary Connect calls served without the generic adapter (`@pm/rpc/node`), with the same
 * authentication, error mapping, logs and metrics as the interceptor (rpc/router.ts), in the
 * adapter's order: the body is read and decoded first, then the caller is authenticated.
 * unary-fast-path.int.test.ts holds the two paths to the same answers.
 */
export function unaryFastPath(
  deps: RpcDeps,
  maxBodyBytes: number,
): (req: FastRequest, res: FastResponse) => boolean {
  return fastPath((router) => registerServices(router, deps), maxBodyBytes, {
    begin(entry, req) {
      const h = req.headers;
      const requestId = (h["x-request-id"] as string | undefined) || deps.newRequestId();
      return {
        values() {
          const namespace = authenticate(
            deps.auth,
            entry.service.typeName,
            (h.authorization as string) ?? null,
          );
          return createContextValues().set(kRequest, { namespace, requestId });
        },
        toError: (e) => toConnectError(e, deps.log, requestId),
      };
    },
    done(entry, code, seconds) {
      deps.metrics.observeRequest(
        {
          service: entry.service.typeName,
          method: entry.method.name,
          code: code === undefined ? "OK" : codeName(code),
          transport: "connect",
        },
        seconds,
      );
    },
    onWriteFault(e) {
      // Only a fault in writing the answer or in logging gets here: the call is lost either way.
      deps.log.error({ err: e }, "unary fast path failed to answer; closing the connection");
    },
  });
}
