import { describe, expect, it } from "vitest";
import { DEFAULT_DOMAIN_CONFIG } from "../use-cases/deps.ts";
import { leaseDuration } from "./leases.ts";

const limits = { defaultLeaseMs: 20_000, maxLeaseMs: 120_000 };

describe("leaseDuration", () => {
  it("grants the default 20 s when the client asks for none", () => {
    expect(leaseDuration(0, limits)).toBe(20_000);
  });

  it("treats a negative request like no request", () => {
    expect(leaseDuration(-5, limits)).toBe(20_000);
  });

  it("grants what the client asks for under the cap", () => {
    expect(leaseDuration(45_000, limits)).toBe(45_000);
    expect(leaseDuration(1, limits)).toBe(1);
  });

  it("caps at the configured maximum", () => {
    expect(leaseDuration(120_000, limits)).toBe(120_000);
    expect(leaseDuration(120_001, limits)).toBe(120_000);
    expect(leaseDuration(3_600_000, limits)).toBe(120_000);
  });

  it("caps the default too when the configured cap is below it", () => {
    expect(leaseDuration(0, { defaultLeaseMs: 20_000, maxLeaseMs: 5_000 })).toBe(5_000);
  });

  it("ships the product defaults (20 s default, 120 s cap)", () => {
    expect(DEFAULT_DOMAIN_CONFIG.defaultLeaseMs).toBe(20_000);
    expect(DEFAULT_DOMAIN_CONFIG.maxLeaseMs).toBe(120_000);
    expect(DEFAULT_DOMAIN_CONFIG.allocationTimeoutMs).toBe(600_000);
  });
});
