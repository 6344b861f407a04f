import { describe, expect, it } from "vitest";
import type { Payload } from "../model/payload.ts";
import { MAX_PAYLOAD_BYTES } from "../rules/validation.ts";
import { addLineage, getLineage, listPayloads, updateMetadata } from "./catalog.ts";
import { acquireReadLease, releaseLease } from "./leases.ts";
import {
  allocatePayload,
  commitPayload,
  deletePayload,
  expirePayload,
  finalizeDeletion,
  reapAbandoned,
  resolveSnapshot,
} from "./lifecycle.ts";
import {
  allocated,
  allocateRequest,
  committed,
  domainError,
  GiB_BYTES,
  type Harness,
  harness,
  leased,
  MiB,
  peek,
  peekLease,
  policy,
} from "./test-harness.ts";
import { pin } from "./tiering.ts";

async function listed(h: Harness, ctx = h.ctx) {
  return listPayloads(h.deps, ctx, { tier: undefined, state: undefined, pageSize: 0, pageToken: "" });
}

async function expectNothingWritten(h: Harness) {
  expect((await listed(h)).total).toBe(0);
  expect(h.allocator.regions.size).toBe(0);
}

describe("allocatePayload", () => {
  it("stores the payload ALLOCATED at version 1 in the caller's namespace with a writable region", async () => {
    const h = harness();
    const view = await allocatePayload(h.deps, h.ctx, allocateRequest({ sizeBytes: 4 * MiB, tier: "RAM" }));
    const p = view.payload;
    expect(p.state).toBe("ALLOCATED");
    expect(p.version).toBe(1);
    expect(p.namespace).toBe("team-a");
    expect(p.sizeBytes).toBe(4 * MiB);
    expect(p.placement.tier).toBe("RAM");
    expect(p.placement.location).toEqual({ kind: "ram", shmName: `/pm-${p.id}` });
    expect(p.createdAt).toBe(h.clock.now());
    expect(p.expiresAt).toBeUndefined();
    expect(h.allocator.has(p.id, "RAM")).toBe(true);
    expect(await peek(h, p.id)).toEqual(p);
  });

  it("gives each allocation its own id and region", async () => {
    const h = harness();
    const a = await allocated(h);
    const b = await allocated(h);
    expect(a.id).not.toBe(b.id);
    expect((await listed(h)).total).toBe(2);
    expect(h.allocator.has(a.id, "RAM") && h.allocator.has(b.id, "RAM")).toBe(true);
  });

  it("accepts exactly 128 GiB", async () => {
    const h = harness({ capacity: { DISK: 256 * GiB_BYTES } });
    const p = await allocated(h, "DISK", { sizeBytes: MAX_PAYLOAD_BYTES });
    expect(p.sizeBytes).toBe(128 * GiB_BYTES);
  });

  it.each([
    ["zero", 0],
    ["negative", -1],
    ["non-integer", 1.5],
    ["128 GiB + 1", 128 * GiB_BYTES + 1],
  ])("rejects size %s with INVALID_ARGUMENT and writes nothing", async (_, sizeBytes) => {
    const h = harness({ capacity: { DISK: 256 * GiB_BYTES } });
    const e = await domainError(
      () => allocatePayload(h.deps, h.ctx, allocateRequest({ sizeBytes, tier: "DISK" })),
      "INVALID_ARGUMENT",
    );
    expect(e.details.field).toBe("size_bytes");
    await expectNothingWritten(h);
  });

  it("requires a tier", async () => {
    const h = harness();
    const e = await domainError(
      () => allocatePayload(h.deps, h.ctx, allocateRequest({ tier: undefined })),
      "INVALID_ARGUMENT",
    );
    expect(e.details.field).toBe("preferred_tier");
    await expectNothingWritten(h);
  });

  it("refuses VOID", async () => {
    const h = harness();
    await domainError(
      () => allocatePayload(h.deps, h.ctx, allocateRequest({ tier: "VOID" })),
      "INVALID_ARGUMENT",
    );
    await expectNothingWritten(h);
  });

  it("reports TIER_UNAVAILABLE for a tier no backend serves, and writes nothing", async () => {
    const h = harness({ capacity: { RAM: 8 * MiB } });
    const e = await domainError(() => allocated(h, "GPU"), "TIER_UNAVAILABLE");
    expect(e.retryable).toBe(false);
    await expectNothingWritten(h);
  });

  it("reports TIER_FULL (retryable) when the tier has no room, and writes nothing more", async () => {
    const h = harness({ capacity: { RAM: 2 * MiB } });
    await allocated(h, "RAM", { sizeBytes: MiB });
    await allocated(h, "RAM", { sizeBytes: MiB });
    const e = await domainError(() => allocated(h, "RAM", { sizeBytes: 1 }), "TIER_FULL");
    expect(e.retryable).toBe(true);
    expect((await listed(h)).total).toBe(2);
    expect(h.allocator.used("RAM")).toBe(2 * MiB);
  });

  it("rejects a negative ttl", async () => {
    const h = harness();
    const e = await domainError(() => allocated(h, "RAM", { ttlMs: -1 }), "INVALID_ARGUMENT");
    expect(e.details.field).toBe("ttl_ms");
    await expectNothingWritten(h);
  });

  it("sets expiresAt = now + ttl", async () => {
    const h = harness();
    const p = await allocated(h, "RAM", { ttlMs: 30_000 });
    expect(p.expiresAt).toBe(h.clock.now() + 30_000);
  });

  it.each([
    ["ttl 0", { ttlMs: 0 }],
    ["no_evict", { ttlMs: 30_000, noEvict: true }],
    ["priority NEVER", { ttlMs: 30_000, evictionPolicy: policy({ priority: "NEVER" }) }],
  ])("sets no expiry with %s", async (_, overrides) => {
    const h = harness();
    const p = await allocated(h, "RAM", overrides);
    expect(p.expiresAt).toBeUndefined();
  });

  it.each([
    ["the same tier", "RAM"],
    ["a faster tier", "GPU"],
  ] as const)("rejects a spill_target on %s", async (_, spillTarget) => {
    const h = harness();
    const e = await domainError(
      () => allocated(h, "RAM", { evictionPolicy: policy({ spillTarget }) }),
      "INVALID_ARGUMENT",
    );
    expect(e.details.field).toBe("eviction_policy.spill_target");
    expect(e.message).toContain("must be slower");
    await expectNothingWritten(h);
  });

  it.each(["DISK", "OBJECT", "VOID"] as const)("accepts spill_target %s from RAM", async (spillTarget) => {
    const h = harness();
    const p = await allocated(h, "RAM", { evictionPolicy: policy({ spillTarget }) });
    expect(p.evictionPolicy.spillTarget).toBe(spillTarget);
  });

  it("hands out a presigned PUT URL for the object tier, valid no longer than the allocation timeout", async () => {
    const h = harness({ capacity: { OBJECT: GiB_BYTES }, presigner: true });
    const view = await allocatePayload(h.deps, h.ctx, allocateRequest({ tier: "OBJECT" }));
    expect(view.payload.placement.location).toEqual({
      kind: "object",
      bucket: "bucket",
      key: `payloads/${view.payload.id}`,
    });
    expect(view.url).toContain("method=PUT");
    expect(view.urlExpiresAt).toBe(h.clock.now() + h.deps.config.allocationTimeoutMs);
  });

  it("gives no URL for non-object tiers", async () => {
    const h = harness({ presigner: true });
    const view = await allocatePayload(h.deps, h.ctx, allocateRequest({ tier: "RAM" }));
    expect(view.url).toBeUndefined();
  });
});

describe("commitPayload", () => {
  it.each([
    ["GPU", "ACTIVE"],
    ["RAM", "ACTIVE"],
    ["DISK", "DURABLE"],
  ] as const)("seals a %s payload as %s at version 2", async (tier, state) => {
    const h = harness();
    const p = await allocated(h, tier);
    h.clock.advance(500);
    const view = await commitPayload(h.deps, h.ctx, { id: p.id, sizeBytes: 0, checksum: "" });
    expect(view.payload.state).toBe(state);
    expect(view.payload.version).toBe(2);
    expect(view.payload.updatedAt).toBe(h.clock.now());
    expect(await peek(h, p.id)).toEqual(view.payload);
  });

  it("re-reads and refuses when a delete lands between its read and its write", async () => {
    const h = harness();
    const p = await allocated(h, "RAM");
    // Run a delete right after the commit's read: the compare-and-set then finds the row changed.
    const original = h.catalog.autocommit.bind(h.catalog);
    let reads = 0;
    h.catalog.autocommit = async (fn) => {
      const n = ++reads;
      const out = await original(fn);
      if (n === 1) await deletePayload(h.deps, h.ctx, { id: p.id, force: false });
      return out;
    };
    await domainError(
      () => commitPayload(h.deps, h.ctx, { id: p.id, sizeBytes: 0, checksum: "" }),
      "PAYLOAD_NOT_FOUND",
    );
    expect(reads).toBe(3); // read, lost compare-and-set, read again
  });

  it("does not overwrite a state change that lands between its read and its write", async () => {
    const h = harness();
    const p = await allocated(h, "RAM");
    // Right after the commit's read, the payload expires (the row stays, its state moves on).
    const original = h.catalog.autocommit.bind(h.catalog);
    let calls = 0;
    h.catalog.autocommit = async (fn) => {
      const out = await original(fn);
      if (++calls === 1) {
        await h.catalog.transaction(async (tx) => {
          const now = await tx.lockPayload(p.id);
          await tx.updatePayload({ ...now!, state: "EXPIRED", version: now!.version + 1 });
        });
      }
      return out;
    };
    await domainError(
      () => commitPayload(h.deps, h.ctx, { id: p.id, sizeBytes: 0, checksum: "" }),
      "INVALID_TRANSITION",
    );
    expect(await peek(h, p.id)).toMatchObject({ state: "EXPIRED", version: p.version + 1 });
  });

  it("refuses a second commit with INVALID_TRANSITION", async () => {
    const h = harness();
    const p = await committed(h);
    const e = await domainError(
      () => commitPayload(h.deps, h.ctx, { id: p.id, sizeBytes: 0, checksum: "" }),
      "INVALID_TRANSITION",
    );
    expect(e.message).toContain("already committed");
    expect((await peek(h, p.id))?.version).toBe(2);
  });

  it("records the writer's checksum and accepts a matching size", async () => {
    const h = harness();
    const p = await allocated(h, "RAM", { sizeBytes: 1000 });
    const view = await commitPayload(h.deps, h.ctx, {
      id: p.id,
      sizeBytes: 1000,
      checksum: "sha256:0123abcd",
    });
    expect(view.payload.checksum).toBe("sha256:0123abcd");
    expect((await peek(h, p.id))?.checksum).toBe("sha256:0123abcd");
  });

  it("rejects a size that differs from the allocation and leaves the payload ALLOCATED", async () => {
    const h = harness();
    const p = await allocated(h, "RAM", { sizeBytes: 1000 });
    const e = await domainError(
      () => commitPayload(h.deps, h.ctx, { id: p.id, sizeBytes: 999, checksum: "" }),
      "INVALID_ARGUMENT",
    );
    expect(e.details.field).toBe("size_bytes");
    expect(await peek(h, p.id)).toEqual(p);
  });

  it("rejects a malformed checksum and leaves the payload ALLOCATED", async () => {
    const h = harness();
    const p = await allocated(h);
    const e = await domainError(
      () => commitPayload(h.deps, h.ctx, { id: p.id, sizeBytes: 0, checksum: "not a checksum" }),
      "INVALID_ARGUMENT",
    );
    expect(e.details.field).toBe("checksum");
    expect(await peek(h, p.id)).toEqual(p);
  });

  it("reports an unknown id as PAYLOAD_NOT_FOUND", async () => {
    const h = harness();
    await domainError(
      () =>
        commitPayload(h.deps, h.ctx, {
          id: "99999999-9999-4999-8999-999999999999" as never,
          sizeBytes: 0,
          checksum: "",
        }),
      "PAYLOAD_NOT_FOUND",
    );
  });

  describe("object tier", () => {
    const objectHarness = () => harness({ capacity: { OBJECT: GiB_BYTES }, presigner: true });
    const keyOf = (p: Payload) => {
      if (p.placement.location.kind !== "object") throw new Error("not an object placement");
      return p.placement.location.key;
    };

    it("refuses to commit before the object is uploaded, and stays ALLOCATED", async () => {
      const h = objectHarness();
      const p = await allocated(h, "OBJECT", { sizeBytes: 1000 });
      const e = await domainError(
        () => commitPayload(h.deps, h.ctx, { id: p.id, sizeBytes: 0, checksum: "" }),
        "INVALID_TRANSITION",
      );
      expect(e.message).toContain("PUT the bytes to the presigned URL");
      expect((await peek(h, p.id))?.state).toBe("ALLOCATED");
    });

    it("refuses an object of the wrong size, and stays ALLOCATED", async () => {
      const h = objectHarness();
      const p = await allocated(h, "OBJECT", { sizeBytes: 1000 });
      h.presigner?.objects.set(keyOf(p), 999);
      const e = await domainError(
        () => commitPayload(h.deps, h.ctx, { id: p.id, sizeBytes: 0, checksum: "" }),
        "INVALID_TRANSITION",
      );
      expect(e.message).toContain("upload exactly the allocated size");
      expect((await peek(h, p.id))?.state).toBe("ALLOCATED");
    });

    it("marks an uploaded object DURABLE and hands out a GET URL", async () => {
      const h = objectHarness();
      const p = await allocated(h, "OBJECT", { sizeBytes: 1000 });
      h.presigner?.objects.set(keyOf(p), 1000);
      const view = await commitPayload(h.deps, h.ctx, { id: p.id, sizeBytes: 1000, checksum: "" });
      expect(view.payload.state).toBe("DURABLE");
      expect(view.payload.version).toBe(2);
      expect(view.url).toContain("method=GET");
      expect(view.urlExpiresAt).toBeLessThanOrEqual(h.clock.now() + h.deps.config.objectUrlTtlMs);
    });

    it("presigns PUT while ALLOCATED and GET afterwards, never past the lease", async () => {
      const h = objectHarness();
      const p = await allocated(h, "OBJECT", { sizeBytes: 1000 });
      expect((await resolveSnapshot(h.deps, h.ctx, p.id)).url).toContain("method=PUT");
      h.presigner?.objects.set(keyOf(p), 1000);
      await commitPayload(h.deps, h.ctx, { id: p.id, sizeBytes: 0, checksum: "" });
      expect((await resolveSnapshot(h.deps, h.ctx, p.id)).url).toContain("method=GET");
      const grant = await acquireReadLease(h.deps, h.ctx, {
        id: p.id,
        minTier: undefined,
        promotionPolicy: "BEST_EFFORT",
        durationMs: 5_000,
      });
      expect(grant.descriptor.url).toContain("method=GET");
      expect(grant.descriptor.urlExpiresAt).toBe(grant.lease.expiresAt);
      expect(grant.descriptor.url).toContain(`expires=${grant.lease.expiresAt}`);
    });

    it("caps a GET URL at the object URL TTL when the lease is longer", async () => {
      const h = harness({
        capacity: { OBJECT: GiB_BYTES },
        presigner: true,
        config: { objectUrlTtlMs: 10_000 },
      });
      const p = await committed(h, "OBJECT");
      const grant = await leased(h, p.id, 60_000);
      const view = await resolveSnapshot(h.deps, h.ctx, p.id);
      expect(grant.expiresAt).toBe(h.clock.now() + 60_000);
      expect(view.urlExpiresAt).toBe(h.clock.now() + 10_000);
    });

    it("without an object store configured, commit says the tier is unavailable", async () => {
      const h = harness({ capacity: { OBJECT: GiB_BYTES } });
      const p = await allocated(h, "OBJECT");
      await domainError(
        () => commitPayload(h.deps, h.ctx, { id: p.id, sizeBytes: 0, checksum: "" }),
        "TIER_UNAVAILABLE",
      );
      expect((await peek(h, p.id))?.state).toBe("ALLOCATED");
    });
  });
});

describe("deletePayload", () => {
  it("reports an unknown id as PAYLOAD_NOT_FOUND", async () => {
    const h = harness();
    await domainError(
      () =>
        deletePayload(h.deps, h.ctx, { id: "99999999-9999-4999-8999-999999999999" as never, force: false }),
      "PAYLOAD_NOT_FOUND",
    );
  });

  it("frees the bytes and removes the row at once when no lease is held", async () => {
    const h = harness();
    const p = await committed(h);
    await deletePayload(h.deps, h.ctx, { id: p.id, force: false });
    expect(await peek(h, p.id)).toBeUndefined();
    expect(h.allocator.regions.size).toBe(0);
    expect(h.jobs.jobs).toEqual([]);
  });

  it("deletes a never-committed allocation too", async () => {
    const h = harness();
    const p = await allocated(h);
    await deletePayload(h.deps, h.ctx, { id: p.id, force: false });
    expect(await peek(h, p.id)).toBeUndefined();
    expect(h.allocator.regions.size).toBe(0);
  });

  it("without force, a live lease is LEASE_CONFLICT and nothing changes", async () => {
    const h = harness();
    const p = await committed(h);
    const lease = await leased(h, p.id);
    const before = await peek(h, p.id);
    const e = await domainError(
      () => deletePayload(h.deps, h.ctx, { id: p.id, force: false }),
      "LEASE_CONFLICT",
    );
    expect(e.retryable).toBe(true);
    expect(e.message).toContain("force=true");
    expect(await peek(h, p.id)).toEqual(before);
    expect((await peekLease(h, lease.id))?.revoked).toBe(false);
    expect(h.allocator.has(p.id, "RAM")).toBe(true);
  });

  it("an expired lease does not block a plain delete", async () => {
    const h = harness();
    const p = await committed(h);
    await leased(h, p.id, 1_000);
    h.clock.advance(1_000);
    await deletePayload(h.deps, h.ctx, { id: p.id, force: false });
    expect(await peek(h, p.id)).toBeUndefined();
  });

  it("with force, revokes leases and keeps the bytes until the last lease is released", async () => {
    const h = harness();
    const p = await committed(h);
    const a = await leased(h, p.id, 10_000);
    const b = await leased(h, p.id, 30_000);
    await deletePayload(h.deps, h.ctx, { id: p.id, force: true });

    const row = await peek(h, p.id);
    expect(row?.state).toBe("DELETING");
    expect(row?.version).toBe(3);
    expect((await peekLease(h, a.id))?.revoked).toBe(true);
    expect((await peekLease(h, b.id))?.revoked).toBe(true);
    expect(h.allocator.has(p.id, "RAM")).toBe(true);

    // The finalize job is timed for when the longest lease ends (plus a small margin).
    expect(h.jobs.jobs).toHaveLength(1);
    const queued = h.jobs.jobs[0]!;
    expect(queued.job).toEqual({ name: "finalize-deletion", payloadId: p.id });
    expect(queued.delayMs).toBeGreaterThanOrEqual(30_000);
    expect(queued.delayMs).toBeLessThanOrEqual(31_000);

    await releaseLease(h.deps, h.ctx, a.id);
    expect(h.allocator.has(p.id, "RAM")).toBe(true);
    expect((await peek(h, p.id))?.state).toBe("DELETING");

    await releaseLease(h.deps, h.ctx, b.id);
    expect(h.allocator.has(p.id, "RAM")).toBe(false);
    expect(await peek(h, p.id)).toBeUndefined();
  });

  it("with force, the bytes are freed by finalizeDeletion once the revoked lease has expired", async () => {
    const h = harness();
    const p = await committed(h);
    await leased(h, p.id, 20_000);
    await deletePayload(h.deps, h.ctx, { id: p.id, force: true });

    h.clock.advance(19_999);
    expect(await finalizeDeletion(h.deps, p.id)).toEqual({ status: "waiting", retryAt: h.clock.now() + 1 });
    expect(h.allocator.has(p.id, "RAM")).toBe(true);

    h.clock.advance(1);
    expect(await finalizeDeletion(h.deps, p.id)).toEqual({ status: "done" });
    expect(h.allocator.has(p.id, "RAM")).toBe(false);
    expect(await peek(h, p.id)).toBeUndefined();
    expect(await finalizeDeletion(h.deps, p.id)).toEqual({ status: "gone" });
  });

  it("takes metadata, pins, events, leases and lineage edges with the row", async () => {
    const h = harness();
    const parent = await committed(h);
    const p = await committed(h);
    const child = await committed(h);
    await updateMetadata(h.deps, h.ctx, {
      id: p.id,
      mode: "REPLACE",
      data: new Uint8Array([1]),
      schema: "s",
    });
    await pin(h.deps, h.ctx, p.id, 0);
    await addLineage(h.deps, h.ctx, p.id, [
      { parent: parent.id, operation: "op", role: "in", parameters: new Uint8Array() },
    ]);
    await addLineage(h.deps, h.ctx, child.id, [
      { parent: p.id, operation: "op", role: "in", parameters: new Uint8Array() },
    ]);
    const lease = await leased(h, p.id);
    await deletePayload(h.deps, h.ctx, { id: p.id, force: true });
    await releaseLease(h.deps, h.ctx, lease.id);

    await h.catalog.transaction(async (tx) => {
      expect(await tx.getPayload(p.id)).toBeUndefined();
      expect(await tx.getMetadata(p.id)).toBeUndefined();
      expect(await tx.getPin(p.id)).toBeUndefined();
      expect(await tx.getLease(lease.id)).toBeUndefined();
    });
    expect(await getLineage(h.deps, h.ctx, { id: parent.id, upstream: false, maxDepth: 0 })).toEqual([]);
    expect(await getLineage(h.deps, h.ctx, { id: child.id, upstream: true, maxDepth: 0 })).toEqual([]);
    // The neighbours themselves are untouched.
    expect((await peek(h, parent.id))?.state).toBe("ACTIVE");
    expect((await peek(h, child.id))?.state).toBe("ACTIVE");
  });

  it("deleting a payload that is already being deleted succeeds and changes nothing", async () => {
    const h = harness();
    const p = await committed(h);
    await leased(h, p.id);
    await deletePayload(h.deps, h.ctx, { id: p.id, force: true });
    const row = await peek(h, p.id);
    await deletePayload(h.deps, h.ctx, { id: p.id, force: false });
    await deletePayload(h.deps, h.ctx, { id: p.id, force: true });
    expect(await peek(h, p.id)).toEqual(row);
    expect(h.jobs.jobs).toHaveLength(1);
  });

  it("once the row is gone, a further delete is PAYLOAD_NOT_FOUND", async () => {
    const h = harness();
    const p = await committed(h);
    await deletePayload(h.deps, h.ctx, { id: p.id, force: false });
    await domainError(() => deletePayload(h.deps, h.ctx, { id: p.id, force: false }), "PAYLOAD_NOT_FOUND");
  });

  it("refuses new leases once DELETING", async () => {
    const h = harness();
    const p = await committed(h);
    await leased(h, p.id);
    await deletePayload(h.deps, h.ctx, { id: p.id, force: true });
    const e = await domainError(() => leased(h, p.id), "INVALID_TRANSITION");
    expect(e.message).toContain("DELETING");
  });

  it("bytes under a live revoked lease are not reused by a new allocation", async () => {
    const h = harness({ capacity: { RAM: 2 * MiB } });
    const p = await committed(h, "RAM", { sizeBytes: 2 * MiB });
    await leased(h, p.id);
    await deletePayload(h.deps, h.ctx, { id: p.id, force: true });
    await domainError(() => allocated(h, "RAM", { sizeBytes: MiB }), "TIER_FULL");
  });
});

describe("expirePayload", () => {
  it("does nothing before the deadline", async () => {
    const h = harness();
    const p = await committed(h, "RAM", { ttlMs: 60_000 });
    h.clock.advance(59_999);
    expect(await expirePayload(h.deps, p.id)).toBe(false);
    expect((await peek(h, p.id))?.state).toBe("ACTIVE");
  });

  it("at the deadline, expires the payload and frees its bytes", async () => {
    const h = harness();
    const p = await committed(h, "RAM", { ttlMs: 60_000 });
    h.clock.advance(60_000);
    expect(await expirePayload(h.deps, p.id)).toBe(true);
    expect(await peek(h, p.id)).toBeUndefined();
    expect(h.allocator.regions.size).toBe(0);
  });

  it("never expires a payload without a TTL", async () => {
    const h = harness();
    const p = await committed(h, "RAM", { ttlMs: 60_000, noEvict: true });
    h.clock.advance(365 * 24 * 3600_000);
    expect(await expirePayload(h.deps, p.id)).toBe(false);
    expect((await peek(h, p.id))?.state).toBe("ACTIVE");
  });

  it("a leased payload is EXPIRED, its lease revoked, and its bytes kept until the lease ends", async () => {
    const h = harness();
    const p = await committed(h, "RAM", { ttlMs: 60_000 });
    h.clock.advance(50_000);
    const lease = await leased(h, p.id, 20_000);
    h.clock.advance(10_000);
    expect(await expirePayload(h.deps, p.id)).toBe(true);

    const row = await peek(h, p.id);
    expect(row?.state).toBe("EXPIRED");
    expect(row?.version).toBe(3);
    expect((await peekLease(h, lease.id))?.revoked).toBe(true);
    expect(h.allocator.has(p.id, "RAM")).toBe(true);
    expect(h.jobs.jobs.map((j) => j.job)).toEqual([{ name: "finalize-deletion", payloadId: p.id }]);
    expect(h.jobs.jobs[0]?.delayMs).toBeGreaterThanOrEqual(10_000);

    // Expiring again is a no-op; new leases are refused.
    expect(await expirePayload(h.deps, p.id)).toBe(false);
    await domainError(() => leased(h, p.id), "INVALID_TRANSITION");

    h.clock.advance(10_000);
    expect(await finalizeDeletion(h.deps, p.id)).toEqual({ status: "done" });
    expect(h.allocator.regions.size).toBe(0);
    expect(await peek(h, p.id)).toBeUndefined();
  });

  it("an unknown id is simply not expired", async () => {
    const h = harness();
    expect(await expirePayload(h.deps, "99999999-9999-4999-8999-999999999999" as never)).toBe(false);
  });
});

describe("reapAbandoned", () => {
  it("leaves an allocation younger than the allocation timeout", async () => {
    const h = harness();
    const p = await allocated(h);
    h.clock.advance(h.deps.config.allocationTimeoutMs - 1);
    expect(await reapAbandoned(h.deps, p.id)).toBe(false);
    expect((await peek(h, p.id))?.state).toBe("ALLOCATED");
  });

  it("reclaims an allocation never committed within the timeout, freeing its region", async () => {
    const h = harness();
    const p = await allocated(h);
    h.clock.advance(10 * 60_000);
    expect(await reapAbandoned(h.deps, p.id)).toBe(true);
    expect(await peek(h, p.id)).toBeUndefined();
    expect(h.allocator.regions.size).toBe(0);
  });

  it("never reaps a committed payload, however old", async () => {
    const h = harness();
    const p = await committed(h);
    h.clock.advance(24 * 3600_000);
    expect(await reapAbandoned(h.deps, p.id)).toBe(false);
    expect((await peek(h, p.id))?.state).toBe("ACTIVE");
  });

  it("honours a configured allocation timeout", async () => {
    const h = harness({ config: { allocationTimeoutMs: 1_000 } });
    const p = await allocated(h);
    h.clock.advance(1_000);
    expect(await reapAbandoned(h.deps, p.id)).toBe(true);
  });
});

describe("namespace isolation", () => {
  it("a payload of one tenant does not exist for another", async () => {
    const h = harness();
    const p = await allocated(h);
    const q = await committed(h);
    await domainError(() => resolveSnapshot(h.deps, h.other, q.id), "PAYLOAD_NOT_FOUND");
    await domainError(() => leased(h, q.id, 0, h.other), "PAYLOAD_NOT_FOUND");
    await domainError(() => deletePayload(h.deps, h.other, { id: q.id, force: true }), "PAYLOAD_NOT_FOUND");
    await domainError(
      () => commitPayload(h.deps, h.other, { id: p.id, sizeBytes: 0, checksum: "" }),
      "PAYLOAD_NOT_FOUND",
    );
    expect((await peek(h, p.id))?.state).toBe("ALLOCATED");
    expect((await peek(h, q.id))?.state).toBe("ACTIVE");
    expect((await listed(h, h.other)).total).toBe(0);
    expect((await listed(h)).total).toBe(2);
  });

  it("the not-found message does not reveal that the id exists elsewhere", async () => {
    const h = harness();
    const q = await committed(h);
    const foreign = await domainError(() => resolveSnapshot(h.deps, h.other, q.id), "PAYLOAD_NOT_FOUND");
    await deletePayload(h.deps, h.ctx, { id: q.id, force: false });
    const missing = await domainError(() => resolveSnapshot(h.deps, h.ctx, q.id), "PAYLOAD_NOT_FOUND");
    expect(foreign.message).toBe(missing.message);
  });
});

describe("resolveSnapshot", () => {
  it("returns the current placement and version", async () => {
    const h = harness();
    const p = await committed(h, "DISK");
    const view = await resolveSnapshot(h.deps, h.ctx, p.id);
    expect(view.payload.version).toBe(2);
    expect(view.payload.placement.location).toEqual({
      kind: "disk",
      path: `/data/${p.id}.bin`,
      offsetBytes: 0,
    });
    expect(view.url).toBeUndefined();
  });
});
