import { describe, expect, it } from "vitest";
import { commitPayload } from "./lifecycle.ts";
import { committed, domainError, harness, peek } from "./test-harness.ts";
import { movePayload } from "./tiering.ts";

describe("a late commit racing a move", () => {
  it("is INVALID_TRANSITION while the payload is SPILLING, and the move completes untouched", async () => {
    const h = harness({ capacity: { RAM: 1 << 30, DISK: 1 << 30 } });
    const p = await committed(h, "RAM");
    let during: unknown;
    h.allocator.beforeCopy = async () => {
      during = await domainError(
        () => commitPayload(h.deps, h.ctx, { id: p.id, sizeBytes: 0, checksum: "" }),
        "INVALID_TRANSITION",
      );
      expect((await peek(h, p.id))?.state).toBe("SPILLING");
    };
    const moved = await movePayload(h.deps, h.ctx, {
      id: p.id,
      toTier: "DISK",
      fsync: false,
      waitForLeases: false,
      direction: "spill",
    });
    expect(during).toBeDefined();
    expect(moved).toMatchObject({ state: "DURABLE", version: p.version + 2 });
    expect((await peek(h, p.id))?.placement.tier).toBe("DISK");
  });
});
