import { afterEach, describe, expect, it } from "vitest";
import { makeTestApp } from "../testing/test-app.ts";

let t: ReturnType<typeof makeTestApp>;
afterEach(() => t?.cleanup());

const json = (body: unknown) => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});

function uuidToB64url(uuid: string): string {
  return Buffer.from(uuid.replaceAll("-", ""), "hex").toString("base64url");
}

describe("REST per the google.api.http mapping", () => {
  it("runs the lifecycle with canonical UUID text, base64url and standard base64 in paths", async () => {
    t = makeTestApp();
    const res = await t.fetch(
      "http://api.test/v1/payloads",
      json({ sizeBytes: "1024", preferredTier: "TIER_DISK", ttl_ms: "60000" }),
    );
    expect(res.status).toBe(200);
    const alloc = (await res.json()) as {
      payloadDescriptor: { payloadId: { value: string }; state: string; version: string };
    };
    expect(alloc.payloadDescriptor.state).toBe("PAYLOAD_STATE_ALLOCATED");
    const idB64 = alloc.payloadDescriptor.payloadId.value;
    const uuid = Buffer.from(idB64, "base64")
      .toString("hex")
      .replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, "$1-$2-$3-$4-$5");

    const commit = await t.fetch(`http://api.test/v1/payloads/${uuid}/commit`, { method: "POST" });
    expect(commit.status).toBe(200);
    expect(((await commit.json()) as { payloadDescriptor: { state: string } }).payloadDescriptor.state).toBe(
      "PAYLOAD_STATE_DURABLE",
    );
    const snap = await t.fetch(`http://api.test/v1/payloads/${uuidToB64url(uuid)}/snapshot`);
    expect(snap.status).toBe(200);
    const snap2 = await t.fetch(`http://api.test/v1/payloads/${encodeURIComponent(idB64)}/snapshot`);
    expect(snap2.status).toBe(200);

    const lease = await t.fetch(
      `http://api.test/v1/payloads/${uuid}/lease`,
      json({ minLeaseDurationMs: "5000" }),
    );
    expect(lease.status).toBe(200);
    const leaseBody = (await lease.json()) as { leaseId: { value: string } };
    const leaseUuid = Buffer.from(leaseBody.leaseId.value, "base64")
      .toString("hex")
      .replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, "$1-$2-$3-$4-$5");
    const conflict = await t.fetch(`http://api.test/v1/payloads/${uuid}`, { method: "DELETE" });
    expect(conflict.status).toBe(409);
    expect(await conflict.json()).toMatchObject({
      code: 10,
      status: "ABORTED",
      details: [{ reason: "LEASE_CONFLICT" }],
    });
    const release = await t.fetch(`http://api.test/v1/leases/${leaseUuid}`, { method: "DELETE" });
    expect(release.status).toBe(200);
    const list = await t.fetch("http://api.test/v1/payloads?tier_filter=TIER_DISK&page_size=10");
    expect(await list.json()).toMatchObject({ totalCount: 1 });
    const del = await t.fetch(`http://api.test/v1/payloads/${uuid}?force=true`, { method: "DELETE" });
    expect(del.status).toBe(200);
    const gone = await t.fetch(`http://api.test/v1/payloads/${uuid}/snapshot`);
    expect(gone.status).toBe(404);
    expect(await gone.json()).toMatchObject({
      code: 5,
      status: "NOT_FOUND",
      details: [{ reason: "PAYLOAD_NOT_FOUND" }],
    });
  });

  it("answers bad input with codes, statuses and messages, writing nothing", async () => {
    t = makeTestApp();
    const cases: [string, RequestInit | undefined, number, string][] = [
      ["/v1/payloads/not-a-uuid/commit", { method: "POST" }, 400, "INVALID_ARGUMENT"],
      ["/v1/payloads/AAAA/snapshot", undefined, 400, "INVALID_ARGUMENT"],
      ["/v1/payloads/123e4567-e89b-42d3-a456-42661417400/snapshot", undefined, 400, "INVALID_ARGUMENT"],
      [
        "/v1/payloads",
        { method: "POST", headers: { "content-type": "application/json" }, body: "{not json" },
        400,
        "INVALID_ARGUMENT",
      ],
      ["/v1/payloads", json([1, 2]), 400, "INVALID_ARGUMENT"],
      ["/v1/payloads", json({ sizeBytes: "0", preferredTier: "TIER_DISK" }), 400, "INVALID_ARGUMENT"],
      ["/v1/payloads", json({ sizeBytes: "10", preferredTier: "TIER_BOGUS" }), 400, "INVALID_ARGUMENT"],
      ["/v1/payloads", json({ sizeBytes: "-5", preferredTier: "TIER_DISK" }), 400, "INVALID_ARGUMENT"],
      ["/v1/payloads?page_token=zzz", undefined, 400, "INVALID_ARGUMENT"],
      ["/v1/payloads?page_size=abc", undefined, 400, "INVALID_ARGUMENT"],
      ["/v1/payloads?nope=1", undefined, 400, "INVALID_ARGUMENT"],
      ["/v1/payloads/123e4567-e89b-42d3-a456-426614174000/snapshot", undefined, 404, "NOT_FOUND"],
      ["/v1/nothing-here", undefined, 404, "NOT_FOUND"],
      ["/elsewhere", undefined, 404, "NOT_FOUND"],
      ["/v1/payloads", { method: "PATCH" }, 405, "UNIMPLEMENTED"],
      ["/v1/streams", json({ stream: { name: "" } }), 400, "INVALID_ARGUMENT"],
      [
        "/v1/payloads",
        json({ sizeBytes: "1", preferredTier: "TIER_DISK", pad: "x".repeat(100_000) }),
        413,
        "RESOURCE_EXHAUSTED",
      ],
    ];
    for (const [path, init, status, code] of cases) {
      const res = await t.fetch(`http://api.test${path}`, init);
      const body = (await res.json()) as { status: string; message: string };
      expect({ path, status: res.status, code: body.status }).toEqual({ path, status, code });
      expect(body.message.length).toBeGreaterThan(10);
    }
    const list = await t.fetch("http://api.test/v1/payloads");
    expect(await list.json()).toMatchObject({ totalCount: 0 });
  });
});
