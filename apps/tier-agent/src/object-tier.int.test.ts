// The agent's object tier against the real S3 server (Swift s3api from infra/dev/services.sh) and
// real /dev/shm and files: multipart uploads streamed from regions, the metadata sidecar, ranged
// downloads verified against it, and the Connect service passing bucket/key through.
import { createHash, randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { fromJsonString } from "@bufbuild/protobuf";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { type PayloadId, uuidFromBytes, uuidToBytes } from "@pm/domain";
import { createS3Client, objectKeyOf, sidecarKeyOf } from "@pm/objects";
import { deletePrefix, objectSize, testObjectStore, testObjectStoreEnv } from "@pm/objects/testing";
import { HashAlgorithm, PayloadArchiveMetadataSchema, Tier, TierAgentService } from "@pm/rpc";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { AgentConfigSchema, loadAgentConfig } from "./config.ts";
import { tierAgentService } from "./service.ts";
import { TierAgent } from "./tier-agent.ts";
import { diskTier } from "./tiers/disk.ts";
import { ObjectTier } from "./tiers/object.ts";
import { ramTier } from "./tiers/ram.ts";

const MIB = 1024 * 1024;
const store = testObjectStore();
const s3 = createS3Client(store);
const keyPrefix = `test-agent-${process.pid}-${Date.now()}/`;

let dir: string;
let prefix: string;
let agent: TierAgent;

function objectStore(opts: Partial<ConstructorParameters<typeof ObjectTier>[1]> = {}): ObjectTier {
  return new ObjectTier(createS3Client(store, { maxAttempts: 1 }), {
    bucket: store.bucket,
    partSizeBytes: 5 * MIB,
    concurrency: 3,
    maxParts: 1000,
    attempts: 3,
    producer: "agent-under-test",
    wholeChecksum: true,
    ...opts,
  });
}

function makeAgent(withObjectStore = true): TierAgent {
  const cfg = AgentConfigSchema.parse({
    tiers: {
      ram: { prefix, capacityBytes: 1 << 30 },
      disk: { root: join(dir, "disk"), capacityBytes: 1 << 30 },
    },
  });
  const objects = withObjectStore ? objectStore() : undefined;
  return new TierAgent([ramTier(cfg.tiers.ram, undefined), diskTier(cfg.tiers.disk, undefined)], [], objects);
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "pm-agent-obj-"));
  prefix = `pmt-obj-${process.pid}-${Math.floor(Math.random() * 1e6)}-`;
  agent = makeAgent();
});
afterEach(async () => {
  for (const b of agent.tiers()) for (const r of await b.list()) await b.free(r.payloadId);
  await agent.close();
  rmSync(dir, { recursive: true, force: true });
});
afterAll(async () => {
  await deletePrefix(s3, store.bucket, keyPrefix);
  s3.destroy();
});

const newId = () => randomUUID() as PayloadId;
const refOf = (id: PayloadId) => ({ bucket: store.bucket, key: objectKeyOf(keyPrefix, id) });
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Writes `size` deterministic bytes into a new region of `tier` and returns them. */
async function region(id: PayloadId, tier: "RAM" | "DISK", size: number, seed = 1): Promise<Buffer> {
  await agent.create(id, tier, size);
  const bytes = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i + 4 <= size; i += 4) {
    x = (x * 1664525 + 1013904223) >>> 0;
    bytes.writeUInt32LE(x, i);
  }
  writeFileSync(agent.backend(tier).filePath(id)!, bytes);
  return bytes;
}

async function readSidecar(key: string) {
  const res = await s3.send(new GetObjectCommand({ Bucket: store.bucket, Key: sidecarKeyOf(key) }));
  return fromJsonString(PayloadArchiveMetadataSchema, await res.Body!.transformToString());
}

describe("tier agent copies to and from the object store (real S3, shm and files)", () => {
  it("spills DISK → OBJECT in streamed parts with a sidecar, and promotes OBJECT → RAM intact", async () => {
    const id = newId();
    const size = 23 * MIB + 123; // five 5 MiB parts, the last one short
    const bytes = await region(id, "DISK", size, 7);
    const ref = refOf(id);

    const up = await agent.copy(id, "DISK", "OBJECT", false, ref);
    expect(up.region.location).toEqual({ kind: "object", bucket: store.bucket, key: ref.key });
    expect(up.bytesCopied).toBe(size);
    expect(up.checksum).toBe(`sha256:${sha256(bytes)}`);
    expect(await objectSize(s3, store.bucket, ref.key)).toBe(size);

    const meta = await readSidecar(ref.key);
    expect(uuidFromBytes(meta.uuid!.value)).toBe(id);
    expect(meta.metadataVersion).toBe(1);
    expect(Math.abs(Number(meta.archivedAt!.seconds) * 1000 - Date.now())).toBeLessThan(60_000);
    expect(meta.producer).toBe("agent-under-test");
    expect(meta.payloadDescriptor).toMatchObject({ tier: Tier.OBJECT, sizeBytes: BigInt(size) });
    expect(meta.payloadDescriptor?.location).toMatchObject({
      case: "object",
      value: { bucket: store.bucket, key: ref.key, lengthBytes: BigInt(size) },
    });
    expect(meta.integrity?.algorithm).toBe(HashAlgorithm.HASH_SHA256);
    expect(Buffer.from(meta.integrity!.checksum).toString("hex")).toBe(sha256(bytes));
    const chunks = meta.integrity!.chunkHashes;
    expect(chunks.map((c) => Number(c.length))).toEqual([5 * MIB, 5 * MIB, 5 * MIB, 5 * MIB, 3 * MIB + 123]);
    for (const c of chunks) {
      const part = bytes.subarray(Number(c.offset), Number(c.offset) + Number(c.length));
      expect(Buffer.from(c.checksum).toString("hex")).toBe(sha256(part));
    }

    const down = await agent.copy(id, "OBJECT", "RAM", false, ref);
    expect(down.region.location).toEqual({ kind: "ram", shmName: `/${prefix}${id}.bin` });
    const ram = readFileSync(`/dev/shm/${prefix}${id}.bin`);
    expect(ram.length).toBe(size);
    expect(sha256(ram)).toBe(sha256(bytes));
    expect(await agent.checksum(id, "RAM")).toBe(`sha256:${sha256(bytes)}`);
  });

  it("uploads a payload smaller than a part with one PUT and downloads it to DISK", async () => {
    const id = newId();
    const bytes = await region(id, "RAM", 1000, 3);
    const ref = refOf(id);
    const up = await agent.copy(id, "RAM", "OBJECT", false, ref);
    expect(up.checksum).toBe(`sha256:${sha256(bytes)}`);
    expect((await readSidecar(ref.key)).integrity?.chunkHashes).toHaveLength(1);
    await agent.free(id, "RAM");
    await agent.copy(id, "OBJECT", "DISK", true, ref);
    expect(readFileSync(join(dir, "disk", `${id}.bin`)).equals(bytes)).toBe(true);
  });

  it("downloads an object without a sidecar (a client upload) and finds corruption when there is one", async () => {
    const id = newId();
    const ref = refOf(id);
    const bytes = Buffer.alloc(12 * MIB, 9);
    await s3.send(new PutObjectCommand({ Bucket: store.bucket, Key: ref.key, Body: bytes }));
    await agent.copy(id, "OBJECT", "RAM", false, ref);
    expect(sha256(readFileSync(`/dev/shm/${prefix}${id}.bin`))).toBe(sha256(bytes));
    await agent.free(id, "RAM");

    // Upload through the agent (sidecar with part digests), then replace the object's bytes.
    await region(id, "DISK", 12 * MIB, 5);
    await deletePrefix(s3, store.bucket, ref.key);
    await agent.copy(id, "DISK", "OBJECT", false, ref);
    await s3.send(new PutObjectCommand({ Bucket: store.bucket, Key: ref.key, Body: bytes }));
    await expect(agent.copy(id, "OBJECT", "RAM", false, ref)).rejects.toMatchObject({
      code: "IO",
      message: expect.stringMatching(/sha256/),
    });
    expect(await agent.backend("RAM").stat(id)).toBeUndefined();
    expect(existsSync(`/dev/shm/${prefix}${id}.bin`)).toBe(false);
  });

  it("refuses foreign buckets and keys, missing objects, occupied targets, and agents without a store", async () => {
    const id = newId();
    await region(id, "DISK", 4096);
    const ref = refOf(id);
    await expect(
      agent.copy(id, "DISK", "OBJECT", false, { ...ref, bucket: "other-bucket" }),
    ).rejects.toMatchObject({
      code: "INVALID",
    });
    await expect(
      agent.copy(id, "DISK", "OBJECT", false, { bucket: store.bucket, key: objectKeyOf(keyPrefix, newId()) }),
    ).rejects.toMatchObject({ code: "INVALID" });
    await expect(
      agent.copy(id, "DISK", "OBJECT", false, { bucket: store.bucket, key: `../${id}` }),
    ).rejects.toMatchObject({ code: "INVALID" });
    await expect(agent.copy(id, "DISK", "OBJECT", false)).rejects.toMatchObject({ code: "INVALID" });
    await expect(agent.copy(id, "OBJECT", "RAM", false, ref)).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect(await agent.backend("RAM").stat(id)).toBeUndefined();

    await agent.copy(id, "DISK", "OBJECT", false, ref);
    await expect(agent.copy(id, "OBJECT", "DISK", false, ref)).rejects.toMatchObject({ code: "EXISTS" });
    await expect(agent.copy(id, "OBJECT", "GPU", false, ref)).rejects.toMatchObject({ code: "UNSUPPORTED" });

    const bare = makeAgent(false);
    try {
      expect(bare.hasObjectStore()).toBe(false);
      await expect(bare.copy(id, "DISK", "OBJECT", false, ref)).rejects.toMatchObject({
        code: "UNSUPPORTED",
      });
    } finally {
      await bare.close();
    }
  });

  it("the Connect service passes bucket and key through and reports the checksum", async () => {
    const id = newId();
    const bytes = await region(id, "RAM", 6 * MIB + 1, 11);
    const ref = refOf(id);
    const client = createClient(
      TierAgentService,
      createRouterTransport((r) => r.service(TierAgentService, tierAgentService(agent))),
    );
    const up = await client.copyRegion({
      payloadId: { value: uuidToBytes(id) },
      fromTier: Tier.RAM,
      toTier: Tier.OBJECT,
      bucket: ref.bucket,
      key: ref.key,
    });
    expect(up.region?.location).toMatchObject({
      case: "object",
      value: { bucket: ref.bucket, key: ref.key },
    });
    expect(up.checksum).toBe(`sha256:${sha256(bytes)}`);
    await agent.free(id, "RAM");
    const down = await client.copyRegion({
      payloadId: { value: uuidToBytes(id) },
      fromTier: Tier.OBJECT,
      toTier: Tier.DISK,
      bucket: ref.bucket,
      key: ref.key,
    });
    expect(down.region?.location.case).toBe("disk");
    expect(down.bytesCopied).toBe(BigInt(6 * MIB + 1));
    expect(sha256(readFileSync(join(dir, "disk", `${id}.bin`)))).toBe(sha256(bytes));
  });
});

describe("agent objectStore configuration", () => {
  it("reads the PM_S3_* variables", () => {
    const cfg = loadAgentConfig(undefined, {
      ...testObjectStoreEnv(store),
      PM_S3_PART_SIZE_BYTES: String(8 * MIB),
    });
    expect(cfg.objectStore).toMatchObject({
      endpoint: store.endpoint,
      region: store.region,
      bucket: store.bucket,
      accessKeyId: store.accessKeyId,
      secretAccessKey: store.secretAccessKey,
      forcePathStyle: true,
      partSizeBytes: 8 * MIB,
      concurrency: 4,
    });
    expect(loadAgentConfig(undefined, {}).objectStore).toBeUndefined();
  });

  it("lists every missing setting at once", () => {
    let problems: readonly string[] = [];
    try {
      loadAgentConfig(undefined, { PM_S3_ENDPOINT: "http://127.0.0.1:9000", PM_S3_PART_SIZE_BYTES: "1024" });
    } catch (e) {
      problems = (e as { problems: readonly string[] }).problems;
    }
    expect(problems.join("\n")).toMatch(/objectStore\.bucket/);
    expect(problems.join("\n")).toMatch(/objectStore\.accessKeyId/);
    expect(problems.join("\n")).toMatch(/objectStore\.secretAccessKey/);
    expect(problems.join("\n")).toMatch(/objectStore\.partSizeBytes/);
  });
});
