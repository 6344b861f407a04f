// CreateRegions on a real agent: RAM regions in /dev/shm and DISK regions in a temp dir, created
// through the Connect service as the API calls it; each region succeeds or fails on its own. Run
// with files created by Node's fs (no addon) and by the native addon's createFiles, coalesced per
// tick as the agent's main sets it up.
import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { MAX_CREATE_BATCH } from "@pm/agents";
import { type PayloadId, uuidFromBytes, uuidToBytes } from "@pm/domain";
import { nativeApi } from "@pm/native";
import { type CreateRegionResult, Tier, TierAgentService } from "@pm/rpc";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AgentConfigSchema } from "./config.ts";
import { tierAgentService } from "./service.ts";
import { TierAgent } from "./tier-agent.ts";
import { type CreateFile, coalescedCreateFile } from "./tiers/coalesced-create.ts";
import { diskTier } from "./tiers/disk.ts";
import { ramTier } from "./tiers/ram.ts";

const RAM_CAPACITY = 1 << 20;
const DISK_CAPACITY = 4 << 20;

let dir: string;
let prefix: string;
let agent: TierAgent;

function makeAgent(createFile: CreateFile | undefined): TierAgent {
  const cfg = AgentConfigSchema.parse({
    tiers: {
      ram: { prefix, capacityBytes: RAM_CAPACITY },
      disk: { root: join(dir, "disk"), capacityBytes: DISK_CAPACITY },
    },
  });
  return new TierAgent([ramTier(cfg.tiers.ram, createFile), diskTier(cfg.tiers.disk, createFile)]);
}

/** Segments of this test in /dev/shm (whatever the agent thinks it holds). */
const shmFiles = () => readdirSync("/dev/shm").filter((n) => n.startsWith(prefix));
const diskFiles = () => readdirSync(join(dir, "disk"));

afterEach(async () => {
  try {
    for (const b of agent.tiers()) for (const r of await b.list()) await b.free(r.payloadId);
    await agent.close();
  } finally {
    // Whatever is left of this test in /dev/shm, known to the agent or not.
    for (const name of shmFiles()) rmSync(join("/dev/shm", name), { force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});

const newId = () => randomUUID() as PayloadId;
const ramPath = (id: PayloadId) => `/dev/shm/${prefix}${id}.bin`;
const diskPath = (id: PayloadId) => join(dir, "disk", `${id}.bin`);
const client = () =>
  createClient(
    TierAgentService,
    createRouterTransport((r) => r.service(TierAgentService, tierAgentService(agent))),
  );
const regionReq = (id: PayloadId, tier: Tier, size: number) => ({
  payloadId: { value: uuidToBytes(id) },
  tier,
  sizeBytes: BigInt(size),
});

/** The error code of a result (fails the test if it is a region). */
function errorCode(r: CreateRegionResult | undefined): number {
  expect(r?.result.case).toBe("error");
  return r?.result.case === "error" ? r.result.value.code : -1;
}

describe.each([
  { files: "Node fs", createFile: (): CreateFile | undefined => undefined },
  { files: "native createFiles", createFile: (): CreateFile => coalescedCreateFile(nativeApi().createFiles) },
])("CreateRegions on a real tier agent ($files)", ({ createFile }) => {
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "pm-agent-batch-"));
    prefix = `pmt-batch-${process.pid}-${Math.floor(Math.random() * 1e6)}-`;
    agent = makeAgent(createFile());
  });

  it("creates or refuses each region on its own, answering in request order with CreateRegion's codes", async () => {
    const ram = newId();
    const disk = newId();
    const twice = newId();
    const tooBig = newId();
    const voidTier = newId();
    const unspecified = newId();
    const empty = newId();
    const ram2 = newId();
    // A file the agent does not know of (it appeared after the agent started) where a region would go.
    const stray = newId();
    writeFileSync(ramPath(stray), "foreign");
    const res = await client().createRegions({
      regions: [
        regionReq(ram, Tier.RAM, 4096),
        regionReq(disk, Tier.DISK, 8192),
        regionReq(twice, Tier.RAM, 1000),
        regionReq(twice, Tier.RAM, 2000),
        regionReq(tooBig, Tier.RAM, RAM_CAPACITY + 1),
        regionReq(voidTier, Tier.VOID, 10),
        regionReq(unspecified, Tier.UNSPECIFIED, 10),
        regionReq(empty, Tier.RAM, 0),
        regionReq(ram2, Tier.RAM, 3000),
        regionReq(stray, Tier.RAM, 500),
      ],
    });
    expect(res.results).toHaveLength(10);
    const [r0, r1, r2, r3, r4, r5, r6, r7, r8, r9] = res.results;

    // The regions, each for its own request.
    const regionOf = (r: CreateRegionResult | undefined) => {
      expect(r?.result.case).toBe("region");
      if (r?.result.case !== "region") throw new Error("no region");
      return r.result.value;
    };
    const a = regionOf(r0);
    expect(uuidFromBytes(a.payloadId!.value)).toBe(ram);
    expect(a).toMatchObject({ tier: Tier.RAM, sizeBytes: 4096n });
    expect(a.location).toMatchObject({ case: "ram", value: { shmName: `/${prefix}${ram}.bin` } });
    const b = regionOf(r1);
    expect(uuidFromBytes(b.payloadId!.value)).toBe(disk);
    expect(b).toMatchObject({ tier: Tier.DISK, sizeBytes: 8192n });
    expect(b.location).toMatchObject({ case: "disk", value: { path: diskPath(disk) } });
    const c = regionOf(r2);
    expect(uuidFromBytes(c.payloadId!.value)).toBe(twice);
    expect(c.sizeBytes).toBe(1000n);
    const d = regionOf(r8);
    expect(uuidFromBytes(d.payloadId!.value)).toBe(ram2);
    expect(d.sizeBytes).toBe(3000n);

    // The refusals, each with the code CreateRegion would have answered, and a message.
    expect(errorCode(r3)).toBe(Code.AlreadyExists);
    expect(errorCode(r4)).toBe(Code.ResourceExhausted);
    expect(errorCode(r5)).toBe(Code.InvalidArgument);
    expect(errorCode(r6)).toBe(Code.InvalidArgument);
    expect(errorCode(r7)).toBe(Code.InvalidArgument);
    expect(errorCode(r9)).toBe(Code.AlreadyExists);
    for (const r of [r3, r4, r5, r6, r7, r9]) {
      expect(r?.result.case === "error" && r.result.value.message).toBeTruthy();
    }

    // The regions exist with their sizes; the refused ones left nothing behind.
    expect(statSync(ramPath(ram)).size).toBe(4096);
    expect(statSync(diskPath(disk)).size).toBe(8192);
    expect(statSync(ramPath(twice)).size).toBe(1000);
    expect(statSync(ramPath(ram2)).size).toBe(3000);
    for (const id of [tooBig, voidTier, unspecified, empty]) {
      expect(existsSync(ramPath(id))).toBe(false);
      expect(existsSync(diskPath(id))).toBe(false);
    }
    // The foreign file is left as it was.
    expect(readFileSync(ramPath(stray), "utf8")).toBe("foreign");
    expect(shmFiles().sort()).toEqual([ram, twice, ram2, stray].map((id) => `${prefix}${id}.bin`).sort());
    expect(diskFiles()).toEqual([`${disk}.bin`]);
    expect(agent.backend("RAM").usedBytes()).toBe(4096 + 1000 + 3000);
    expect(agent.backend("DISK").usedBytes()).toBe(8192);

    // The agent answers for them as for any region.
    const stat = await client().statRegion({ payloadId: { value: uuidToBytes(twice) }, tier: Tier.RAM });
    expect(stat.sizeBytes).toBe(1000n);
  });

  it(`takes ${MAX_CREATE_BATCH} regions in one call`, async () => {
    const ids = Array.from({ length: MAX_CREATE_BATCH }, newId);
    const res = await client().createRegions({ regions: ids.map((id) => regionReq(id, Tier.RAM, 16)) });
    expect(res.results.map((r) => r.result.case)).toEqual(ids.map(() => "region"));
    expect(
      res.results.map((r) =>
        r.result.case === "region" ? uuidFromBytes(r.result.value.payloadId!.value) : "",
      ),
    ).toEqual(ids);
    expect(shmFiles()).toHaveLength(MAX_CREATE_BATCH);
    expect(agent.backend("RAM").usedBytes()).toBe(16 * MAX_CREATE_BATCH);
  });

  it(`refuses more than ${MAX_CREATE_BATCH} regions in one call with INVALID_ARGUMENT, creating none`, async () => {
    const ids = Array.from({ length: MAX_CREATE_BATCH + 1 }, newId);
    const err = await client()
      .createRegions({
        regions: ids.map((id, i) => regionReq(id, i % 2 ? Tier.DISK : Tier.RAM, 16)),
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect(shmFiles()).toEqual([]);
    expect(diskFiles()).toEqual([]);
    expect(agent.backend("RAM").usedBytes()).toBe(0);
    expect(agent.backend("DISK").usedBytes()).toBe(0);
  });
});
