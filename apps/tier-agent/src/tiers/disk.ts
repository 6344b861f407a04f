import type { AgentConfig } from "../config.ts";
import { FileTier } from "./file-tier.ts";

/** The DISK tier: one preallocated file per payload under the disk root, located by absolute path. */
export function diskTier(
  cfg: AgentConfig["tiers"]["disk"],
  createFile: ((path: string, size: number, mode: number) => Promise<void>) | undefined,
): FileTier {
  return new FileTier({
    tier: "DISK",
    dir: cfg.root,
    prefix: "",
    capacityBytes: cfg.capacityBytes,
    mode: cfg.mode,
    createFile,
    locationOf: (_name, path) => ({ kind: "disk", path, offsetBytes: 0 }),
  });
}
