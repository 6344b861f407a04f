import { payloadNotFound } from "../errors.ts";
import type { PayloadId } from "../model/ids.ts";
import type { Payload } from "../model/payload.ts";
import type { CatalogTx } from "../ports/catalog.ts";
import type { RequestContext } from "./deps.ts";

/**
 * Reads (and with `lock`, row-locks) a payload the caller may see. A payload of another
 * namespace is reported as not found, so tenants cannot probe each other's ids. `ctx` undefined
 * is the system itself (worker jobs), which sees every namespace.
 */
export async function requirePayload(
  tx: CatalogTx,
  ctx: RequestContext | undefined,
  id: PayloadId,
  lock: boolean,
): Promise<Payload> {
  const p = lock ? await tx.lockPayload(id) : await tx.getPayload(id);
  if (!p || (ctx && p.namespace !== ctx.namespace)) throw payloadNotFound(id);
  return p;
}
