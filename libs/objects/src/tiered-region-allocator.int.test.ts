// The object-store allocator and the tiered composite against the real S3 server; tier agents
// are a fake at their port (ObjectCopyAgents).
import { randomUUID } from "node:crypto";
import {
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import {
  type AllocateRegionRequest,
  type CopyRegionRequest,
  DomainError,
  type PayloadId,
  type Placement,
  type StorageTier,
} from "@pm/domain";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { sidecarKeyOf } from "./object-keys.ts";
import { ObjectRegionAllocator, type ObjectTarget } from "./object-region-allocator.ts";
import { createS3Client } from "./s3-client.ts";
import { deletePrefix, objectSize, testObjectStore } from "./testing/index.ts";
import { type ObjectCopyAgents, TieredRegionAllocator } from "./tiered-region-allocator.ts";

const cfg = testObjectStore();
const s3 = createS3Client(cfg);
const prefix = `test-tiered-${process.pid}-${Date.now()}/`;
const objects = new ObjectRegionAllocator(s3, { bucket: cfg.bucket, keyPrefix: prefix });

afterAll(async () => {
  await deletePrefix(s3, cfg.bucket, prefix);
  s3.destroy();
});

const newId = () => randomUUID() as PayloadId;

function agentPlacement(tier: StorageTier, size: number, host = "host-a"): Placement {
  return {
    tier,
    agentId: `agent-${host}`,
    host,
    location: { kind: "disk", path: `/regions/${tier}`, offsetBytes: 0 },
    lengthBytes: size,
  };
}

/** Records what the composite asks of the agents; copyToObject "uploads" with a plain PUT. */
class FakeAgents implements ObjectCopyAgents {
  readonly calls: string[] = [];
  failUpload: Error | undefined;

  async allocate(req: AllocateRegionRequest): Promise<Placement> {
    this.calls.push(`allocate ${req.tier}`);
    return agentPlacement(req.tier, req.sizeBytes);
  }
  async free(_id: PayloadId, p: Placement): Promise<void> {
    this.calls.push(`free ${p.tier}`);
  }
  async copy(req: CopyRegionRequest): Promise<Placement> {
    this.calls.push(`copy ${req.from.tier}->${req.toTier}`);
    return agentPlacement(req.toTier, req.sizeBytes);
  }
  async copyToObject(req: CopyRegionRequest, target: ObjectTarget): Promise<Placement> {
    this.calls.push(`upload ${req.from.tier} s3://${target.bucket}/${target.key}`);
    await s3.send(new PutObjectCommand({ Bucket: target.bucket, Key: target.key, Body: "bytes" }));
    await s3.send(new PutObjectCommand({ Bucket: target.bucket, Key: sidecarKeyOf(target.key), Body: "{}" }));
    if (this.failUpload) throw this.failUpload;
    return objects.placementOf(target, req.sizeBytes, req.from.host);
  }
  async copyFromObject(req: CopyRegionRequest, preferredHost: string | undefined): Promise<Placement> {
    this.calls.push(`download ${req.toTier} prefer ${preferredHost ?? "-"}`);
    return agentPlacement(req.toTier, req.sizeBytes, preferredHost ?? "host-b");
  }
}

let agents: FakeAgents;
let tiered: TieredRegionAllocator;
beforeEach(() => {
  agents = new FakeAgents();
  tiered = new TieredRegionAllocator({ agents, objects });
});

const keyOf = (p: Placement) => (p.location.kind === "object" ? p.location.key : "");

describe("ObjectRegionAllocator and TieredRegionAllocator on the real object store", () => {
  it("allocating OBJECT only chooses <prefix><uuid> in the bucket; other tiers go to agents", async () => {
    const id = newId();
    const p = await tiered.allocate({ payloadId: id, tier: "OBJECT", sizeBytes: 10, preferredHost: "h" });
    expect(p).toEqual({
      tier: "OBJECT",
      agentId: "",
      host: "",
      location: { kind: "object", bucket: cfg.bucket, key: `${prefix}${id}` },
      lengthBytes: 10,
    });
    expect(await objectSize(s3, cfg.bucket, keyOf(p))).toBeUndefined();
    await tiered.allocate({ payloadId: id, tier: "RAM", sizeBytes: 10, preferredHost: undefined });
    expect(agents.calls).toEqual(["allocate RAM"]);
  });

  it("free deletes the object and its sidecar, and succeeds again when both are gone", async () => {
    const id = newId();
    const p = await objects.allocate({
      payloadId: id,
      tier: "OBJECT",
      sizeBytes: 5,
      preferredHost: undefined,
    });
    await s3.send(new PutObjectCommand({ Bucket: cfg.bucket, Key: keyOf(p), Body: "12345" }));
    await s3.send(new PutObjectCommand({ Bucket: cfg.bucket, Key: sidecarKeyOf(keyOf(p)), Body: "{}" }));
    await tiered.free(id, p);
    expect(await objectSize(s3, cfg.bucket, keyOf(p))).toBeUndefined();
    expect(await objectSize(s3, cfg.bucket, sidecarKeyOf(keyOf(p)))).toBeUndefined();
    await tiered.free(id, p);
    await tiered.free(id, agentPlacement("DISK", 5));
    expect(agents.calls).toEqual(["free DISK"]);
  });

  it("free aborts an unfinished multipart upload of the key", async () => {
    const id = newId();
    const p = await objects.allocate({
      payloadId: id,
      tier: "OBJECT",
      sizeBytes: 5,
      preferredHost: undefined,
    });
    const up = await s3.send(new CreateMultipartUploadCommand({ Bucket: cfg.bucket, Key: keyOf(p) }));
    await s3.send(
      new UploadPartCommand({
        Bucket: cfg.bucket,
        Key: keyOf(p),
        UploadId: up.UploadId,
        PartNumber: 1,
        Body: "x",
      }),
    );
    const open = async () =>
      (
        (await s3.send(new ListMultipartUploadsCommand({ Bucket: cfg.bucket, Prefix: keyOf(p) }))).Uploads ??
        []
      ).length;
    expect(await open()).toBe(1);
    await tiered.free(id, p);
    expect(await open()).toBe(0);
  });

  it("a copy to OBJECT runs on the agent holding the source, into <prefix><uuid>", async () => {
    const id = newId();
    const from = agentPlacement("DISK", 5, "host-a");
    const p = await tiered.copy({ payloadId: id, sizeBytes: 5, from, toTier: "OBJECT", fsync: false });
    expect(agents.calls).toEqual([`upload DISK s3://${cfg.bucket}/${prefix}${id}`]);
    expect(p).toMatchObject({ tier: "OBJECT", agentId: "", host: "host-a", lengthBytes: 5 });
    expect(keyOf(p)).toBe(`${prefix}${id}`);
  });

  it("never overwrites an object an older placement still holds: LEASE_CONFLICT, agents untouched", async () => {
    const id = newId();
    await s3.send(new PutObjectCommand({ Bucket: cfg.bucket, Key: `${prefix}${id}`, Body: "old" }));
    const err = await tiered
      .copy({ payloadId: id, sizeBytes: 5, from: agentPlacement("RAM", 5), toTier: "OBJECT", fsync: false })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DomainError);
    expect((err as DomainError).code).toBe("LEASE_CONFLICT");
    expect((err as DomainError).retryable).toBe(true);
    expect(agents.calls).toEqual([]);
    expect(await objectSize(s3, cfg.bucket, `${prefix}${id}`)).toBe(3);
  });

  it("a failed upload leaves neither object nor sidecar behind and keeps the agent's error", async () => {
    const id = newId();
    agents.failUpload = new DomainError("UNAVAILABLE", "agent went away");
    const err = await tiered
      .copy({ payloadId: id, sizeBytes: 5, from: agentPlacement("RAM", 5), toTier: "OBJECT", fsync: false })
      .catch((e: unknown) => e);
    expect((err as DomainError).message).toBe("agent went away");
    expect(await objectSize(s3, cfg.bucket, `${prefix}${id}`)).toBeUndefined();
    expect(await objectSize(s3, cfg.bucket, sidecarKeyOf(`${prefix}${id}`))).toBeUndefined();
  });

  it("a copy from OBJECT goes to an agent with the target tier, preferring the host that uploaded it", async () => {
    const id = newId();
    const from = objects.placementOf(objects.targetOf(id), 5, "host-a");
    const p = await tiered.copy({ payloadId: id, sizeBytes: 5, from, toTier: "RAM", fsync: false });
    expect(agents.calls).toEqual(["download RAM prefer host-a"]);
    expect(p.tier).toBe("RAM");
    const fromClient = objects.placementOf(objects.targetOf(id), 5);
    await tiered.copy({ payloadId: id, sizeBytes: 5, from: fromClient, toTier: "DISK", fsync: false });
    expect(agents.calls[1]).toBe("download DISK prefer -");
  });

  it("host-local copies stay with the agents; OBJECT to OBJECT is refused", async () => {
    const id = newId();
    await tiered.copy({
      payloadId: id,
      sizeBytes: 5,
      from: agentPlacement("RAM", 5),
      toTier: "DISK",
      fsync: true,
    });
    expect(agents.calls).toEqual(["copy RAM->DISK"]);
    const from = objects.placementOf(objects.targetOf(id), 5);
    await expect(
      tiered.copy({ payloadId: id, sizeBytes: 5, from, toTier: "OBJECT", fsync: false }),
    ).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(
      objects.copy({ payloadId: id, sizeBytes: 5, from, toTier: "RAM", fsync: false }),
    ).rejects.toMatchObject({
      code: "TIER_UNAVAILABLE",
    });
  });
});
