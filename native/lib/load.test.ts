import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { NATIVE_ADDON_ENV, nativeAddonCandidates, tryLoadNative } from "./load.ts";

describe("tryLoadNative", () => {
  it("reports a missing addon with NATIVE_ADDON_MISSING and how to build it", () => {
    const missing = join(tmpdir(), "definitely-not-here", "pm_native.node");
    const result = tryLoadNative({ [NATIVE_ADDON_ENV]: missing });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.code).toBe("NATIVE_ADDON_MISSING");
    expect(result.error.message).toContain("npm install");
    expect(result.error.message).toContain("C++17 toolchain");
    expect(result.error.searched).toEqual([missing]);
  });

  it("reports a file that is not a loadable addon with NATIVE_ADDON_INVALID", () => {
    const bogus = join(mkdtempSync(join(tmpdir(), "pm-native-load-")), "pm_native.node");
    writeFileSync(bogus, "not an ELF file");
    const result = tryLoadNative({ [NATIVE_ADDON_ENV]: bogus });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.code).toBe("NATIVE_ADDON_INVALID");
  });

  it("looks in build/Release, then beside the (bundled) script", () => {
    const [built, beside] = nativeAddonCandidates({});
    expect(built).toMatch(/native\/build\/Release\/pm_native\.node$/);
    expect(beside).toMatch(/native\/lib\/pm_native\.node$/);
  });
});
