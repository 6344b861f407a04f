// The agent's fast path for binary unary Connect calls must answer exactly as the Connect adapter
// does. A `content-encoding: identity` header (no compression, which the fast path leaves to the adapter) sends a call through the adapter instead, so each case is
// asked both ways and the answers compared byte for byte (calls that change nothing, or change
// nothing the second time: errors, stats, lists, frees of missing regions, creates of existing ones).
import { randomUUID } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { uuidToBytes } from "@pm/domain";
import {
  CreateRegionRequestSchema,
  CreateRegionsRequestSchema,
  CreateRegionsResponseSchema,
  ListRegionsRequestSchema,
  ListRegionsResponseSchema,
  StatRegionRequestSchema,
  Tier,
  TierAgentService,
} from "@pm/rpc";
import { createHttp1UnaryTransport } from "@pm/rpc/node";
import { postBothWays, postProto, type RawAnswer, serveOnLoopback, VIA_ADAPTER } from "@pm/rpc/node/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentConfigSchema } from "./config.ts";
import { agentRequestHandler } from "./server.ts";
import { TierAgent } from "./tier-agent.ts";
import { diskTier } from "./tiers/disk.ts";
import { ramTier } from "./tiers/ram.ts";

const prefix = `pmt-srv-${process.pid}-`;
let dir: string;
let agent: TierAgent;
let server: Awaited<ReturnType<typeof serveOnLoopback>>;
let base: string;
const warnings: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "pm-agent-srv-"));
  const cfg = AgentConfigSchema.parse({
    tiers: {
      ram: { prefix, capacityBytes: 1 << 20 },
      disk: { root: join(dir, "disk"), capacityBytes: 4 << 20 },
    },
  });
  agent = new TierAgent([ramTier(cfg.tiers.ram, undefined), diskTier(cfg.tiers.disk, undefined)]);
  const log = {
    info: () => undefined,
    warn: (_: object, m?: string) => void warnings.push(m ?? ""),
    error: () => undefined,
  };
  server = await serveOnLoopback(agentRequestHandler(agent, log));
  base = server.baseUrl;
});

afterAll(async () => {
  await server.close();
  for (const b of agent.tiers()) for (const r of await b.list()) await b.free(r.payloadId);
  await agent.close();
  for (const name of readdirSync("/dev/shm").filter((n) => n.startsWith(prefix)))
    rmSync(join("/dev/shm", name), { force: true });
  rmSync(dir, { recursive: true, force: true });
});

const post = (method: string, body: Uint8Array, headers: Record<string, string | null> = {}) =>
  postProto(base, `/${TierAgentService.typeName}/${method}`, body, headers);

/** The same call through the fast path and through the adapter; both answers must be the same. */
const bothWays = (method: string, body: Uint8Array, headers: Record<string, string> = {}) =>
  postBothWays(base, `/${TierAgentService.typeName}/${method}`, body, headers);

const region = (id: string, tier: Tier, size: number) =>
  create(CreateRegionRequestSchema, { payloadId: { value: uuidToBytes(id) }, tier, sizeBytes: BigInt(size) });
const createRegions = (...regions: ReturnType<typeof region>[]) =>
  toBinary(CreateRegionsRequestSchema, create(CreateRegionsRequestSchema, { regions }));
const errorOf = (a: RawAnswer) => JSON.parse(a.body.toString("utf8")) as { code: string; message: string };

describe("tier agent server: fast path and Connect adapter answer alike", () => {
  const existing = randomUUID();

  it("creates regions through the fast path, and answers a repeat the same both ways", async () => {
    const first = await post("CreateRegions", createRegions(region(existing, Tier.RAM, 4096)));
    expect(first.status).toBe(200);
    const made = fromBinary(CreateRegionsResponseSchema, first.body);
    expect(made.results[0]?.result.case).toBe("region");
    // The same id again: refused per region, identically both ways, next to a bad tier and size 0.
    const again = await bothWays(
      "CreateRegions",
      createRegions(
        region(existing, Tier.RAM, 4096),
        region(randomUUID(), Tier.VOID, 1),
        region(randomUUID(), Tier.DISK, 0),
      ),
    );
    const results = fromBinary(CreateRegionsResponseSchema, again.body).results;
    expect(results.map((r) => (r.result.case === "error" ? r.result.value.code : 0))).toEqual([
      Code.AlreadyExists,
      Code.InvalidArgument,
      Code.InvalidArgument,
    ]);
  });

  it("answers stats, lists and refusals of the whole call with the adapter's bytes", async () => {
    const stat = (id: string) =>
      toBinary(
        StatRegionRequestSchema,
        create(StatRegionRequestSchema, { payloadId: { value: uuidToBytes(id) }, tier: Tier.RAM }),
      );
    expect((await bothWays("StatRegion", stat(existing))).status).toBe(200);
    expect(errorOf(await bothWays("StatRegion", stat(randomUUID()))).code).toBe("not_found");
    const listed = await bothWays(
      "ListRegions",
      toBinary(ListRegionsRequestSchema, create(ListRegionsRequestSchema)),
    );
    expect(fromBinary(ListRegionsResponseSchema, listed.body).regions).toHaveLength(1);
    const tooMany = Array.from({ length: 257 }, () => region(randomUUID(), Tier.RAM, 1));
    expect(errorOf(await bothWays("CreateRegions", createRegions(...tooMany))).code).toBe("invalid_argument");
    expect(readdirSync("/dev/shm").filter((n) => n.startsWith(prefix))).toHaveLength(1);
    expect((await bothWays("CreateRegions", new Uint8Array([0xff, 0xff, 0xff]))).status).toBe(500);
    // With a deadline (as the API sends CreateRegions), and with one the adapter refuses.
    expect((await bothWays("StatRegion", stat(existing), { "connect-timeout-ms": "10000" })).status).toBe(
      200,
    );
    const bad = await bothWays("StatRegion", stat(existing), { "connect-timeout-ms": "soon" });
    expect(errorOf(bad).code).toBe("invalid_argument");
  });

  it("keeps serving what the fast path leaves to the adapter (JSON)", async () => {
    const client = createClient(
      TierAgentService,
      createConnectTransport({ baseUrl: base, httpVersion: "1.1", useBinaryFormat: false }),
    );
    const res = await client.listRegions({});
    expect(res.regions.map((r) => r.sizeBytes)).toEqual([4096n]);
    await expect(
      client.statRegion({ payloadId: { value: uuidToBytes(randomUUID()) }, tier: Tier.RAM }),
    ).rejects.toSatisfy((e) => ConnectError.from(e).code === Code.NotFound);
    expect(warnings).toEqual([]);
  });
});

describe("tier agent server with an agent token", () => {
  const token = "agent-s3cret";
  let guarded: Awaited<ReturnType<typeof serveOnLoopback>>;
  const list = toBinary(ListRegionsRequestSchema, create(ListRegionsRequestSchema));
  const listAt = (headers: Record<string, string>) =>
    postProto(guarded.baseUrl, `/${TierAgentService.typeName}/ListRegions`, list, headers);

  beforeAll(async () => {
    const log = { info: () => undefined, warn: () => undefined, error: () => undefined };
    guarded = await serveOnLoopback(agentRequestHandler(agent, log, { token }));
  });
  afterAll(() => guarded.close());

  it("refuses calls without the token, or with another, UNAUTHENTICATED on both paths alike", async () => {
    for (const [headers, says] of [
      [{}, /^missing agent token/],
      [{ authorization: "Bearer agent-s3cre" }, /^wrong agent token/],
      [{ authorization: `Basic ${token}` }, /^missing agent token/],
      [{ authorization: `Bearer ${token}x` }, /^wrong agent token/],
    ] as const) {
      const fast = await postBothWays(
        guarded.baseUrl,
        `/${TierAgentService.typeName}/ListRegions`,
        list,
        headers,
      );
      expect(fast.status).toBe(401);
      expect(errorOf(fast).code).toBe("unauthenticated");
      expect(errorOf(fast).message).toMatch(says);
    }
  });

  it("refuses a create without the token before any region is made", async () => {
    const id = randomUUID();
    const before = readdirSync("/dev/shm").filter((n) => n.startsWith(prefix)).length;
    const refused = await postProto(
      guarded.baseUrl,
      `/${TierAgentService.typeName}/CreateRegions`,
      createRegions(region(id, Tier.RAM, 4096)),
    );
    expect(errorOf(refused).code).toBe("unauthenticated");
    expect(readdirSync("/dev/shm").filter((n) => n.startsWith(prefix))).toHaveLength(before);
  });

  it("serves calls that carry it, through the control plane's client and JSON alike", async () => {
    const withToken = { authorization: `Bearer ${token}` };
    expect((await listAt(withToken)).status).toBe(200);
    expect((await listAt({ ...withToken, ...VIA_ADAPTER })).status).toBe(200);
    const lean = createClient(
      TierAgentService,
      createHttp1UnaryTransport({
        baseUrl: guarded.baseUrl,
        fallback: createConnectTransport({ baseUrl: guarded.baseUrl, httpVersion: "1.1" }),
        headers: withToken,
      }),
    );
    expect((await lean.listRegions({})).regions.length).toBeGreaterThan(0);
    const json = createClient(
      TierAgentService,
      createConnectTransport({ baseUrl: guarded.baseUrl, httpVersion: "1.1", useBinaryFormat: false }),
    );
    await expect(json.listRegions({}, { headers: withToken })).resolves.toBeDefined();
    await expect(json.listRegions({})).rejects.toSatisfy(
      (e) => ConnectError.from(e).code === Code.Unauthenticated,
    );
  });
});
