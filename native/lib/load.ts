import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { NativeBinding } from "./binding.ts";

/** The ABI the TypeScript side expects; a stale build reports another number. */
export const NATIVE_ABI_VERSION = 2;

/** Environment variable naming an explicit addon file (used by bundles such as the GPU checks). */
export const NATIVE_ADDON_ENV = "PM_NATIVE_ADDON";

export type NativeAddonErrorCode = "NATIVE_ADDON_MISSING" | "NATIVE_ADDON_INVALID";

/** Why the addon could not be used; `code` says which way it failed. */
export class NativeAddonError extends Error {
  readonly code: NativeAddonErrorCode;
  /** Paths that were tried, in order. */
  readonly searched: readonly string[];

  constructor(code: NativeAddonErrorCode, message: string, searched: readonly string[], cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "NativeAddonError";
    this.code = code;
    this.searched = searched;
  }
}

export type NativeLoadResult =
  | { ok: true; addon: NativeBinding; path: string }
  | { ok: false; error: NativeAddonError };

const HOW_TO_BUILD =
  "Build it with `npm install` at the repository root (or `npm rebuild @pm/native`, or `cd native && npx node-gyp rebuild`); " +
  "that needs a C++17 toolchain (g++ or clang, make), python3 and the Node.js headers (offline: nodedir=/usr in .npmrc). " +
  "Without it the tier agent runs with the disk and object tiers only.";

/**
 * Where the addon is looked for: `$PM_NATIVE_ADDON` alone when set; otherwise
 * `native/build/Release/pm_native.node` relative to this file, then
 * `pm_native.node` beside it (the layout of a bundled script, e.g. `.devbin/`).
 */
export function nativeAddonCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const override = env[NATIVE_ADDON_ENV];
  if (override !== undefined && override !== "") return [resolve(override)];
  const here = dirname(fileURLToPath(import.meta.url));
  return [join(here, "..", "build", "Release", "pm_native.node"), join(here, "pm_native.node")];
}

let loaded: { addon: NativeBinding; path: string } | undefined;

/**
 * Loads the addon, or says why it cannot: never throws. The agent uses this to
 * decide whether to offer the RAM and GPU tiers.
 */
export function tryLoadNative(env: NodeJS.ProcessEnv = process.env): NativeLoadResult {
  if (loaded !== undefined) return { ok: true, ...loaded };
  const searched = nativeAddonCandidates(env);
  const found = searched.find((candidate) => existsSync(candidate));
  if (found === undefined) {
    const where = env[NATIVE_ADDON_ENV]
      ? `${NATIVE_ADDON_ENV}=${env[NATIVE_ADDON_ENV]}`
      : searched.join(" or ");
    return {
      ok: false,
      error: new NativeAddonError(
        "NATIVE_ADDON_MISSING",
        `The native addon @pm/native is not built (looked for ${where}). ${HOW_TO_BUILD}`,
        searched,
      ),
    };
  }
  let addon: NativeBinding;
  try {
    addon = createRequire(import.meta.url)(found) as NativeBinding;
  } catch (cause) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    return {
      ok: false,
      error: new NativeAddonError(
        "NATIVE_ADDON_INVALID",
        `Found ${found} but could not load it (${detail}); it was probably built for another Node.js version or platform. ${HOW_TO_BUILD}`,
        searched,
        cause,
      ),
    };
  }
  if (addon.abiVersion !== NATIVE_ABI_VERSION) {
    return {
      ok: false,
      error: new NativeAddonError(
        "NATIVE_ADDON_INVALID",
        `${found} is a stale build (ABI ${String(addon.abiVersion)}, expected ${NATIVE_ABI_VERSION}). ${HOW_TO_BUILD}`,
        searched,
      ),
    };
  }
  loaded = { addon, path: found };
  return { ok: true, ...loaded };
}

/** Loads the addon or throws a {@link NativeAddonError} with an actionable message. */
export function loadNative(env: NodeJS.ProcessEnv = process.env): NativeBinding {
  const result = tryLoadNative(env);
  if (!result.ok) throw result.error;
  return result.addon;
}
