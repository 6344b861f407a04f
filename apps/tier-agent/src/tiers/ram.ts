import type { AgentConfig } from "../config.ts";
import { FileTier } from "./file-tier.ts";

/**
 * The RAM tier: POSIX shared-memory segments. In /dev/shm a region's location is its shm name
 * (`/pm-<uuid>.bin`, what shm_open takes); in another directory (a tmpfs mounted `huge=always` for
 * huge pages) the location is the absolute path, which clients map the same way.
 */
export function ramTier(
  cfg: AgentConfig["tiers"]["ram"],
  createFile: ((path: string, size: number, mode: number) => Promise<void>) | undefined,
): FileTier {
  const inDevShm = cfg.dir.replace(/\/+$/, "") === "/dev/shm";
  return new FileTier({
    tier: "RAM",
    dir: cfg.dir,
    prefix: cfg.prefix,
    capacityBytes: cfg.capacityBytes,
    mode: cfg.mode,
    createFile,
    locationOf: (name, path) => ({ kind: "ram", shmName: inDevShm ? `/${name}` : path }),
  });
}
