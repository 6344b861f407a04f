import { DomainError } from "../errors.ts";
import type { Payload, PayloadState } from "../model/payload.ts";
import { isDurableTier } from "../model/tier.ts";

/** Which state changes are legal. Anything else is INVALID_TRANSITION (FAILED_PRECONDITION). */
const ALLOWED: Record<PayloadState, readonly PayloadState[]> = {
  ALLOCATED: ["ACTIVE", "DURABLE", "DELETING", "EXPIRED"],
  ACTIVE: ["SPILLING", "DELETING", "EXPIRED"],
  DURABLE: ["SPILLING", "DELETING", "EXPIRED"],
  SPILLING: ["ACTIVE", "DURABLE", "DELETING", "EXPIRED"],
  DELETING: [],
  EXPIRED: ["DELETING"],
};

export function canTransition(from: PayloadState, to: PayloadState): boolean {
  return ALLOWED[from].includes(to);
}

/** The readable state a payload settles in on its tier once committed or moved. */
export function settledState(p: Pick<Payload, "placement">): PayloadState {
  return isDurableTier(p.placement.tier) ? "DURABLE" : "ACTIVE";
}

/**
 * Returns `p` moved to state `to` with version +1, or throws INVALID_TRANSITION with a message
 * saying what state the payload is in and what the caller can do.
 */
export function transition(p: Payload, to: PayloadState, now: number, action: string): Payload {
  if (!canTransition(p.state, to)) throw invalidTransition(p, action);
  return { ...p, state: to, version: p.version + 1, updatedAt: now };
}

/** Throws INVALID_TRANSITION unless the payload is in `state` (for actions only one state allows). */
export function requireState(p: Payload, state: PayloadState, action: string): void {
  if (p.state !== state) throw invalidTransition(p, action);
}

function invalidTransition(p: Payload, action: string): DomainError {
  return new DomainError(
    "INVALID_TRANSITION",
    `cannot ${action} payload ${p.id}: it is ${p.state}${hint(p.state, action)}`,
    {
      payloadId: p.id,
      state: p.state,
    },
  );
}

function hint(state: PayloadState, action: string): string {
  switch (state) {
    case "ALLOCATED":
      return "; commit it first";
    case "DELETING":
    case "EXPIRED":
      return "; it is being deleted, allocate a new payload";
    case "SPILLING":
      return "; a move is in flight, retry when it finishes";
    default:
      return action === "commit" ? "; it was already committed" : "";
  }
}
