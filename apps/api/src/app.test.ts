import { Code, ConnectError } from "@connectrpc/connect";
import { uuidFromBytes } from "@pm/domain";
import { PayloadState, Tier } from "@pm/rpc";
import { afterEach, describe, expect, it } from "vitest";
import { makeTestApp } from "./testing/test-app.ts";

let t: ReturnType<typeof makeTestApp>;
afterEach(() => t?.cleanup());

async function codeOf(p: Promise<unknown>): Promise<Code> {
  try {
    await p;
  } catch (e) {
    return ConnectError.from(e).code;
  }
  throw new Error("expected the call to fail");
}

describe("API over Connect, Connect binary and gRPC-Web", () => {
  for (const transport of ["connect", "connectBinary", "grpcWeb"] as const) {
    it(`${transport}: allocate → commit → lease → release → delete frees the region`, async () => {
      t = makeTestApp();
      const c = t.clients(t.transports[transport]);
      const alloc = await c.catalog.allocatePayload({ sizeBytes: 4096n, preferredTier: Tier.DISK });
      const d = alloc.payloadDescriptor!;
      expect(d.state).toBe(PayloadState.ALLOCATED);
      expect(d.version).toBe(1n);
      expect(d.location.case).toBe("disk");
      const id = uuidFromBytes(d.payloadId!.value);
      expect(d.location.case === "disk" && d.location.value.lengthBytes).toBe(4096n);
      expect(t.allocator.has(id, "DISK")).toBe(true);

      const committed = await c.catalog.commitPayload({ id: d.payloadId });
      expect(committed.payloadDescriptor?.state).toBe(PayloadState.DURABLE);
      expect(committed.payloadDescriptor?.version).toBe(2n);

      const lease = await c.data.acquireReadLease({ id: d.payloadId });
      expect(lease.leaseId?.value.length).toBe(16);
      expect(lease.payloadDescriptor?.location.case).toBe("disk");
      expect(await codeOf(c.catalog.delete({ id: d.payloadId }))).toBe(Code.Aborted);
      await c.data.releaseLease({ leaseId: lease.leaseId });
      await c.data.releaseLease({ leaseId: lease.leaseId });
      await c.catalog.delete({ id: d.payloadId });
      expect(t.allocator.has(id, "DISK")).toBe(false);
      expect(await codeOf(c.data.acquireReadLease({ id: d.payloadId }))).toBe(Code.NotFound);
    });
  }

  it("maps domain errors to codes and leaves nothing behind on bad input", async () => {
    t = makeTestApp({ diskCapacity: 10_000 });
    const c = t.clients();
    expect(await codeOf(c.catalog.allocatePayload({ sizeBytes: 0n, preferredTier: Tier.DISK }))).toBe(
      Code.InvalidArgument,
    );
    expect(
      await codeOf(
        c.catalog.allocatePayload({ sizeBytes: 128n * 1024n ** 3n + 1n, preferredTier: Tier.DISK }),
      ),
    ).toBe(Code.InvalidArgument);
    expect(await codeOf(c.catalog.allocatePayload({ sizeBytes: 10n, preferredTier: Tier.VOID }))).toBe(
      Code.InvalidArgument,
    );
    expect(await codeOf(c.catalog.allocatePayload({ sizeBytes: 10n, preferredTier: 42 as Tier }))).toBe(
      Code.InvalidArgument,
    );
    expect(await codeOf(c.catalog.allocatePayload({ sizeBytes: 10n }))).toBe(Code.InvalidArgument);
    expect(await codeOf(c.catalog.allocatePayload({ sizeBytes: 10n, preferredTier: Tier.GPU }))).toBe(
      Code.FailedPrecondition,
    );
    expect(await codeOf(c.catalog.allocatePayload({ sizeBytes: 20_000n, preferredTier: Tier.DISK }))).toBe(
      Code.ResourceExhausted,
    );
    expect(await codeOf(c.catalog.commitPayload({ id: { value: new Uint8Array(15) } }))).toBe(
      Code.InvalidArgument,
    );
    expect(await codeOf(c.catalog.commitPayload({}))).toBe(Code.InvalidArgument);
    expect(await codeOf(c.catalog.listPayloads({ pageToken: "garbage" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(c.stream.listStreams({ pageToken: "garbage" }))).toBe(Code.InvalidArgument);
    const list = await c.catalog.listPayloads({});
    expect(list.totalCount).toBe(0);
    expect(t.allocator.regions.size).toBe(0);
  });

  it("commit twice is FAILED_PRECONDITION with a message naming the state", async () => {
    t = makeTestApp();
    const c = t.clients();
    const { payloadDescriptor: d } = await c.catalog.allocatePayload({
      sizeBytes: 8n,
      preferredTier: Tier.DISK,
    });
    await c.catalog.commitPayload({ id: d!.payloadId });
    const err = await c.catalog.commitPayload({ id: d!.payloadId }).catch((e) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.FailedPrecondition);
    expect((err as ConnectError).rawMessage).toMatch(/DURABLE/);
    expect(uuidFromBytes(d!.payloadId!.value)).toMatch(/^00000000-/);
  });

  it("requires a bearer token when tokens are configured and isolates namespaces", async () => {
    t = makeTestApp({ tokens: { "token-aaaa": "alpha", "token-bbbb": "beta" } });
    const { createConnectTransport } = await import("@connectrpc/connect-web");
    const withToken = (token: string | undefined) =>
      createConnectTransport({
        baseUrl: "http://api.test",
        fetch: t.fetch,
        interceptors: token
          ? [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))]
          : [],
      });
    expect(await codeOf(t.clients(withToken(undefined)).catalog.listPayloads({}))).toBe(Code.Unauthenticated);
    expect(await codeOf(t.clients(withToken("wrong-token")).catalog.listPayloads({}))).toBe(
      Code.Unauthenticated,
    );
    const a = t.clients(withToken("token-aaaa"));
    const b = t.clients(withToken("token-bbbb"));
    const { payloadDescriptor: d } = await a.catalog.allocatePayload({
      sizeBytes: 8n,
      preferredTier: Tier.DISK,
    });
    expect(await codeOf(b.catalog.commitPayload({ id: d!.payloadId }))).toBe(Code.NotFound);
    expect((await b.catalog.listPayloads({})).totalCount).toBe(0);
    expect((await a.catalog.listPayloads({})).totalCount).toBe(1);
  });

  it("maps errors raised while a server stream is read, and counts the stream by its final code", async () => {
    t = makeTestApp();
    const c = t.clients();
    const read = async () => {
      for await (const _ of c.stream.subscribe({ stream: { namespace: "ns", name: "missing" } })) {
        // no entries expected
      }
    };
    expect(await codeOf(read())).toBe(Code.NotFound);
    const text = await (await t.fetch("http://api.test/metrics")).text();
    expect(text).toMatch(/method="Subscribe",code="NOT_FOUND",transport="connect"\} 1/);
  });

  it("serves health, readiness and metrics with request counts by code", async () => {
    t = makeTestApp();
    expect((await t.fetch("http://api.test/healthz")).status).toBe(200);
    const ready = await t.fetch("http://api.test/readyz");
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: "ready", checks: { catalog: "ok" } });
    await t
      .clients()
      .catalog.allocatePayload({ sizeBytes: 0n, preferredTier: Tier.DISK })
      .catch(() => undefined);
    const text = await (await t.fetch("http://api.test/metrics")).text();
    expect(text).toMatch(
      /pm_api_requests_total\{service="payload\.manager\.services\.v1\.PayloadCatalogService",method="AllocatePayload",code="INVALID_ARGUMENT",transport="connect"\} 1/,
    );
  });
});
