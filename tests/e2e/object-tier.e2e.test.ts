// The object tier end to end: a real `payload-manager` (API + tier agent) with PM_S3_* pointing at
// the S3 server from infra/dev/services.sh, producers and consumers in their own processes reading
// through shared memory, and object bytes moving only between the agent or client and S3.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { fromJsonString } from "@bufbuild/protobuf";
import { createPayloadClient, idBytes, type PayloadClient } from "@pm/client";
// Until @pm/client/node exports the object helpers, import them from their file.
import { getObject, putObject } from "@pm/client/node";
import { uuidFromBytes } from "@pm/domain";
import { createS3Client, sidecarKeyOf } from "@pm/objects";
import { objectSize, testObjectStore, testObjectStoreEnv } from "@pm/objects/testing";
import {
  PayloadArchiveMetadataSchema,
  type PayloadDescriptor,
  PayloadState,
  PromotionPolicy,
  SpillPolicy,
  Tier,
} from "@pm/rpc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningSystem, removeDataDir, runNode, startSystem } from "../support/system.ts";

const MIB = 1024 * 1024;
const store = testObjectStore();
const s3 = createS3Client(store);
let sys: RunningSystem;
let client: PayloadClient;

beforeAll(async () => {
  sys = await startSystem({
    env: {
      ...testObjectStoreEnv(store),
      // Small parts so a 40 MiB payload goes up in several streamed parts.
      PM_S3_PART_SIZE_BYTES: String(8 * MIB),
      PM_RAM_CAPACITY_BYTES: String(256 * MIB),
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    },
  });
  client = createPayloadClient({ baseUrl: sys.url });
});
afterAll(async () => {
  await sys?.stop();
  for (const f of readdirSync("/dev/shm"))
    if (sys && f.startsWith(sys.ramPrefix)) removeDataDir(join("/dev/shm", f));
  if (sys) removeDataDir(sys.dataDir);
  s3.destroy();
});

interface Produced {
  id: string;
  sha256: string;
}
interface Consumed {
  sha256: string;
  size: number;
  tier: number;
}

function objectKey(d: PayloadDescriptor | undefined): string {
  if (d?.location.case !== "object") throw new Error(`expected an object location, got ${d?.location.case}`);
  return d.location.value.key;
}

async function spill(id: string, targetTier: Tier): Promise<PayloadDescriptor> {
  const res = await client.catalog.spill({
    ids: [idBytes(id)],
    policy: SpillPolicy.BLOCKING,
    targetTier,
  });
  const r = res.results[0]!;
  expect(r.errorMessage).toBe("");
  expect(r.ok).toBe(true);
  return r.payloadDescriptor!;
}

async function promote(id: string, targetTier: Tier): Promise<PayloadDescriptor> {
  const res = await client.catalog.promote({ id: idBytes(id), targetTier, policy: PromotionPolicy.BLOCKING });
  return res.payloadDescriptor!;
}

const sha256 = async (b: Uint8Array) =>
  (await import("node:crypto")).createHash("sha256").update(b).digest("hex");

describe("object tier end to end (real API, agent, S3, producer and consumer processes)", () => {
  it("spills RAM → DISK → OBJECT and promotes back to RAM, read through shm by another process", async () => {
    const size = 40 * MIB + 17;
    const p = await runNode<Produced>("tests/e2e/fixtures/producer.ts", [sys.url, "RAM", String(size), "21"]);
    const shm = `/dev/shm/${sys.ramPrefix}${p.id}.bin`;
    const disk = join(sys.diskRoot, `${p.id}.bin`);
    expect(existsSync(shm)).toBe(true);

    const onDisk = await spill(p.id, Tier.DISK);
    expect(onDisk.tier).toBe(Tier.DISK);
    expect(existsSync(disk)).toBe(true);
    expect(existsSync(shm)).toBe(false);

    const inStore = await spill(p.id, Tier.OBJECT);
    expect(inStore).toMatchObject({ tier: Tier.OBJECT, state: PayloadState.DURABLE, agentId: "" });
    const key = objectKey(inStore);
    expect(key).toBe(`payloads/${p.id}`);
    expect(await objectSize(s3, store.bucket, key)).toBe(size);
    expect(existsSync(disk)).toBe(false);
    const sidecar = await s3.send(new GetObjectCommand({ Bucket: store.bucket, Key: sidecarKeyOf(key) }));
    const meta = fromJsonString(PayloadArchiveMetadataSchema, await sidecar.Body!.transformToString());
    expect(uuidFromBytes(meta.uuid!.value)).toBe(p.id);
    expect(Buffer.from(meta.integrity!.checksum).toString("hex")).toBe(p.sha256);
    expect(meta.integrity!.chunkHashes).toHaveLength(6);

    // Readers of an object payload get a presigned GET straight from the store.
    const viaUrl = await getObject(client, p.id, { leaseMs: 10_000 });
    expect(await sha256(viaUrl)).toBe(p.sha256);

    const back = await promote(p.id, Tier.RAM);
    expect(back).toMatchObject({ tier: Tier.RAM, state: PayloadState.ACTIVE });
    expect(existsSync(shm)).toBe(true);
    const c = await runNode<Consumed>("tests/e2e/fixtures/consumer.ts", [sys.url, p.id]);
    expect(c).toMatchObject({ sha256: p.sha256, size, tier: Tier.RAM });
    // No lease held the object placement any more: it was freed with its sidecar.
    expect(await objectSize(s3, store.bucket, key)).toBeUndefined();
    expect(await objectSize(s3, store.bucket, sidecarKeyOf(key))).toBeUndefined();

    await client.catalog.delete({ id: idBytes(p.id) });
    expect(existsSync(shm)).toBe(false);
  });

  it("a client upload to a presigned URL commits, promotes to DISK, spills back, and delete removes object and sidecar", async () => {
    const bytes = new Uint8Array(9 * MIB + 5);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + 7) & 0xff;
    const want = await sha256(bytes);
    const put = await putObject(client, bytes);
    expect(put.descriptor).toMatchObject({ tier: Tier.OBJECT, state: PayloadState.DURABLE });
    expect(put.uploadPath).toBe(`s3://${store.bucket}/payloads/${put.id}`);
    expect(await sha256(await getObject(client, put.id))).toBe(want);

    const onDisk = await promote(put.id, Tier.DISK);
    expect(onDisk.tier).toBe(Tier.DISK);
    const c = await runNode<Consumed>("tests/e2e/fixtures/consumer.ts", [sys.url, put.id]);
    expect(c).toMatchObject({ sha256: want, tier: Tier.DISK });

    const key = objectKey(await spill(put.id, Tier.OBJECT));
    expect(await objectSize(s3, store.bucket, sidecarKeyOf(key))).toBeGreaterThan(0);
    await client.catalog.delete({ id: idBytes(put.id) });
    expect(await objectSize(s3, store.bucket, key)).toBeUndefined();
    expect(await objectSize(s3, store.bucket, sidecarKeyOf(key))).toBeUndefined();
  });
});
