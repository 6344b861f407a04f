import { asPayloadId, type DomainJob, isUuidText, jobIdOf, type Tier } from "@pm/domain";
import { z } from "zod";

const TIERS = ["GPU", "RAM", "DISK", "OBJECT", "VOID"] as const satisfies readonly Tier[];
const MOVE_REASONS = ["spill", "promote", "prefetch", "evict"] as const;

const payloadId = z
  .string()
  .refine(isUuidText, { message: "must be canonical UUID text (8-4-4-4-12 hex)" })
  .transform((s) => asPayloadId(s.toLowerCase()));

/** A job kind: its name and the zod schema its payload must satisfy, on enqueue and on execution. */
export interface JobContract<N extends string, S extends z.ZodType> {
  readonly name: N;
  readonly schema: S;
  /** Run by the runner on a fixed interval rather than enqueued by the domain. */
  readonly periodic: boolean;
}

function contract<N extends string, S extends z.ZodType>(
  name: N,
  schema: S,
  periodic = false,
): JobContract<N, S> {
  return { name, schema, periodic };
}

/**
 * Every job the worker runs. Schemas strip unknown fields rather than rejecting them, so a newer
 * producer adding a field does not make an older worker fail its jobs during a rolling deploy.
 */
export const JOBS = {
  "finalize-deletion": contract("finalize-deletion", z.object({ payloadId })),
  move: contract(
    "move",
    z.object({
      payloadId,
      toTier: z.enum(TIERS),
      reason: z.enum(MOVE_REASONS),
      fsync: z.boolean(),
      version: z.number().int().positive(),
    }),
  ),
  sweep: contract("sweep", z.object({}), true),
  pressure: contract("pressure", z.object({}), true),
  "stream-retention": contract("stream-retention", z.object({}), true),
} as const;

export type JobName = keyof typeof JOBS;
/** Jobs the runners start on an interval (JOBS[name].periodic). */
export type PeriodicJobName = "sweep" | "pressure" | "stream-retention";
/** A job's payload after validation. */
export type JobPayload<N extends JobName> = z.output<(typeof JOBS)[N]["schema"]>;

export const JOB_NAMES = Object.keys(JOBS) as JobName[];
export const PERIODIC_JOBS: readonly PeriodicJobName[] = JOB_NAMES.filter(
  (n): n is PeriodicJobName => JOBS[n].periodic,
);

export function isJobName(name: string): name is JobName {
  return Object.hasOwn(JOBS, name);
}

/**
 * A job whose name or payload does not match its contract. Always a bug in the producer, never
 * fixed by retrying: runners fail such a job at once (BullMQ's UnrecoverableError).
 */
export class InvalidJobError extends Error {
  constructor(
    readonly jobName: string,
    readonly problems: readonly string[],
  ) {
    super(`invalid ${jobName} job: ${problems.join("; ")}`);
    this.name = "InvalidJobError";
  }
}

/** Validates `data` against the contract of job `name`; throws InvalidJobError listing every problem. */
export function parseJobPayload<N extends JobName>(name: N, data: unknown): JobPayload<N>;
export function parseJobPayload(name: string, data: unknown): JobPayload<JobName>;
export function parseJobPayload(name: string, data: unknown): JobPayload<JobName> {
  if (!isJobName(name))
    throw new InvalidJobError(name, [`unknown job name (known: ${JOB_NAMES.join(", ")})`]);
  const parsed = JOBS[name].schema.safeParse(data);
  if (!parsed.success) {
    throw new InvalidJobError(
      name,
      parsed.error.issues.map((i) => `${i.path.join(".") || "(payload)"}: ${i.message}`),
    );
  }
  return parsed.data;
}

/** A validated domain job split into what a runner stores: name, payload and deterministic id. */
export interface JobEnvelope {
  readonly name: JobName;
  readonly payload: JobPayload<JobName>;
  readonly jobId: string;
}

/** Validates a domain job and derives its deterministic id (`jobIdOf`). */
export function envelopeOf(job: DomainJob): JobEnvelope {
  const { name, ...data } = job;
  const payload = parseJobPayload(name, data);
  // The id comes from the validated (lowercased) payload, so two spellings of one id collapse.
  return { name, payload, jobId: jobIdOf({ name, ...payload } as DomainJob) };
}
