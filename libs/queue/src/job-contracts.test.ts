import { asPayloadId, type DomainJob, jobIdOf } from "@pm/domain";
import { describe, expect, it } from "vitest";
import { bullJobIdOf, domainJobIdOf } from "./bull-job-queue.ts";
import {
  envelopeOf,
  InvalidJobError,
  JOB_NAMES,
  JOBS,
  PERIODIC_JOBS,
  parseJobPayload,
} from "./job-contracts.ts";

const ID = asPayloadId("123e4567-e89b-42d3-a456-426614174000");

function invalid(fn: () => unknown): InvalidJobError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidJobError);
    return e as InvalidJobError;
  }
  throw new Error("expected InvalidJobError, but it parsed");
}

describe("job contracts", () => {
  it("registers every job with its name, periodic ones flagged", () => {
    expect(JOB_NAMES.sort()).toEqual(["finalize-deletion", "move", "pressure", "stream-retention", "sweep"]);
    for (const n of JOB_NAMES) expect(JOBS[n].name).toBe(n);
    expect([...PERIODIC_JOBS].sort()).toEqual(["pressure", "stream-retention", "sweep"]);
  });

  it("accepts a move and lowercases the payload id", () => {
    const p = parseJobPayload("move", {
      payloadId: ID.toUpperCase(),
      toTier: "DISK",
      reason: "evict",
      fsync: false,
      version: 3,
    });
    expect(p).toEqual({ payloadId: ID, toTier: "DISK", reason: "evict", fsync: false, version: 3 });
  });

  it("lists every problem of a malformed move", () => {
    const e = invalid(() =>
      parseJobPayload("move", { payloadId: "../etc", toTier: "TAPE", reason: "spill", version: 0 }),
    );
    expect(e.jobName).toBe("move");
    expect(e.problems.map((p) => p.split(":")[0]).sort()).toEqual([
      "fsync",
      "payloadId",
      "toTier",
      "version",
    ]);
  });

  it("rejects an unknown job name", () => {
    expect(invalid(() => parseJobPayload("defrag", {})).message).toContain("unknown job name");
  });

  it("drops unknown fields instead of failing, for rolling deploys", () => {
    expect(parseJobPayload("finalize-deletion", { payloadId: ID, addedLater: 1 })).toEqual({ payloadId: ID });
  });

  it("derives the domain's deterministic id from the validated job", () => {
    const job: DomainJob = {
      name: "move",
      payloadId: ID,
      toTier: "DISK",
      reason: "spill",
      fsync: true,
      version: 4,
    };
    expect(envelopeOf(job)).toEqual({
      name: "move",
      jobId: jobIdOf(job),
      payload: { payloadId: ID, toTier: "DISK", reason: "spill", fsync: true, version: 4 },
    });
    const shouted = envelopeOf({ ...job, payloadId: asPayloadId(ID.toUpperCase()) });
    expect(shouted.jobId).toBe(jobIdOf(job));
  });

  it("rejects a domain job with a bad payload before it reaches a queue", () => {
    invalid(() => envelopeOf({ name: "finalize-deletion", payloadId: asPayloadId("x") }));
  });
});

describe("BullMQ job ids", () => {
  it("contain no ':' (bullmq rejects them) and map back one-to-one", () => {
    for (const id of [jobIdOf({ name: "finalize-deletion", payloadId: ID }), "a%3Ab:c", "100%", "::"]) {
      const bull = bullJobIdOf(id);
      expect(bull).not.toContain(":");
      expect(domainJobIdOf(bull)).toBe(id);
    }
    expect(bullJobIdOf("a:b")).not.toBe(bullJobIdOf("a%3Ab"));
  });
});
