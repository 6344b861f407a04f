import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { RequestContext } from "@pm/domain";

/** The caller's tenant, set by the auth interceptor from the bearer token. */
export const kRequest = createContextKey<RequestContext & { requestId: string }>(
  { namespace: "default", requestId: "" },
  { description: "payload-manager request context" },
);

export const requestOf = (ctx: HandlerContext) => ctx.values.get(kRequest);
