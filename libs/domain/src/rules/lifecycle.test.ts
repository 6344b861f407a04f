import { describe, expect, it } from "vitest";
import { DomainError } from "../errors.ts";
import { asPayloadId } from "../model/ids.ts";
import { DEFAULT_EVICTION_POLICY, type Payload, type PayloadState } from "../model/payload.ts";
import type { StorageTier } from "../model/tier.ts";
import { canTransition, settledState, transition } from "./lifecycle.ts";

const STATES: PayloadState[] = ["ALLOCATED", "ACTIVE", "SPILLING", "DURABLE", "DELETING", "EXPIRED"];

// The full table from product.md §4: everything not listed here is illegal.
const LEGAL = new Set([
  "ALLOCATED>ACTIVE",
  "ALLOCATED>DURABLE",
  "ALLOCATED>DELETING",
  "ALLOCATED>EXPIRED",
  "ACTIVE>SPILLING",
  "ACTIVE>DELETING",
  "ACTIVE>EXPIRED",
  "DURABLE>SPILLING",
  "DURABLE>DELETING",
  "DURABLE>EXPIRED",
  "SPILLING>ACTIVE",
  "SPILLING>DURABLE",
  "SPILLING>DELETING",
  "SPILLING>EXPIRED",
  "EXPIRED>DELETING",
]);

const pairs = STATES.flatMap((from) => STATES.map((to) => [from, to] as const));

function payload(state: PayloadState, tier: StorageTier = "RAM"): Payload {
  return {
    id: asPayloadId("00000000-0000-4000-8000-000000000001"),
    namespace: "ns",
    sizeBytes: 10,
    state,
    version: 7,
    placement: {
      tier,
      agentId: "a",
      host: "h",
      location: { kind: "ram", shmName: "/pm-x" },
      lengthBytes: 10,
    },
    pendingPlacement: undefined,
    createdAt: 0,
    updatedAt: 0,
    expiresAt: undefined,
    lastAccessAt: 0,
    noEvict: false,
    evictionPolicy: DEFAULT_EVICTION_POLICY,
    checksum: undefined,
  };
}

describe("canTransition", () => {
  it.each(pairs)("%s -> %s follows the lifecycle table", (from, to) => {
    expect(canTransition(from, to)).toBe(LEGAL.has(`${from}>${to}`));
  });

  it("DELETING is terminal", () => {
    for (const to of STATES) expect(canTransition("DELETING", to)).toBe(false);
  });

  it("a committed payload can never go back to ALLOCATED", () => {
    for (const from of STATES) expect(canTransition(from, "ALLOCATED")).toBe(false);
  });
});

describe("settledState", () => {
  it.each<[StorageTier, PayloadState]>([
    ["GPU", "ACTIVE"],
    ["RAM", "ACTIVE"],
    ["DISK", "DURABLE"],
    ["OBJECT", "DURABLE"],
  ])("%s settles %s", (tier, state) => {
    expect(settledState(payload("ALLOCATED", tier))).toBe(state);
  });
});

describe("transition", () => {
  it("changes state, bumps the version by one and stamps updatedAt", () => {
    const next = transition(payload("ACTIVE"), "SPILLING", 1234, "spill");
    expect(next.state).toBe("SPILLING");
    expect(next.version).toBe(8);
    expect(next.updatedAt).toBe(1234);
  });

  it("refuses an illegal change with INVALID_TRANSITION naming the state", () => {
    const p = payload("DELETING");
    let err: unknown;
    try {
      transition(p, "ACTIVE", 1, "commit");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DomainError);
    const e = err as DomainError;
    expect(e.code).toBe("INVALID_TRANSITION");
    expect(e.details).toEqual({ payloadId: p.id, state: "DELETING" });
    expect(e.message).toContain("it is DELETING");
    expect(e.message).toContain("allocate a new payload");
  });

  it.each<[PayloadState, string, string]>([
    ["ALLOCATED", "spill", "commit it first"],
    ["SPILLING", "spill", "retry when it finishes"],
    ["ACTIVE", "commit", "already committed"],
    ["EXPIRED", "commit", "being deleted"],
  ])("from %s (%s) the message says what to do: %s", (state, action, phrase) => {
    const to: PayloadState =
      state === "ALLOCATED" ? "SPILLING" : state === "SPILLING" ? "SPILLING" : "ACTIVE";
    expect(() => transition(payload(state), to, 1, action)).toThrow(phrase);
  });
});
