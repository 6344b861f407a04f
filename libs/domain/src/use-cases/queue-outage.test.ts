import { describe, expect, it } from "vitest";
import { DomainError } from "../errors.ts";
import { deletePayload } from "./lifecycle.ts";
import { sweep } from "./sweeps.ts";
import { committed, harness, leased, peek } from "./test-harness.ts";

describe("when the job queue is down (Redis unreachable)", () => {
  it("a force delete still succeeds; the sweep frees the bytes once the lease ends", async () => {
    const h = harness();
    const p = await committed(h, "RAM");
    await leased(h, p.id, 5_000);
    h.jobs.enqueue = async () => {
      throw new DomainError("UNAVAILABLE", "cannot reach Redis");
    };
    await deletePayload(h.deps, h.ctx, { id: p.id, force: true });
    expect((await peek(h, p.id))?.state).toBe("DELETING");
    expect(h.allocator.has(p.id, "RAM")).toBe(true);

    h.clock.advance(6_000);
    const report = await sweep(h.deps);
    expect(report.finalized).toBe(1);
    expect(await peek(h, p.id)).toBeUndefined();
    expect(h.allocator.has(p.id, "RAM")).toBe(false);
  });

  it("a queue failure that is not an outage (a bug) still surfaces", async () => {
    const h = harness();
    const p = await committed(h, "RAM");
    await leased(h, p.id, 5_000);
    h.jobs.enqueue = async () => {
      throw new Error("bug");
    };
    await expect(deletePayload(h.deps, h.ctx, { id: p.id, force: true })).rejects.toThrow("bug");
  });
});
