// Presigning and HEAD against the real S3 server (OpenStack Swift s3api from infra/dev/services.sh).
import { randomUUID } from "node:crypto";
import { DomainError, type PayloadId, type Placement } from "@pm/domain";
import { afterAll, describe, expect, it } from "vitest";
import { ObjectRegionAllocator } from "./object-region-allocator.ts";
import { createS3Client } from "./s3-client.ts";
import { S3ObjectPresigner } from "./s3-object-presigner.ts";
import { deletePrefix, testObjectStore } from "./testing/index.ts";

const cfg = testObjectStore();
const s3 = createS3Client(cfg);
const prefix = `test-presigner-${process.pid}-${Date.now()}/`;
const objects = new ObjectRegionAllocator(s3, { bucket: cfg.bucket, keyPrefix: prefix });
const presigner = new S3ObjectPresigner(s3);

afterAll(async () => {
  await deletePrefix(s3, cfg.bucket, prefix);
  s3.destroy();
});

async function placement(sizeBytes: number): Promise<Placement> {
  return objects.allocate({
    payloadId: randomUUID() as PayloadId,
    tier: "OBJECT",
    sizeBytes,
    preferredHost: undefined,
  });
}

/** When a SigV4 presigned URL stops working: X-Amz-Date + X-Amz-Expires. */
function urlExpiry(url: string): number {
  const q = new URL(url).searchParams;
  const d = q.get("X-Amz-Date")!;
  const at = Date.UTC(
    +d.slice(0, 4),
    +d.slice(4, 6) - 1,
    +d.slice(6, 8),
    +d.slice(9, 11),
    +d.slice(11, 13),
    +d.slice(13, 15),
  );
  return at + Number(q.get("X-Amz-Expires")) * 1000;
}

async function pollStatus(url: string, want: number, deadlineMs: number): Promise<number> {
  const end = Date.now() + deadlineMs;
  let status = 0;
  while (Date.now() < end) {
    const res = await fetch(url);
    await res.body?.cancel();
    status = res.status;
    if (status === want) return status;
    await new Promise((r) => setTimeout(r, 200));
  }
  return status;
}

describe("S3ObjectPresigner on the real object store", () => {
  it("presigns a PUT that uploads with plain fetch; HEAD then reports the size", async () => {
    const p = await placement(11);
    expect(await presigner.head(p)).toBeUndefined();
    const url = await presigner.presign(p, "PUT", Date.now() + 60_000);
    expect(url).toContain(p.location.kind === "object" ? p.location.key : "?");
    const res = await fetch(url, { method: "PUT", body: "hello world" });
    expect(res.status).toBe(200);
    expect(await presigner.head(p)).toBe(11);
    const get = await fetch(await presigner.presign(p, "GET", Date.now() + 60_000));
    expect(await get.text()).toBe("hello world");
  });

  it("a tampered URL (other key, other expiry, other signature) is refused with 403", async () => {
    const p = await placement(3);
    await fetch(await presigner.presign(p, "PUT", Date.now() + 60_000), { method: "PUT", body: "abc" });
    const url = await presigner.presign(p, "GET", Date.now() + 60_000);
    expect((await fetch(url)).status).toBe(200);
    const other = await placement(3);
    const key = (pl: Placement) => (pl.location.kind === "object" ? pl.location.key : "");
    const tampered = [
      url.replace(key(p), key(other)),
      url.replace(/X-Amz-Expires=\d+/, "X-Amz-Expires=604800"),
      url.replace(
        /X-Amz-Signature=([0-9a-f])/,
        (_m, c: string) => `X-Amz-Signature=${c === "0" ? "1" : "0"}`,
      ),
    ];
    for (const t of tampered) {
      expect(t).not.toBe(url);
      const res = await fetch(t);
      await res.body?.cancel();
      expect(res.status).toBe(403);
    }
  });

  it("a URL expires no later than the requested instant, and stops working then", async () => {
    const p = await placement(2);
    await fetch(await presigner.presign(p, "PUT", Date.now() + 60_000), { method: "PUT", body: "ok" });
    for (const ms of [1_000, 1_500, 20_000, 119_999]) {
      const expiresAt = Date.now() + ms;
      const url = await presigner.presign(p, "GET", expiresAt);
      expect(urlExpiry(url)).toBeLessThanOrEqual(expiresAt);
      expect(urlExpiry(url)).toBeGreaterThan(expiresAt - 2_000);
    }
    const expiresAt = Date.now() + 2_500;
    const url = await presigner.presign(p, "GET", expiresAt);
    expect((await fetch(url)).status).toBe(200);
    expect(await pollStatus(url, 403, 8_000)).toBe(403);
    // It never worked past the instant asked for.
    expect(Date.now()).toBeGreaterThanOrEqual(urlExpiry(url));
    // An instant already past gives a URL that is already dead.
    const dead = await presigner.presign(p, "GET", Date.now() - 5_000);
    expect((await fetch(dead)).status).toBe(403);
  });

  it("HEAD with wrong credentials is UNAVAILABLE, not 'missing'", async () => {
    const bad = createS3Client({ ...cfg, secretAccessKey: "wrong-secret" });
    try {
      const p = await placement(1);
      const err = await new S3ObjectPresigner(bad).head(p).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DomainError);
      expect((err as DomainError).code).toBe("UNAVAILABLE");
    } finally {
      bad.destroy();
    }
  });
});
