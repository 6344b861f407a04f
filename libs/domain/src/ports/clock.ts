/** Time comes in through this port so that rules and use cases are testable with a fake clock. */
export interface Clock {
  /** Unix epoch milliseconds. */
  now(): number;
}

/** Ids come in through this port (random UUIDv4 in production, sequential in tests). */
export interface IdGenerator {
  /** A new canonical lowercase UUID text. */
  newId(): string;
}
