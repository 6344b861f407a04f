// Deadlines on the fast path: a `connect-timeout-ms` the adapter accepts becomes the call's
// signal and timeoutMs(), as the adapter makes them, so an implementation that honours its
// deadline answers the same both ways; a malformed one is left to the adapter.
import { create, toBinary } from "@bufbuild/protobuf";
import { ConnectError, type ConnectRouter, createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ListRegionsRequestSchema, TierAgentService } from "../index.ts";
import { postProto, serveOnLoopback, VIA_ADAPTER } from "./testing.ts";
import { adapterError, unaryFastPath } from "./unary-fast-path.ts";

let server: Awaited<ReturnType<typeof serveOnLoopback>>;
let base: string;
let fastCalls = 0;
const seen: { timeoutMs: number | undefined; aborted: boolean }[] = [];

beforeAll(async () => {
  // ListRegions waits for its deadline when it has one under a second, then fails with its reason.
  const routes = (r: ConnectRouter) =>
    r.service(TierAgentService, {
      statRegion() {
        throw new TypeError("a bug in the implementation");
      },
      async listRegions(_, ctx) {
        const timeoutMs = ctx.timeoutMs();
        if (timeoutMs !== undefined && timeoutMs < 1_000) {
          await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
        }
        seen.push({ timeoutMs, aborted: ctx.signal.aborted });
        if (ctx.signal.aborted) throw ConnectError.from(ctx.signal.reason);
        return { regions: [] };
      },
    });
  const adapter = connectNodeAdapter({ routes });
  const fast = unaryFastPath(routes, 1 << 20, {
    begin: () => {
      fastCalls++;
      return { values: () => createContextValues(), toError: adapterError };
    },
    onWriteFault: () => undefined,
  });
  server = await serveOnLoopback((req, res) => {
    if (!fast(req, res)) adapter(req, res);
  });
  base = server.baseUrl;
});

afterAll(() => server.close());

const list = (headers: Record<string, string>) =>
  postProto(
    base,
    `/${TierAgentService.typeName}/ListRegions`,
    toBinary(ListRegionsRequestSchema, create(ListRegionsRequestSchema)),
    headers,
  );

describe("unary fast path deadlines", () => {
  it("hands the call its deadline as the adapter does, and answers a missed one the same", async () => {
    for (const timeout of ["60000", "30"]) {
      fastCalls = 0;
      seen.length = 0;
      const fast = await list({ "connect-timeout-ms": timeout });
      const adapter = await list({ "connect-timeout-ms": timeout, ...VIA_ADAPTER });
      expect(fastCalls).toBe(1);
      expect(fast.status).toBe(adapter.status);
      expect(fast.body.toString("hex")).toBe(adapter.body.toString("hex"));
      expect(seen.map((s) => s.aborted)).toEqual(timeout === "30" ? [true, true] : [false, false]);
      for (const s of seen) expect(s.timeoutMs).toBeLessThanOrEqual(Number(timeout));
    }
    const missed = await list({ "connect-timeout-ms": "30" });
    expect(missed.status).toBe(504);
    expect(JSON.parse(missed.body.toString())).toMatchObject({ code: "deadline_exceeded" });
  });

  it("answers an implementation's own bug as the adapter does (INTERNAL, cause not sent)", async () => {
    const path = `/${TierAgentService.typeName}/StatRegion`;
    const fast = await postProto(base, path, new Uint8Array());
    const adapter = await postProto(base, path, new Uint8Array(), VIA_ADAPTER);
    expect(fast.status).toBe(500);
    expect(fast.body.toString("hex")).toBe(adapter.body.toString("hex"));
    expect(JSON.parse(fast.body.toString())).toEqual({ code: "internal", message: "internal error" });
  });

  it("leaves a malformed deadline to the adapter, which refuses it", async () => {
    fastCalls = 0;
    const bad = await list({ "connect-timeout-ms": "12345678901" });
    expect(fastCalls).toBe(0);
    expect(JSON.parse(bad.body.toString())).toMatchObject({ code: "invalid_argument" });
  });
});
