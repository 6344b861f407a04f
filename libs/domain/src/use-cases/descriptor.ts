import type { Payload } from "../model/payload.ts";
import type { UseCaseDeps } from "./deps.ts";

/** A payload's placement as handed to a client, with a presigned URL for object placements. */
export interface DescriptorView {
  readonly payload: Payload;
  readonly url: string | undefined;
  readonly urlExpiresAt: number | undefined;
}

/**
 * Builds the descriptor view. Object placements get a presigned URL (PUT while ALLOCATED, GET
 * otherwise) that expires no later than `notAfter` (the lease's expiry, for example).
 */
export async function describe(
  deps: UseCaseDeps,
  payload: Payload,
  notAfter: number | undefined,
): Promise<DescriptorView> {
  if (payload.placement.location.kind !== "object" || !deps.presigner) {
    return { payload, url: undefined, urlExpiresAt: undefined };
  }
  const cap = deps.clock.now() + deps.config.objectUrlTtlMs;
  const expiresAt = notAfter === undefined ? cap : Math.min(cap, notAfter);
  const method = payload.state === "ALLOCATED" ? "PUT" : "GET";
  const url = await deps.presigner.presign(payload.placement, method, expiresAt);
  return { payload, url, urlExpiresAt: expiresAt };
}
