import { request } from "node:http";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  AcquireReadLeaseRequestSchema,
  AllocatePayloadRequestSchema,
  AllocatePayloadResponseSchema,
  CommitPayloadRequestSchema,
  ListPayloadsRequestSchema,
  PayloadAdminService,
  PayloadCatalogService,
  PayloadDataService,
  ResolveSnapshotRequestSchema,
  StatsRequestSchema,
  Tier,
} from "@pm/rpc";
import { postBothWays, postProto, type RawAnswer } from "@pm/rpc/node/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../app.ts";
import { consoleLogger } from "../logger.ts";
import { makeTestUseCases } from "../testing/test-app.ts";
import { PromMetrics } from "./prom-metrics.ts";
import { listen, type RunningServers } from "./servers.ts";

// The fast path for binary unary Connect calls must answer exactly as the Connect adapter does.
// A `content-encoding: identity` header (no compression, which the fast path leaves to the
// adapter) sends the same call through the adapter, so every case below is asked both ways and
// the answers compared byte for byte.

const TOKEN = "token-a";
let servers: RunningServers;
let metrics: PromMetrics;
const errorLogs: string[] = [];

beforeAll(async () => {
  const { deps: useCases, catalog } = makeTestUseCases(1024 ** 3, Date.UTC(2026, 0, 1));
  metrics = new PromMetrics(false);
  const deps = {
    useCases,
    log: { ...consoleLogger("silent"), error: (_: object, msg?: string) => void errorLogs.push(msg ?? "") },
    metrics,
    auth: { tokens: { [TOKEN]: "ns-a" }, agentToken: "" },
    heartbeatIntervalMs: 1000,
    newRequestId: () => "req",
    maxBodyBytes: 4096,
    readiness: { catalog: () => catalog.ping() },
  };
  servers = await listen(createApp(deps), deps, {
    host: "127.0.0.1",
    httpPort: 0,
    grpcPort: 0,
    maxBodyBytes: 4096,
  });
});
afterAll(async () => {
  await servers.close();
});

/** A binary unary call with this test's token (a header given as null is left out). */
const post = (path: string, body: Uint8Array, headers: Record<string, string | null> = {}) =>
  postProto(servers.httpUrl, path, body, { authorization: `Bearer ${TOKEN}`, ...headers });

/** The same call through the fast path and through the adapter; both answers must be the same. */
const bothWays = (path: string, body: Uint8Array, headers: Record<string, string | null> = {}) =>
  postBothWays(servers.httpUrl, path, body, { authorization: `Bearer ${TOKEN}`, ...headers });

const path = (service: { typeName: string }, method: string) => `/${service.typeName}/${method}`;
const errorOf = (a: RawAnswer) => JSON.parse(a.body.toString("utf8")) as { code: string; message: string };

describe("unary fast path (binary Connect)", () => {
  let payloadId: Uint8Array;

  it("answers successful calls with the adapter's bytes", async () => {
    const allocated = await post(
      path(PayloadCatalogService, "AllocatePayload"),
      toBinary(
        AllocatePayloadRequestSchema,
        create(AllocatePayloadRequestSchema, { sizeBytes: 1024n, preferredTier: Tier.RAM }),
      ),
    );
    expect(allocated.status).toBe(200);
    const d = fromBinary(AllocatePayloadResponseSchema, allocated.body).payloadDescriptor!;
    payloadId = d.payloadId!.value;
    const commit = toBinary(
      CommitPayloadRequestSchema,
      create(CommitPayloadRequestSchema, { id: { value: payloadId } }),
    );
    expect((await post(path(PayloadCatalogService, "CommitPayload"), commit)).status).toBe(200);
    const resolved = await bothWays(
      path(PayloadDataService, "ResolveSnapshot"),
      toBinary(
        ResolveSnapshotRequestSchema,
        create(ResolveSnapshotRequestSchema, { id: { value: payloadId } }),
      ),
    );
    expect(resolved.status).toBe(200);
    expect(resolved.contentType).toBe("application/proto");
    const listed = await bothWays(
      path(PayloadCatalogService, "ListPayloads"),
      toBinary(ListPayloadsRequestSchema, create(ListPayloadsRequestSchema, {})),
    );
    expect(listed.body.byteLength).toBeGreaterThan(16);
    await bothWays(
      path(PayloadAdminService, "Stats"),
      toBinary(StatsRequestSchema, create(StatsRequestSchema, {})),
    );
  });

  it("answers domain errors, bad ids and bad bodies with the adapter's codes and messages", async () => {
    const unknown = await bothWays(
      path(PayloadDataService, "AcquireReadLease"),
      toBinary(
        AcquireReadLeaseRequestSchema,
        create(AcquireReadLeaseRequestSchema, { id: { value: new Uint8Array(16).fill(7) } }),
      ),
    );
    expect(unknown.status).toBe(404);
    expect(errorOf(unknown).code).toBe("not_found");
    const badId = await bothWays(
      path(PayloadDataService, "AcquireReadLease"),
      toBinary(
        AcquireReadLeaseRequestSchema,
        create(AcquireReadLeaseRequestSchema, { id: { value: new Uint8Array(3) } }),
      ),
    );
    expect(errorOf(badId).code).toBe("invalid_argument");
    const empty = await bothWays(path(PayloadDataService, "AcquireReadLease"), new Uint8Array());
    expect(errorOf(empty).code).toBe("invalid_argument");
    const garbage = await bothWays(
      path(PayloadDataService, "AcquireReadLease"),
      Uint8Array.from([0x0a, 0xff, 0xff]),
    );
    expect(errorOf(garbage).code).toBe("internal");
    expect(errorOf(garbage).message).toMatch(/^parse binary:/);
  });

  it("authenticates like the interceptor", async () => {
    const body = toBinary(StatsRequestSchema, create(StatsRequestSchema, {}));
    const missing = await bothWays(path(PayloadAdminService, "Stats"), body, { authorization: "" });
    expect(missing.status).toBe(401);
    expect(errorOf(missing).message).toMatch(/missing bearer token/);
    const wrong = await bothWays(path(PayloadAdminService, "Stats"), body, { authorization: "Bearer nope" });
    expect(errorOf(wrong).message).toMatch(/unknown bearer token/);
  });

  it("reads and decodes the body before authenticating, as the adapter does", async () => {
    const garbage = await bothWays(path(PayloadAdminService, "Stats"), Uint8Array.from([0x0a, 0xff]), {
      authorization: "",
    });
    expect(errorOf(garbage)).toMatchObject({ code: "internal" });
    const chunkedBig = await bothWays(path(PayloadAdminService, "Stats"), new Uint8Array(5000), {
      authorization: "",
      "content-length": null,
      "transfer-encoding": "chunked",
    });
    expect(errorOf(chunkedBig).code).toBe("resource_exhausted");
  });

  it("drops a call whose client went away mid-body without logging or counting an error", async () => {
    const url = new URL(servers.httpUrl);
    const before = (await metrics.render()).body;
    await new Promise<void>((resolve) => {
      const req = request({
        host: url.hostname,
        port: url.port,
        method: "POST",
        path: path(PayloadDataService, "RenewLease"),
        headers: {
          "content-type": "application/proto",
          "content-length": "100",
          authorization: `Bearer ${TOKEN}`,
        },
      });
      req.on("error", () => resolve());
      req.write(new Uint8Array(10));
      setTimeout(() => req.destroy(), 50);
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(errorLogs).toEqual([]);
    const after = (await metrics.render()).body;
    const renews = (text: string) => text.split("\n").filter((l) => l.includes('method="RenewLease"'));
    expect(renews(after)).toEqual(renews(before));
  });

  it("records fast-path calls in the same request metrics, transport connect", async () => {
    const series = (text: string) =>
      Number(
        /pm_api_requests_total\{service="payload\.manager\.services\.v1\.PayloadDataService",method="RenewLease",code="INVALID_ARGUMENT",transport="connect"\} (\d+)/.exec(
          text,
        )?.[1] ?? 0,
      );
    const before = series((await metrics.render()).body);
    // Through the fast path only (no deadline header): the counter must move by exactly one.
    const bad = await post(path(PayloadDataService, "RenewLease"), new Uint8Array());
    expect(errorOf(bad).code).toBe("invalid_argument");
    expect(series((await metrics.render()).body)).toBe(before + 1);
  });

  it("reads chunked bodies (no content-length) the same way, refusing them past the limit", async () => {
    const chunked = { "content-length": null, "transfer-encoding": "chunked" };
    const ok = await bothWays(
      path(PayloadAdminService, "Stats"),
      toBinary(StatsRequestSchema, create(StatsRequestSchema, {})),
      chunked,
    );
    expect(ok.status).toBe(200);
    const big = await bothWays(path(PayloadAdminService, "Stats"), new Uint8Array(5000), chunked);
    expect(errorOf(big)).toMatchObject({
      code: "resource_exhausted",
      message: "message size is larger than configured readMaxBytes 4096",
    });
  });

  it("leaves JSON, oversized bodies and unknown methods to the adapter and the app", async () => {
    const json = await post(path(PayloadAdminService, "Stats"), Buffer.from("{}"), {
      "content-type": "application/json",
    });
    expect(json.status).toBe(200);
    expect(json.contentType).toBe("application/json");
    const big = await post(path(PayloadAdminService, "Stats"), new Uint8Array(5000));
    expect(big.status).not.toBe(200);
    expect(errorOf(big).code).toBe("resource_exhausted");
    const unknownMethod = await post(
      "/payload.manager.services.v1.PayloadAdminService/Nope",
      new Uint8Array(),
    );
    expect(unknownMethod.status).toBe(404);
  });
});
