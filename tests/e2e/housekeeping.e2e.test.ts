import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { createPayloadClient, idText } from "@pm/client";
import { Tier } from "@pm/rpc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningSystem, removeDataDir, startSystem } from "../support/system.ts";

// The embedded default runs the worker's jobs in-process: TTL expiry, reaping of abandoned
// allocations and deferred deletion happen without anyone calling the API.
let sys: RunningSystem;
beforeAll(async () => {
  sys = await startSystem({ env: { PM_ALLOCATION_TIMEOUT_MS: "1500", PM_SWEEP_INTERVAL_MS: "200" } });
});
afterAll(async () => {
  await sys?.stop();
  for (const f of readdirSync("/dev/shm"))
    if (sys && f.startsWith(sys.ramPrefix)) removeDataDir(join("/dev/shm", f));
  if (sys) removeDataDir(sys.dataDir);
});

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function gone(client: ReturnType<typeof createPayloadClient>, id: { value: Uint8Array }) {
  try {
    await client.data.resolveSnapshot({ id });
    return undefined;
  } catch (e) {
    return ConnectError.from(e).code === Code.NotFound ? true : undefined;
  }
}

describe("housekeeping in the embedded default (in-process jobs)", () => {
  it("an abandoned allocation is reaped and its segment freed", async () => {
    const client = createPayloadClient({ baseUrl: sys.url });
    const a = await client.catalog.allocatePayload({ sizeBytes: 4096n, preferredTier: Tier.RAM });
    const segment = `/dev/shm/${sys.ramPrefix}${idText(a.payloadDescriptor!.payloadId)}.bin`;
    expect(existsSync(segment)).toBe(true);
    await until("the reaper", () => gone(client, a.payloadDescriptor!.payloadId!));
    expect(existsSync(segment)).toBe(false);
  });

  it("TTL expiry removes an unleased payload, and waits for the lease of a leased one", async () => {
    const client = createPayloadClient({ baseUrl: sys.url });
    const mk = async () => {
      const a = await client.catalog.allocatePayload({
        sizeBytes: 4096n,
        preferredTier: Tier.DISK,
        ttlMs: 500n,
      });
      await client.catalog.commitPayload({ id: a.payloadDescriptor!.payloadId });
      return a.payloadDescriptor!;
    };
    const free = await mk();
    const leased = await mk();
    const lease = await client.data.acquireReadLease({ id: leased.payloadId, minLeaseDurationMs: 3000n });
    const path = leased.location.case === "disk" ? leased.location.value.path : "";
    await until("expiry of the unleased payload", () => gone(client, free.payloadId!));
    // The leased one has expired too (its descriptor is gone for new readers) but its bytes stay.
    const renew = await client.data
      .renewLease({ leaseId: lease.leaseId, extendMs: 1000n })
      .catch((e: unknown) => ConnectError.from(e));
    expect(renew).toBeInstanceOf(ConnectError);
    expect((renew as ConnectError).code).toBe(Code.FailedPrecondition);
    expect(existsSync(path)).toBe(true);
    await client.data.releaseLease({ leaseId: lease.leaseId });
    await until("the leased payload's bytes to be freed", async () => (existsSync(path) ? undefined : true));
    expect(await gone(client, leased.payloadId!)).toBe(true);
  });
});
