import { createHash, randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PayloadId } from "@pm/domain";
import { nativeApi } from "@pm/native";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AgentConfigSchema } from "./config.ts";
import { reconcile } from "./reconcile.ts";
import { TierAgent } from "./tier-agent.ts";
import { diskTier } from "./tiers/disk.ts";
import { ramTier } from "./tiers/ram.ts";
import { TierError } from "./tiers/tier-backend.ts";

const silent = { info() {}, warn() {}, error() {} };
let dir: string;
let prefix: string;
let agent: TierAgent;

const native = nativeApi();
const nativeCreate = async (path: string, size: number, mode: number) => {
  await native.createFile(path, size, { mode, exclusive: true });
};

function makeAgent(
  ramCapacity = 1 << 30,
  diskCapacity = 1 << 30,
  create: typeof nativeCreate | undefined = undefined,
) {
  const cfg = AgentConfigSchema.parse({
    tiers: {
      ram: { prefix, capacityBytes: ramCapacity },
      disk: { root: join(dir, "disk"), capacityBytes: diskCapacity },
    },
  });
  return new TierAgent([ramTier(cfg.tiers.ram, create), diskTier(cfg.tiers.disk, create)]);
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "pm-agent-"));
  prefix = `pmt-${process.pid}-${Math.floor(Math.random() * 1e6)}-`;
  agent = makeAgent();
});
afterEach(async () => {
  for (const b of agent.tiers()) for (const r of await b.list()) await b.free(r.payloadId);
  rmSync(dir, { recursive: true, force: true });
});

const id = () => randomUUID() as PayloadId;

describe("tier agent regions on real shared memory and files", () => {
  it("creates a RAM region as a 0600 segment in /dev/shm named from the payload id", async () => {
    const p = id();
    const r = await agent.create(p, "RAM", 65536);
    expect(r.location).toEqual({ kind: "ram", shmName: `/${prefix}${p}.bin` });
    const st = statSync(`/dev/shm/${prefix}${p}.bin`);
    expect(st.size).toBe(65536);
    expect(st.mode & 0o777).toBe(0o600);
    expect(agent.backend("RAM").usedBytes()).toBe(65536);
    await expect(agent.create(p, "RAM", 10)).rejects.toMatchObject({ code: "EXISTS" });
    await agent.free(p, "RAM");
    expect(existsSync(`/dev/shm/${prefix}${p}.bin`)).toBe(false);
    expect(agent.backend("RAM").usedBytes()).toBe(0);
    await agent.free(p, "RAM");
  });

  it("with the native addon, regions are created exclusively with their bytes reserved", async () => {
    agent = makeAgent(1 << 30, 1 << 30, nativeCreate);
    const p = id();
    await agent.create(p, "RAM", 8 << 20);
    const st = statSync(`/dev/shm/${prefix}${p}.bin`);
    expect(st.size).toBe(8 << 20);
    expect(st.blocks * 512).toBeGreaterThanOrEqual(8 << 20);
    expect(st.mode & 0o777).toBe(0o600);
    await expect(agent.create(p, "RAM", 10)).rejects.toMatchObject({ code: "EXISTS" });
    const d = id();
    await agent.create(d, "DISK", 1 << 20);
    expect(statSync(join(dir, "disk", `${d}.bin`)).blocks * 512).toBeGreaterThanOrEqual(1 << 20);
  });

  it("enforces capacity and leaves nothing behind when full", async () => {
    agent = makeAgent(100_000);
    await agent.create(id(), "RAM", 60_000);
    const p = id();
    await expect(agent.create(p, "RAM", 60_000)).rejects.toMatchObject({ code: "FULL" });
    expect(existsSync(`/dev/shm/${prefix}${p}.bin`)).toBe(false);
    expect(agent.backend("RAM").usedBytes()).toBe(60_000);
  });

  it("refuses names that are not payload ids and tiers it does not have", async () => {
    await expect(agent.create("../../etc/passwd" as PayloadId, "DISK", 10)).rejects.toBeInstanceOf(TierError);
    await expect(agent.create(id(), "GPU", 10)).rejects.toMatchObject({ code: "UNSUPPORTED" });
    await expect(agent.create(id(), "RAM", 0)).rejects.toMatchObject({ code: "INVALID" });
  });

  it("copies RAM → DISK → RAM with the bytes intact and the same checksum", async () => {
    const p = id();
    await agent.create(p, "RAM", 3 << 20);
    const bytes = Buffer.alloc(3 << 20);
    for (let i = 0; i < bytes.length; i += 4) bytes.writeUInt32LE((i * 2654435761) >>> 0, i);
    writeFileSync(`/dev/shm/${prefix}${p}.bin`, bytes);
    const want = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    expect(await agent.checksum(p, "RAM")).toBe(want);

    const toDisk = await agent.copy(p, "RAM", "DISK", true);
    expect(toDisk.bytesCopied).toBe(3 << 20);
    expect(toDisk.region.location.kind).toBe("disk");
    const path = toDisk.region.location.kind === "disk" ? toDisk.region.location.path : "";
    expect(readFileSync(path).equals(bytes)).toBe(true);
    expect(await agent.checksum(p, "DISK")).toBe(want);

    await agent.free(p, "RAM");
    await agent.copy(p, "DISK", "RAM", false);
    expect(await agent.checksum(p, "RAM")).toBe(want);
  });

  it("a failed copy leaves no target region", async () => {
    const p = id();
    await agent.create(p, "DISK", 1000);
    agent = makeAgent(500);
    await expect(agent.copy(p, "DISK", "RAM", false)).rejects.toMatchObject({ code: "FULL" });
    expect(await agent.backend("RAM").stat(p)).toBeUndefined();
  });

  it("finds regions left from a previous run and frees only orphans after the grace period", async () => {
    const known = id();
    const orphan = id();
    const late = id();
    await agent.create(known, "DISK", 100);
    await agent.create(orphan, "RAM", 100);
    await agent.create(late, "RAM", 100);
    const restarted = makeAgent();
    expect(restarted.backend("RAM").usedBytes()).toBe(200);
    let calls = 0;
    const report = await reconcile(
      restarted,
      async () => {
        calls++;
        // The second look (after the grace period) knows `late`: its allocation was in flight.
        return new Set(calls === 1 ? [`${known}@DISK`] : [`${known}@DISK`, `${late}@RAM`]);
      },
      10,
      silent,
    );
    expect(report).toEqual({ adopted: 1, orphans: 2, freed: 1 });
    expect(existsSync(`/dev/shm/${prefix}${orphan}.bin`)).toBe(false);
    expect(existsSync(`/dev/shm/${prefix}${late}.bin`)).toBe(true);
    expect(await restarted.backend("DISK").stat(known)).toBeDefined();
    agent = restarted;
  });
});
