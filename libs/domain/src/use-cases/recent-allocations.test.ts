import { describe, expect, it } from "vitest";
import type { Payload } from "../model/payload.ts";
import type { CatalogTx } from "../ports/catalog.ts";
import { commitPayload, deletePayload, reapAbandoned } from "./lifecycle.ts";
import { RecentAllocations } from "./recent-allocations.ts";
import { allocated, domainError, type Harness, harness, MiB, peek } from "./test-harness.ts";

/** Counts the payload rows the use cases read (not the catalog's own reads inside its methods). */
function countReads(h: Harness): { reads: number } {
  const counter = { reads: 0 };
  const counting = new WeakSet<CatalogTx>();
  const wrap = (tx: CatalogTx): CatalogTx => {
    // The memory catalog's autocommit runs a transaction: count each read once.
    if (counting.has(tx)) return tx;
    const counted = new Proxy(tx, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target);
        if (typeof value !== "function") return value;
        if (prop === "getPayload" || prop === "lockPayload") counter.reads++;
        return value.bind(target);
      },
    });
    counting.add(counted);
    return counted;
  };
  const autocommit = h.catalog.autocommit.bind(h.catalog);
  const transaction = h.catalog.transaction.bind(h.catalog);
  h.catalog.autocommit = (fn) => autocommit((tx) => fn(wrap(tx)));
  h.catalog.transaction = (fn) => transaction((tx) => fn(wrap(tx)));
  return counter;
}

const commit = (h: Harness, id: Payload["id"], sizeBytes = 0) =>
  commitPayload(h.deps, h.ctx, { id, sizeBytes, checksum: "" });

describe("CommitPayload with the allocations this process remembers", () => {
  it("commits a payload it allocated without reading the row back", async () => {
    const h = harness({ recentAllocations: new RecentAllocations(100, 60_000) });
    const p = await allocated(h, "RAM");
    const counter = countReads(h);
    h.clock.advance(10);
    const view = await commit(h, p.id);
    expect(counter.reads).toBe(0);
    expect(view.payload).toMatchObject({ id: p.id, state: "ACTIVE", version: 2, updatedAt: h.clock.now() });
    expect(await peek(h, p.id)).toEqual(view.payload);
    // Remembered once: a second commit reads the row, and is refused as before.
    counter.reads = 0;
    await domainError(() => commit(h, p.id), "INVALID_TRANSITION");
    expect(counter.reads).toBe(1);
  });

  const deleted = (h: Harness, id: Payload["id"]) => deletePayload(h.deps, h.ctx, { id, force: false });
  const reaped = async (h: Harness, id: Payload["id"]) => {
    h.clock.advance(h.deps.config.allocationTimeoutMs + 1);
    await reapAbandoned(h.deps, id);
  };
  it.each([
    ["a RAM", "deleted", "RAM", deleted],
    ["a RAM", "reaped", "RAM", reaped],
    // Never uploaded either: the object's HEAD would refuse it, but the stored row says why first.
    ["an OBJECT", "deleted", "OBJECT", deleted],
  ] as const)(
    "refuses %s payload as before when it was %s after it was remembered",
    async (_, __, tier, change) => {
      // The same scenario with and without remembered allocations: same error, same row after.
      const outcomes = [];
      for (const recentAllocations of [undefined, new RecentAllocations(100, 60 * 60_000)]) {
        const h = harness({
          recentAllocations,
          presigner: true,
          capacity: { RAM: 64 * MiB, OBJECT: 64 * MiB },
        });
        const p = await allocated(h, tier);
        await change(h, p.id);
        const before = await peek(h, p.id);
        const e = await commit(h, p.id).then(
          () => undefined,
          (err: { code?: string; message?: string }) => err,
        );
        expect(await peek(h, p.id)).toEqual(before);
        outcomes.push({ code: e?.code, message: e?.message, row: before });
      }
      expect(outcomes[0]!.code).toBeDefined();
      expect(outcomes[1]).toEqual(outcomes[0]);
    },
  );

  it("answers from the stored row when the commit would fail on the remembered one", async () => {
    const h = harness({ recentAllocations: new RecentAllocations(100, 60_000) });
    const p = await allocated(h, "RAM", { sizeBytes: MiB });
    const counter = countReads(h);
    await domainError(() => commit(h, p.id, MiB + 1), "INVALID_ARGUMENT");
    expect(counter.reads).toBe(1);
    const other = await allocated(h, "RAM");
    await domainError(
      () => commitPayload(h.deps, h.other, { id: other.id, sizeBytes: 0, checksum: "" }),
      "PAYLOAD_NOT_FOUND",
    );
    expect((await peek(h, other.id))?.state).toBe("ALLOCATED");
  });

  it("reads the row once the remembered entry is too old or was evicted", async () => {
    const h = harness({ recentAllocations: new RecentAllocations(2, 1_000) });
    const old = await allocated(h, "RAM");
    h.clock.advance(1_001);
    const a = await allocated(h, "RAM");
    const b = await allocated(h, "RAM");
    const c = await allocated(h, "RAM"); // evicts a (old was already pushed out by b)
    const counter = countReads(h);
    for (const p of [old, a, b, c]) expect((await commit(h, p.id)).payload.state).toBe("ACTIVE");
    expect(counter.reads).toBe(2); // old (too old, evicted) and a (evicted)
  });
});

describe("RecentAllocations", () => {
  const payload = (id: string) => ({ id }) as unknown as Payload;

  it("forgets an entry when it is taken, keeps at most `capacity`, and ignores stale ones", () => {
    const r = new RecentAllocations(2, 100);
    r.remember(payload("a"), 0);
    r.remember(payload("b"), 0);
    r.remember(payload("c"), 50);
    expect(r.size).toBe(2);
    expect(r.take(payload("a").id, 50)).toBeUndefined();
    expect(r.take(payload("b").id, 100)?.id).toBe("b");
    expect(r.take(payload("b").id, 100)).toBeUndefined();
    expect(r.take(payload("c").id, 151)).toBeUndefined();
    expect(r.size).toBe(0);
    expect(() => new RecentAllocations(0, 1)).toThrow(RangeError);
  });
});
