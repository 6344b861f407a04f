/** Storage tiers, fastest first. VOID is not a place: moving to it means deleting. */
export type Tier = "GPU" | "RAM" | "DISK" | "OBJECT" | "VOID";
export type StorageTier = Exclude<Tier, "VOID">;

export const STORAGE_TIERS: readonly StorageTier[] = ["GPU", "RAM", "DISK", "OBJECT"];

const RANK: Record<Tier, number> = { GPU: 1, RAM: 2, DISK: 3, OBJECT: 4, VOID: 5 };

/** Wire number of a tier (core.v1.Tier). */
export const tierRank = (t: Tier): number => RANK[t];

/** True when `a` is a strictly faster tier than `b`. */
export const isFaster = (a: Tier, b: Tier): boolean => RANK[a] < RANK[b];

/** Durable tiers keep bytes across a host restart. */
export const isDurableTier = (t: Tier): boolean => t === "DISK" || t === "OBJECT";

/** The default spill destination of a tier (GPU → RAM → DISK → OBJECT → VOID). */
export function nextSlower(t: StorageTier): Tier {
  switch (t) {
    case "GPU":
      return "RAM";
    case "RAM":
      return "DISK";
    case "DISK":
      return "OBJECT";
    case "OBJECT":
      return "VOID";
  }
}
