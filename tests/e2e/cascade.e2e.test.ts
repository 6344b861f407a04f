// The pressure cascade in the embedded default: small RAM and DISK tiers (agent watermarks: high
// 0.9, low 0.75) and the object tier on the S3 server from infra/dev/services.sh. Filling RAM past
// its high watermark makes the pressure job move the least recently accessed payloads to DISK;
// filling DISK then moves its least recently accessed ones to OBJECT. Pinned and leased payloads
// stay where they are, and every payload's bytes verify by sha256 wherever it ends up.
import { createHash, randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { createPayloadClient, idBytes, type PayloadClient } from "@pm/client";
import { get, getObject, put } from "@pm/client/node";
import { testObjectStore, testObjectStoreEnv } from "@pm/objects/testing";
import { Tier } from "@pm/rpc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningSystem, removeDataDir, startSystem } from "../support/system.ts";

const MIB = 1024 * 1024;
const RAM_CAPACITY = 10 * MIB;
const DISK_CAPACITY = 10 * MIB;

let sys: RunningSystem;
let client: PayloadClient;
const sums = new Map<string, string>();
const leases: string[] = [];

beforeAll(async () => {
  sys = await startSystem({
    env: {
      ...testObjectStoreEnv(testObjectStore()),
      PM_RAM_CAPACITY_BYTES: String(RAM_CAPACITY),
      PM_DISK_CAPACITY_BYTES: String(DISK_CAPACITY),
      PM_PRESSURE_INTERVAL_MS: "200",
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    },
  });
  client = createPayloadClient({ baseUrl: sys.url });
}, 60_000);

afterAll(async () => {
  for (const leaseId of leases) await client?.data.releaseLease({ leaseId }).catch(() => undefined);
  for (const id of sums.keys())
    await client?.catalog.delete({ id: idBytes(id), force: true }).catch(() => undefined);
  await sys?.stop();
  for (const f of readdirSync("/dev/shm"))
    if (sys && f.startsWith(sys.ramPrefix)) removeDataDir(join("/dev/shm", f));
  if (sys) removeDataDir(sys.dataDir);
});

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

async function putKnown(tier: Tier): Promise<string> {
  const bytes = randomBytes(MIB);
  const { id } = await put(client, bytes, { tier });
  sums.set(id, sha256(bytes));
  return id;
}

async function tierOf(id: string): Promise<Tier | undefined> {
  const r = await client.data.resolveSnapshot({ id: idBytes(id) });
  return r.payloadDescriptor?.tier;
}

async function tiers(ids: readonly string[]): Promise<Tier[]> {
  return Promise.all(ids.map(async (id) => (await tierOf(id)) ?? Tier.UNSPECIFIED));
}

/** Reads a payload through the SDK for its tier and checks its sha256. */
async function verify(id: string): Promise<void> {
  const tier = await tierOf(id);
  let sum: string;
  if (tier === Tier.OBJECT) {
    sum = sha256(await getObject(client, id));
  } else {
    const h = await get(client, id);
    try {
      sum = sha256(h.bytes);
    } finally {
      await h.release();
    }
  }
  expect(sum, `sha256 of ${id} on ${Tier[tier ?? 0]}`).toBe(sums.get(id));
}

async function holdLease(id: string): Promise<void> {
  const l = await client.data.acquireReadLease({ id: idBytes(id), minLeaseDurationMs: 120_000n });
  leases.push(l.leaseId);
}

async function until(what: string, fn: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until no payload of `ids` is still moving and `count` of them have left `from`. */
async function settled(ids: readonly string[], from: Tier, count: number): Promise<Tier[]> {
  let last: Tier[] = [];
  await until(
    `${count} payloads to leave ${Tier[from]} (last seen: ${last.map((t) => Tier[t]).join(",")})`,
    async () => {
      last = await tiers(ids);
      return last.filter((t) => t !== from).length >= count;
    },
  );
  // Let a pass that is still running finish, then check it did not overshoot.
  await new Promise((r) => setTimeout(r, 1_000));
  return tiers(ids);
}

describe("pressure cascade RAM → DISK → OBJECT", () => {
  it("moves the least recently accessed payloads down, tier by tier, skipping pinned and leased ones", async () => {
    // RAM: 10 × 1 MiB on a 10 MiB tier is over 90 %; down to 75 % means 3 payloads leave.
    const ram: string[] = [];
    for (let i = 0; i < 10; i++) {
      ram.push(await putKnown(Tier.RAM));
      if (i === 0) await client.catalog.pin({ id: idBytes(ram[0]!) }); // oldest, pinned
      if (i === 1) await holdLease(ram[1]!); // second oldest, leased
    }
    const afterRam = await settled(ram, Tier.RAM, 3);
    expect(afterRam[0], "pinned payload stays in RAM").toBe(Tier.RAM);
    expect(afterRam[1], "leased payload stays in RAM").toBe(Tier.RAM);
    // The least recently accessed of the rest: ram[2..4].
    expect(afterRam.slice(2, 5)).toEqual([Tier.DISK, Tier.DISK, Tier.DISK]);
    expect(afterRam.slice(5).every((t) => t === Tier.RAM)).toBe(true);
    for (const id of ram) await verify(id);

    // DISK: 3 MiB there now; 7 more make 10 MiB on a 10 MiB tier. Among DISK payloads the least
    // recently accessed are ram[2..4] (read just above, before the new ones were written): pin
    // ram[2], lease ram[3]; the three that leave must be ram[4] and the two oldest new ones.
    await client.catalog.pin({ id: idBytes(ram[2]!) });
    await holdLease(ram[3]!);
    const disk: string[] = [];
    for (let i = 0; i < 7; i++) disk.push(await putKnown(Tier.DISK));
    const onDisk = [ram[2]!, ram[3]!, ram[4]!, ...disk];
    const afterDisk = await settled(onDisk, Tier.DISK, 3);
    expect(afterDisk[0], "pinned payload stays on DISK").toBe(Tier.DISK);
    expect(afterDisk[1], "leased payload stays on DISK").toBe(Tier.DISK);
    expect(afterDisk.slice(2, 5)).toEqual([Tier.OBJECT, Tier.OBJECT, Tier.OBJECT]);
    expect(afterDisk.slice(5).every((t) => t === Tier.DISK)).toBe(true);
    // RAM is untouched by the second step.
    expect(await tiers(ram.slice(5))).toEqual(ram.slice(5).map(() => Tier.RAM));
    for (const id of sums.keys()) await verify(id);
  }, 120_000);
});
