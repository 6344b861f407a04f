import { builtinModules } from "node:module";
import { resolve } from "node:path";
import type { Readable } from "node:stream";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { uuidFromBytes } from "@pm/domain";
import { PayloadCatalogService, PayloadDataService, PayloadState, Tier } from "@pm/rpc";
import * as esbuild from "esbuild";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The API under workerd (miniflare), bundled the way a Worker is deployed, and driven over real
// HTTP by Node's fetch: proves that createApp and everything it imports is runtime-neutral.

const ROOT = resolve(import.meta.dirname, "../..");
const ENTRY = "apps/api/src/worker-entry.ts";
const NODE_BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

interface Bundle {
  readonly script: string;
  /** "importer → import" chains from the entry to every Node built-in the bundle reaches. */
  readonly builtinChains: string[];
  readonly ms: number;
}

/**
 * Bundles the Worker entry as wrangler would (workerd conditions, nothing external). Node
 * built-ins are recorded instead of failing the build, so a test can name the import chain that
 * pulled each one in.
 */
async function bundleWorker(): Promise<Bundle> {
  const started = performance.now();
  const builtins: string[] = [];
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: [ENTRY],
    bundle: true,
    format: "esm",
    target: "es2022",
    platform: "browser",
    conditions: ["workerd", "worker", "browser"],
    write: false,
    metafile: true,
    logLevel: "silent",
    plugins: [
      {
        name: "record-node-builtins",
        setup(build) {
          build.onResolve({ filter: /.*/ }, (args) => {
            if (!NODE_BUILTINS.has(args.path)) return undefined;
            builtins.push(args.path);
            return { path: args.path, external: true };
          });
        },
      },
    ],
  });
  const inputs = result.metafile.inputs;
  const chains = builtins.map((builtin) => {
    // Breadth-first from the entry over the import graph to the first file importing `builtin`.
    const parent = new Map<string, string>([[ENTRY, ""]]);
    const queue = [ENTRY];
    while (queue.length > 0) {
      const file = queue.shift()!;
      for (const imp of inputs[file]?.imports ?? []) {
        if (imp.path === builtin) {
          const chain = [builtin, file];
          for (let f = parent.get(file); f; f = parent.get(f)) chain.push(f);
          return chain.reverse().join(" → ");
        }
        if (!parent.has(imp.path) && inputs[imp.path]) {
          parent.set(imp.path, file);
          queue.push(imp.path);
        }
      }
    }
    return `${builtin} (importer not found in the metafile)`;
  });
  return {
    script: result.outputFiles[0]!.text,
    builtinChains: [...new Set(chains)],
    ms: performance.now() - started,
  };
}

let bundle: Bundle;
let mf: Miniflare;
let baseUrl: string;
const runtimeOutput: string[] = [];

const collect = (stream: Readable) => stream.on("data", (chunk: Buffer) => runtimeOutput.push(String(chunk)));

async function startWorker(bindings: Record<string, string>): Promise<string> {
  const options = {
    modules: true,
    script: bundle.script,
    compatibilityDate: "2026-04-26",
    compatibilityFlags: ["nodejs_compat"],
    bindings,
    handleRuntimeStdio: (stdout: Readable, stderr: Readable) => {
      collect(stdout);
      collect(stderr);
    },
  };
  if (mf) await mf.setOptions(options);
  else mf = new Miniflare(options);
  return (await mf.ready).href;
}

const timings: Record<string, number> = {};

beforeAll(async () => {
  bundle = await bundleWorker();
  timings.bundleMs = bundle.ms;
  const started = performance.now();
  baseUrl = await startWorker({ PM_EDGE_TEST_DISK: "1" });
  timings.startMs = performance.now() - started;
});

afterAll(async () => {
  await mf?.dispose();
  console.info(
    `worker bundle: ${bundle?.script.length ?? 0} bytes; bundled in ${timings.bundleMs?.toFixed(0)} ms, workerd ready in ${timings.startMs?.toFixed(0)} ms`,
  );
});

async function codeOf(p: Promise<unknown>): Promise<Code> {
  try {
    await p;
  } catch (e) {
    return ConnectError.from(e).code;
  }
  throw new Error("expected the call to fail");
}

describe("the API under workerd (miniflare)", () => {
  it("bundles without any Node built-in", () => {
    // Each entry reads "worker-entry.ts → … → the file → node:xyz": the chain to cut.
    expect(bundle.builtinChains).toEqual([]);
  });

  const transports: Record<string, () => Transport> = {
    connect: () => createConnectTransport({ baseUrl, fetch: globalThis.fetch }),
    "connect binary": () =>
      createConnectTransport({ baseUrl, fetch: globalThis.fetch, useBinaryFormat: true }),
    "gRPC-Web": () => createGrpcWebTransport({ baseUrl, fetch: globalThis.fetch }),
  };
  for (const [name, transport] of Object.entries(transports)) {
    it(`${name}: allocate(DISK) → commit → lease → release → delete over real HTTP`, async () => {
      const catalog = createClient(PayloadCatalogService, transport());
      const data = createClient(PayloadDataService, transport());

      const alloc = await catalog.allocatePayload({ sizeBytes: 4096n, preferredTier: Tier.DISK });
      const d = alloc.payloadDescriptor!;
      expect(d.payloadId?.value.length).toBe(16);
      expect(d.state).toBe(PayloadState.ALLOCATED);
      expect(d.version).toBe(1n);
      expect(d.tier).toBe(Tier.DISK);
      expect(d.sizeBytes).toBe(4096n);
      const id = uuidFromBytes(d.payloadId!.value);
      // crypto.randomUUID inside workerd: a version-4 UUID, not the tests' sequential ids.
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(d.location).toMatchObject({ case: "disk", value: { path: `memory://edge/${id}.bin` } });
      const now = Date.now();
      expect(Number(d.createdAt!.seconds) * 1000).toBeGreaterThan(now - 60_000);
      expect(Number(d.createdAt!.seconds) * 1000).toBeLessThanOrEqual(now);

      const committed = await catalog.commitPayload({ id: d.payloadId });
      expect(committed.payloadDescriptor?.state).toBe(PayloadState.DURABLE);
      expect(committed.payloadDescriptor?.version).toBe(2n);
      expect(await codeOf(catalog.commitPayload({ id: d.payloadId }))).toBe(Code.FailedPrecondition);

      const lease = await data.acquireReadLease({ id: d.payloadId, minLeaseDurationMs: 5_000n });
      expect(lease.leaseId?.value.length).toBe(16);
      expect(lease.payloadDescriptor?.state).toBe(PayloadState.DURABLE);
      expect(lease.payloadDescriptor?.version).toBe(2n);
      expect(Number(lease.leaseExpiresAt!.seconds) * 1000).toBeGreaterThan(now);
      expect(await codeOf(catalog.delete({ id: d.payloadId }))).toBe(Code.Aborted);

      await data.releaseLease({ leaseId: lease.leaseId });
      await catalog.delete({ id: d.payloadId });
      expect(await codeOf(data.resolveSnapshot({ id: d.payloadId }))).toBe(Code.NotFound);
    });
  }

  it("answers domain errors with their codes and reasons", async () => {
    const res = await fetch(
      new URL("payload.manager.services.v1.PayloadCatalogService/AllocatePayload", baseUrl),
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ sizeBytes: "10", preferredTier: "TIER_RAM" }),
      },
    );
    expect(res.status).toBe(400);
    expect(res.headers.get("pm-error-reason")).toBe("TIER_UNAVAILABLE");
    expect(await res.json()).toMatchObject({ code: "failed_precondition" });
    const catalog = createClient(PayloadCatalogService, transports.connect!());
    expect(await codeOf(catalog.commitPayload({ id: { value: new Uint8Array(15) } }))).toBe(
      Code.InvalidArgument,
    );
    // The reservation-only tier enforces its capacity (1 GiB by default).
    expect(
      await codeOf(catalog.allocatePayload({ sizeBytes: 2n * 1024n ** 3n, preferredTier: Tier.DISK })),
    ).toBe(Code.ResourceExhausted);
  });

  it("serves REST, /healthz and /readyz", async () => {
    const health = await fetch(new URL("healthz", baseUrl));
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: "ok" });
    const ready = await fetch(new URL("readyz", baseUrl));
    expect(await ready.json()).toEqual({ status: "ready", checks: { catalog: "ok" } });

    const alloc = await fetch(new URL("v1/payloads", baseUrl), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sizeBytes: "1024", preferredTier: "TIER_DISK" }),
    });
    expect(alloc.status).toBe(200);
    const body = (await alloc.json()) as {
      payloadDescriptor: { payloadId: { value: string }; state: string; version: string };
    };
    expect(body.payloadDescriptor).toMatchObject({ state: "PAYLOAD_STATE_ALLOCATED", version: "1" });
    const uuid = uuidFromBytes(
      Uint8Array.from(atob(body.payloadDescriptor.payloadId.value), (c) => c.charCodeAt(0)),
    );

    const commit = await fetch(new URL(`v1/payloads/${uuid}/commit`, baseUrl), { method: "POST" });
    expect(commit.status).toBe(200);
    expect(await commit.json()).toMatchObject({
      payloadDescriptor: { state: "PAYLOAD_STATE_DURABLE", version: "2" },
    });
    const list = await fetch(new URL("v1/payloads?tier_filter=TIER_DISK", baseUrl));
    expect(list.status).toBe(200);
    const listed = (await list.json()) as { payloads: { id: { value: string } }[] };
    expect(listed.payloads.map((p) => p.id.value)).toContain(body.payloadDescriptor.payloadId.value);

    const bad = await fetch(new URL("v1/payloads/not-an-id/snapshot", baseUrl));
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 3, status: "INVALID_ARGUMENT" });
    const del = await fetch(new URL(`v1/payloads/${uuid}`, baseUrl), { method: "DELETE" });
    expect(del.status).toBe(200);
  });

  it("without PM_EDGE_TEST_DISK every tier is TIER_UNAVAILABLE", async () => {
    baseUrl = await startWorker({});
    const catalog = createClient(PayloadCatalogService, transports.connect!());
    for (const tier of [Tier.GPU, Tier.RAM, Tier.DISK, Tier.OBJECT]) {
      const err = await catalog.allocatePayload({ sizeBytes: 16n, preferredTier: tier }).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err?.code).toBe(Code.FailedPrecondition);
      expect(err?.metadata.get("pm-error-reason")).toBe("TIER_UNAVAILABLE");
      expect(err?.rawMessage).toMatch(/no storage backend/);
    }
    expect((await catalog.listPayloads({})).totalCount).toBe(0);
  });

  it("answers a generic 500 for invalid bindings and logs the problems", async () => {
    runtimeOutput.length = 0;
    baseUrl = await startWorker({ PM_EDGE_TEST_DISK: "yes", PM_AUTH_TOKENS: "short=alpha" });
    const res = await fetch(new URL("healthz", baseUrl));
    expect(res.status).toBe(500);
    const body = (await res.json()) as { status: string; message: string };
    expect(body.status).toBe("INTERNAL");
    expect(body.message).not.toMatch(/short/);
    const deadline = Date.now() + 5_000;
    while (!runtimeOutput.join("").includes("PM_EDGE_TEST_DISK") && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const log = runtimeOutput.join("");
    expect(log).toMatch(/PM_EDGE_TEST_DISK must be 0 or 1/);
    expect(log).toMatch(/PM_AUTH_TOKENS entry 1: the token must be 8\+ characters/);
    expect(log).not.toMatch(/short=alpha/);
  });
});
