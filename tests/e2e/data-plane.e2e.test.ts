import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { createPayloadClient, idBytes } from "@pm/client";
import { createNodePayloadClient } from "@pm/client/node";
import { Tier } from "@pm/rpc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningSystem, removeDataDir, runNode, startSystem } from "../support/system.ts";

const MIB = 1024 * 1024;
let sys: RunningSystem;

beforeAll(async () => {
  sys = await startSystem({ env: { PM_RAM_CAPACITY_BYTES: String(160 * MIB) } });
});
afterAll(async () => {
  await sys?.stop();
  for (const f of readdirSync("/dev/shm"))
    if (sys && f.startsWith(sys.ramPrefix)) removeDataDir(join("/dev/shm", f));
  if (sys) removeDataDir(sys.dataDir);
});

interface Produced {
  id: string;
  sha256: string;
  checksum: string;
}
interface Consumed {
  sha256: string;
  size: number;
  tier: number;
}

async function codeOf(p: Promise<unknown>): Promise<Code> {
  try {
    await p;
  } catch (e) {
    return ConnectError.from(e).code;
  }
  throw new Error("expected the call to fail");
}

describe("two processes exchange 64 MiB through descriptors (real API, agent, producer, consumer)", () => {
  for (const tier of ["RAM", "DISK"] as const) {
    it(`${tier}: producer writes, a separate consumer reads the same bytes, delete frees the region`, async () => {
      const p = await runNode<Produced>("tests/e2e/fixtures/producer.ts", [
        sys.url,
        tier,
        String(64 * MIB),
        "7",
      ]);
      expect(p.checksum).toMatch(/^xxh64:[0-9a-f]{16}$/);
      const region =
        tier === "RAM" ? `/dev/shm/${sys.ramPrefix}${p.id}.bin` : join(sys.diskRoot, `${p.id}.bin`);
      expect(existsSync(region)).toBe(true);

      const c = await runNode<Consumed>("tests/e2e/fixtures/consumer.ts", [sys.url, p.id]);
      expect(c).toMatchObject({ sha256: p.sha256, size: 64 * MIB, tier: Tier[tier] });

      const client = createPayloadClient({ baseUrl: sys.url });
      await client.catalog.delete({ id: idBytes(p.id) });
      expect(existsSync(region)).toBe(false);
      expect(await codeOf(client.data.acquireReadLease({ id: idBytes(p.id) }))).toBe(Code.NotFound);
    });
  }

  it("RAM capacity exhaustion is RESOURCE_EXHAUSTED and leaves no segment behind", async () => {
    const client = createNodePayloadClient({ baseUrl: sys.url });
    const first = await client.catalog.allocatePayload({
      sizeBytes: BigInt(100 * MIB),
      preferredTier: Tier.RAM,
    });
    const before = readdirSync("/dev/shm").filter((f) => f.startsWith(sys.ramPrefix)).length;
    expect(
      await codeOf(client.catalog.allocatePayload({ sizeBytes: BigInt(100 * MIB), preferredTier: Tier.RAM })),
    ).toBe(Code.ResourceExhausted);
    expect(readdirSync("/dev/shm").filter((f) => f.startsWith(sys.ramPrefix)).length).toBe(before);
    await client.catalog.delete({ id: first.payloadDescriptor!.payloadId });
  });

  it("a GPU allocation without a GPU agent is FAILED_PRECONDITION naming the tier", async () => {
    const client = createPayloadClient({ baseUrl: sys.url });
    const err = await client.catalog
      .allocatePayload({ sizeBytes: 1024n, preferredTier: Tier.GPU })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.FailedPrecondition);
    expect((err as ConnectError).rawMessage).toMatch(/GPU/);
  });

  it("committed payloads survive a restart of the API and agent and stay readable", async () => {
    const p = await runNode<Produced>("tests/e2e/fixtures/producer.ts", [
      sys.url,
      "RAM",
      String(8 * MIB),
      "11",
    ]);
    const dataDir = sys.dataDir;
    expect(await sys.stop()).toBe(0);
    sys = await startSystem({
      dataDir,
      ramPrefix: sys.ramPrefix,
      env: { PM_RAM_CAPACITY_BYTES: String(160 * MIB) },
    });
    const c = await runNode<Consumed>("tests/e2e/fixtures/consumer.ts", [sys.url, p.id]);
    expect(c.sha256).toBe(p.sha256);
  });
});
