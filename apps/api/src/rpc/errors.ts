import { Code, ConnectError } from "@connectrpc/connect";
import { type ErrorCode, isDomainError } from "@pm/domain";
import type { Logger } from "../logger.ts";

/** The one place a wire code is chosen for a domain error (Connect, gRPC, gRPC-Web and REST). */
const CODE_OF: Record<ErrorCode, Code> = {
  INVALID_ARGUMENT: Code.InvalidArgument,
  PAYLOAD_NOT_FOUND: Code.NotFound,
  LEASE_NOT_FOUND: Code.NotFound,
  STREAM_NOT_FOUND: Code.NotFound,
  NOT_FOUND: Code.NotFound,
  INVALID_TRANSITION: Code.FailedPrecondition,
  TIER_UNAVAILABLE: Code.FailedPrecondition,
  LEASE_EXPIRED: Code.FailedPrecondition,
  LEASE_CONFLICT: Code.Aborted,
  PIN_CONFLICT: Code.Aborted,
  ALREADY_EXISTS: Code.AlreadyExists,
  TIER_FULL: Code.ResourceExhausted,
  NO_AGENT: Code.Unavailable,
  UNAVAILABLE: Code.Unavailable,
  DEADLINE_EXCEEDED: Code.DeadlineExceeded,
  UNAUTHENTICATED: Code.Unauthenticated,
  PERMISSION_DENIED: Code.PermissionDenied,
  UNIMPLEMENTED: Code.Unimplemented,
};

/** HTTP status of each code, as gRPC-Gateway maps them (used by the REST surface). */
export const HTTP_STATUS_OF: Record<Code, number> = {
  [Code.Canceled]: 499,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 400,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
  [Code.Unauthenticated]: 401,
};

/** Upper-case gRPC name of a code (`NOT_FOUND`), as REST bodies and metrics label it. */
export const codeName = (c: Code): string => Code[c].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();

/**
 * Maps anything a handler threw to a ConnectError. Domain errors keep their message and carry the
 * domain code as `reason`; ConnectErrors raised by the framework (bad JSON, bad enum) pass through;
 * anything else is a bug: logged once in full with the request id, answered INTERNAL with a
 * generic message.
 */
export function toConnectError(e: unknown, log: Logger, requestId: string): ConnectError {
  if (isDomainError(e)) {
    const err = new ConnectError(e.message, CODE_OF[e.code]);
    err.metadata.set("pm-error-reason", e.code);
    for (const [k, v] of Object.entries(e.details)) err.metadata.set(`pm-error-${k.toLowerCase()}`, v);
    return err;
  }
  if (e instanceof ConnectError) return e;
  log.error({ err: e, requestId }, "unhandled error in request");
  return new ConnectError(
    `internal error (request id ${requestId}); the server logged the details — retry, and report the request id if it persists`,
    Code.Internal,
  );
}
