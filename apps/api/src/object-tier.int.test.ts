// The object tier through the real API process wiring (startApi with objectStore from PM_S3_*,
// SQLite catalog, real sockets) against the real S3 server: the API presigns and HEADs, the
// test uploads and downloads with plain fetch — no object bytes pass through the API.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { uuidFromBytes } from "@pm/domain";
import { createS3Client, sidecarKeyOf } from "@pm/objects";
import { deletePrefix, objectSize, testObjectStore, testObjectStoreEnv } from "@pm/objects/testing";
import {
  PayloadCatalogService,
  PayloadDataService,
  type PayloadDescriptor,
  PayloadState,
  Tier,
} from "@pm/rpc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "./config.ts";
import { consoleLogger } from "./logger.ts";
import { type ApiHandle, startApi } from "./main.ts";

const store = testObjectStore();
const s3 = createS3Client(store);
const keyPrefix = `test-api-${process.pid}-${Date.now()}/`;
let dataDir: string;
let api: ApiHandle;
let catalog: ReturnType<typeof createClient<typeof PayloadCatalogService>>;
let data: ReturnType<typeof createClient<typeof PayloadDataService>>;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "pm-api-obj-"));
  const config = loadConfig(undefined, {
    ...testObjectStoreEnv(store),
    PM_HTTP_PORT: "0",
    PM_GRPC_PORT: "0",
    PM_DATA_DIR: dataDir,
    PM_CATALOG_URL: `sqlite:${join(dataDir, "catalog.db")}`,
  });
  api = await startApi(
    { ...config, objectStore: { ...config.objectStore!, keyPrefix } },
    { log: consoleLogger("silent") },
  );
  const transport = createConnectTransport({ baseUrl: api.httpUrl, useBinaryFormat: true });
  catalog = createClient(PayloadCatalogService, transport);
  data = createClient(PayloadDataService, transport);
});
afterAll(async () => {
  await api?.close();
  rmSync(dataDir, { recursive: true, force: true });
  await deletePrefix(s3, store.bucket, keyPrefix);
  s3.destroy();
});

async function codeOf(p: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await p;
  } catch (e) {
    const err = ConnectError.from(e);
    return { code: err.code, message: err.rawMessage };
  }
  throw new Error("expected the call to fail");
}

function objectOf(d: PayloadDescriptor | undefined) {
  if (d?.location.case !== "object") throw new Error(`expected an object location, got ${d?.location.case}`);
  return d.location.value;
}

const ms = (t: { seconds: bigint; nanos: number } | undefined) =>
  t ? Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6) : Number.NaN;

async function allocate(size: number) {
  const res = await catalog.allocatePayload({ sizeBytes: BigInt(size), preferredTier: Tier.OBJECT });
  return { res, d: res.payloadDescriptor!, obj: objectOf(res.payloadDescriptor) };
}

async function put(url: string, body: string | Uint8Array): Promise<number> {
  const res = await fetch(url, { method: "PUT", body: body as BodyInit });
  await res.body?.cancel();
  return res.status;
}

async function state(d: PayloadDescriptor): Promise<PayloadState | undefined> {
  return (await data.resolveSnapshot({ id: d.payloadId })).payloadDescriptor?.state;
}

describe("object tier through the API (presign only) on the real object store", () => {
  it("Allocate(OBJECT) presigns a PUT to s3://bucket/<prefix><uuid>; the upload then commits DURABLE", async () => {
    const before = Date.now();
    const { res, d, obj } = await allocate(11);
    const id = uuidFromBytes(d.payloadId!.value);
    expect(d.state).toBe(PayloadState.ALLOCATED);
    expect(d.tier).toBe(Tier.OBJECT);
    expect(obj).toMatchObject({ bucket: store.bucket, key: `${keyPrefix}${id}`, lengthBytes: 11n });
    expect(res.objectUploadPath).toBe(`s3://${store.bucket}/${keyPrefix}${id}`);
    expect(new URL(obj.url).searchParams.get("x-id")).toBe("PutObject");
    // The PUT URL lives no longer than the allocation timeout (10 min) nor the URL cap (15 min).
    expect(ms(obj.urlExpiresAt)).toBeLessThanOrEqual(Date.now() + 600_000);
    expect(ms(obj.urlExpiresAt)).toBeGreaterThan(before + 60_000);
    expect(await objectSize(s3, store.bucket, obj.key)).toBeUndefined();

    expect(await put(obj.url, "hello world")).toBe(200);
    const committed = await catalog.commitPayload({ id: d.payloadId, sizeBytes: 11n });
    expect(committed.payloadDescriptor?.state).toBe(PayloadState.DURABLE);
    expect(committed.payloadDescriptor?.version).toBe(2n);
    // A committed object's descriptor carries a GET URL, not the PUT.
    const get = objectOf(committed.payloadDescriptor).url;
    expect(new URL(get).searchParams.get("x-id")).toBe("GetObject");
    expect(await (await fetch(get)).text()).toBe("hello world");
  });

  it("commit before the upload is FAILED_PRECONDITION and leaves the payload ALLOCATED", async () => {
    const { d } = await allocate(16);
    const err = await codeOf(catalog.commitPayload({ id: d.payloadId }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.message).toMatch(/not been uploaded/);
    expect(await state(d)).toBe(PayloadState.ALLOCATED);
    const imp = await codeOf(catalog.importPayload({ id: d.payloadId, sizeBytes: 16n }));
    expect(imp.code).toBe(Code.FailedPrecondition);
    expect(await state(d)).toBe(PayloadState.ALLOCATED);
  });

  it("an upload of the wrong size is FAILED_PRECONDITION and stays ALLOCATED; the right size then imports", async () => {
    const { d, obj } = await allocate(16);
    expect(await put(obj.url, "only ten b")).toBe(200);
    const err = await codeOf(catalog.commitPayload({ id: d.payloadId }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.message).toMatch(/holds 10 bytes but 16 were allocated/);
    expect(await state(d)).toBe(PayloadState.ALLOCATED);

    expect(await put(obj.url, "exactly 16 bytes")).toBe(200);
    await catalog.importPayload({ id: d.payloadId, sizeBytes: 16n });
    expect(await state(d)).toBe(PayloadState.DURABLE);
  });

  it("a read lease gets a GET URL that works and dies no later than the lease", async () => {
    const { d, obj } = await allocate(5);
    await put(obj.url, "bytes");
    await catalog.commitPayload({ id: d.payloadId });
    const lease = await data.acquireReadLease({ id: d.payloadId, minLeaseDurationMs: 2_000n });
    const url = objectOf(lease.payloadDescriptor).url;
    const urlExpiresAt = ms(objectOf(lease.payloadDescriptor).urlExpiresAt);
    const leaseExpiresAt = ms(lease.leaseExpiresAt);
    expect(urlExpiresAt).toBeLessThanOrEqual(leaseExpiresAt);
    const q = new URL(url).searchParams;
    expect(Number(q.get("X-Amz-Expires"))).toBeLessThanOrEqual(2);
    expect(await (await fetch(url)).text()).toBe("bytes");

    const deadline = leaseExpiresAt + 5_000;
    let status = 200;
    while (Date.now() < deadline && status === 200) {
      await new Promise((r) => setTimeout(r, 200));
      const res = await fetch(url);
      await res.body?.cancel();
      status = res.status;
      // Whenever it still works, the lease has not ended yet.
      if (status === 200) expect(Date.now()).toBeLessThanOrEqual(leaseExpiresAt + 1_000);
    }
    expect(status).toBe(403);
    await data.releaseLease({ leaseId: lease.leaseId });
  });

  it("a tampered presigned URL is refused with 403", async () => {
    const { d, obj } = await allocate(3);
    const tampered = obj.url.replace(/X-Amz-Signature=([0-9a-f])/, (_m, c: string) =>
      c === "a" ? "X-Amz-Signature=b" : "X-Amz-Signature=a",
    );
    expect(await put(tampered, "abc")).toBe(403);
    const otherKey = obj.url.replace(
      uuidFromBytes(d.payloadId!.value),
      "00000000-0000-4000-8000-000000000000",
    );
    expect(await put(otherKey, "abc")).toBe(403);
    expect(await objectSize(s3, store.bucket, obj.key)).toBeUndefined();
  });

  it("delete removes the object and its metadata sidecar", async () => {
    const { d, obj } = await allocate(4);
    await put(obj.url, "data");
    await catalog.commitPayload({ id: d.payloadId });
    await s3.send(new PutObjectCommand({ Bucket: store.bucket, Key: sidecarKeyOf(obj.key), Body: "{}" }));
    await catalog.delete({ id: d.payloadId });
    expect(await objectSize(s3, store.bucket, obj.key)).toBeUndefined();
    expect(await objectSize(s3, store.bucket, sidecarKeyOf(obj.key))).toBeUndefined();
    expect((await codeOf(data.acquireReadLease({ id: d.payloadId }))).code).toBe(Code.NotFound);

    // A never-uploaded allocation deletes cleanly too.
    const never = await allocate(4);
    await catalog.delete({ id: never.d.payloadId });
    expect((await codeOf(data.resolveSnapshot({ id: never.d.payloadId }))).code).toBe(Code.NotFound);
  });
});

describe("API objectStore configuration", () => {
  it("is read from PM_S3_*, absent without them, and lists every missing setting", () => {
    const cfg = loadConfig(undefined, testObjectStoreEnv(store));
    expect(cfg.objectStore).toEqual({
      endpoint: store.endpoint,
      region: store.region,
      bucket: store.bucket,
      accessKeyId: store.accessKeyId,
      secretAccessKey: store.secretAccessKey,
      forcePathStyle: true,
      keyPrefix: "payloads/",
      urlTtlMs: 900_000,
    });
    expect(loadConfig(undefined, {}).objectStore).toBeUndefined();
    let problems = "";
    try {
      loadConfig(undefined, { PM_S3_REGION: "us-east-1", PM_S3_FORCE_PATH_STYLE: "yes" });
    } catch (e) {
      problems = (e as { problems: string[] }).problems.join("\n");
    }
    expect(problems).toMatch(/PM_S3_FORCE_PATH_STYLE=yes must be true or false/);
    expect(problems).toMatch(/objectStore\.bucket/);
    expect(problems).toMatch(/objectStore\.accessKeyId/);
  });
});
