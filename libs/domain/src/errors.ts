/**
 * The closed set of domain error codes. Every expected failure in the product is one of these;
 * the API maps each to exactly one Connect/gRPC code and HTTP status (apps/api/src/rpc/errors.ts).
 */
export type ErrorCode =
  | "INVALID_ARGUMENT"
  | "PAYLOAD_NOT_FOUND"
  | "LEASE_NOT_FOUND"
  | "STREAM_NOT_FOUND"
  | "NOT_FOUND"
  | "INVALID_TRANSITION"
  | "TIER_UNAVAILABLE"
  | "LEASE_EXPIRED"
  | "LEASE_CONFLICT"
  | "PIN_CONFLICT"
  | "ALREADY_EXISTS"
  | "TIER_FULL"
  | "NO_AGENT"
  | "UNAVAILABLE"
  | "DEADLINE_EXCEEDED"
  | "UNAUTHENTICATED"
  | "PERMISSION_DENIED"
  | "UNIMPLEMENTED";

/** Codes whose operation may succeed if simply retried later. */
const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "UNAVAILABLE",
  "NO_AGENT",
  "DEADLINE_EXCEEDED",
  "LEASE_CONFLICT",
  "TIER_FULL",
]);

/** An expected failure, with a message that tells the caller what to do next. */
export class DomainError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: Readonly<Record<string, string>>;

  constructor(code: ErrorCode, message: string, details: Record<string, string> = {}) {
    super(message);
    this.name = "DomainError";
    this.code = code;
    this.retryable = RETRYABLE.has(code);
    this.details = details;
  }
}

export function isDomainError(e: unknown): e is DomainError {
  return e instanceof DomainError;
}

export const invalidArgument = (message: string, details: Record<string, string> = {}) =>
  new DomainError("INVALID_ARGUMENT", message, details);

export const payloadNotFound = (id: string) =>
  new DomainError(
    "PAYLOAD_NOT_FOUND",
    `payload ${id} does not exist (it was never allocated, or it was deleted or expired); allocate a new payload or check the id`,
    { payloadId: id },
  );
