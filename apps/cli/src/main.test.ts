import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter, createRouterTransport } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { idBytes } from "@pm/client";
import {
  MetadataUpdateMode,
  PayloadAdminService,
  PayloadCatalogService,
  PayloadDataService,
  PayloadState,
  PayloadStreamService,
  Tier,
} from "@pm/rpc";
import { describe, expect, it } from "vitest";
import { codeName, main } from "./main.ts";

const UUID = "123e4567-e89b-42d3-a456-426614174000";
const OTHER = "00000000-0000-4000-8000-000000000001";

class Capture extends Writable {
  text = "";
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.text += String(chunk);
    cb();
  }
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(
  argv: string[],
  routes: (r: ConnectRouter) => void = () => undefined,
  opts: { env?: Record<string, string>; signal?: AbortSignal; noTransport?: boolean } = {},
): Promise<Run> {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await main(argv, opts.env ?? {}, {
    stdout,
    stderr,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.noTransport ? {} : { transport: createRouterTransport(routes) }),
  });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

describe("usage", () => {
  it("--help prints the command list on stdout and exits 0", async () => {
    for (const argv of [["--help"], ["-h"], ["help"], ["--json", "--help"]]) {
      const r = await run(argv);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^payloadctl: command line for Payload Manager/);
      for (const c of [
        "put",
        "get",
        "allocate",
        "spill",
        "metadata set",
        "lineage add",
        "stream range",
        "watch",
      ])
        expect(r.stdout).toMatch(new RegExp(`^  ${c} `, "m"));
      expect(r.stdout).toMatch(/exit codes: 0 ok, 1 usage error, 2 RPC error/);
    }
  });

  it("<command> --help prints that command's usage and flags", async () => {
    const r = await run(["allocate", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^usage: payloadctl allocate --size SIZE --tier TIER \[--ttl-ms MS\] \[--no-evict\]/,
    );
    expect(r.stdout).toMatch(/--size SIZE +bytes to reserve.*\(required\)/);
    expect(r.stdout).toMatch(/global flags:\n {2}--server URL/);
    // --help wins over arguments that would otherwise be wrong.
    expect((await run(["resolve", "not-a-uuid", "--help"])).code).toBe(0);
    expect((await run(["metadata", "set", "--help"])).stdout).toMatch(/^usage: payloadctl metadata set <id>/);
    expect((await run(["help", "lineage", "add"])).stdout).toMatch(
      /^usage: payloadctl lineage add <child> --parent/,
    );
  });

  it("a group without a subcommand lists its subcommands", async () => {
    const help = await run(["stream", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^ {2}stream committed +show a consumer group's checkpoint/m);
    const missing = await run(["metadata"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/error: missing metadata subcommand/);
  });

  it("no command, unknown commands and unknown subcommands are usage errors (exit 1)", async () => {
    const none = await run([]);
    expect(none).toMatchObject({ code: 1, stdout: "" });
    expect(none.stderr).toMatch(/error: missing command/);
    const unknown = await run(["frobnicate"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe(
      "error: unknown command \"frobnicate\"\nrun 'payloadctl --help' for details\n",
    );
    expect((await run(["lst"])).stderr).toMatch(/unknown command "lst" \(did you mean list\?\)/);
    expect((await run(["stream", "raed", "s"])).stderr).toMatch(/did you mean stream read\?/);
    expect((await run(["--bogus", "list"])).stderr).toMatch(/error: unknown flag --bogus/);
  });

  it("bad arguments are usage errors with the command's usage line", async () => {
    const bad = await run(["resolve", "not-a-uuid"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr.split("\n")).toEqual([
      'error: "not-a-uuid" is not a payload id: give a UUID like 123e4567-e89b-42d3-a456-426614174000 or the base64url of its 16 bytes',
      "usage: payloadctl resolve <id>",
      "run 'payloadctl resolve --help' for details",
      "",
    ]);
    expect((await run(["resolve"])).stderr).toMatch(/^error: missing <id>\n/);
    expect((await run(["allocate", "--tier", "RAM"])).stderr).toMatch(/^error: --size is required\n/);
    expect((await run(["allocate", "--size", "lots", "--tier", "RAM"])).stderr).toMatch(/is not a size/);
    expect((await run(["list", "--tier", "SSD"])).code).toBe(1);
    expect((await run(["list", "--server", "ftp://x"])).stderr).toMatch(
      /"ftp:\/\/x" is not an http\(s\) URL/,
    );
    expect((await run(["watch", "s", "--from-latest", "--offset", "3"])).stderr).toMatch(/only one of/);
  });
});

describe("RPCs", () => {
  it("prints a descriptor table, and protojson under --json (global flags anywhere)", async () => {
    const routes = (r: ConnectRouter) =>
      r.service(PayloadDataService, {
        resolveSnapshot: (req) => ({
          payloadDescriptor: {
            payloadId: req.id,
            tier: Tier.DISK,
            state: PayloadState.DURABLE,
            sizeBytes: 1024n,
            version: 3n,
            location: { case: "disk", value: { path: "/data/x.bin", lengthBytes: 1024n } },
            createdAt: timestampFromMs(Date.UTC(2026, 0, 1)),
          },
        }),
      });
    const human = await run(["resolve", UUID], routes);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`^payload +${UUID}\ntier +DISK\nstate +DURABLE\n`));
    expect(human.stdout).toMatch(/^location +file \/data\/x\.bin$/m);

    // The base64 id that --json prints is accepted back.
    const json = await run(["--json", "resolve", "Ej5FZ-ibQtOkVkJmFBdAAA"], routes);
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout) as { payloadDescriptor: Record<string, unknown> };
    expect(parsed.payloadDescriptor).toMatchObject({
      payloadId: { value: "Ej5FZ+ibQtOkVkJmFBdAAA==" },
      tier: "TIER_DISK",
      state: "PAYLOAD_STATE_DURABLE",
      sizeBytes: "1024",
      version: "3",
      disk: { path: "/data/x.bin", offsetBytes: "0", lengthBytes: "1024" },
      createdAt: "2026-01-01T00:00:00Z",
    });
  });

  it("talks Connect over HTTP to --server / PM_SERVER with the bearer token of --token / PM_TOKEN", async () => {
    const auth: (string | undefined)[] = [];
    const server = createHttpServer(
      connectNodeAdapter({
        routes: (r) =>
          r.service(PayloadDataService, {
            releaseLease(_req, ctx) {
              auth.push(ctx.requestHeader.get("authorization") ?? undefined);
              return {};
            },
          }),
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const env = { PM_SERVER: url, PM_TOKEN: "from-env" };
      const a = await run(["release", UUID], undefined, { env, noTransport: true });
      expect(a).toEqual({ code: 0, stdout: `released lease ${UUID}\n`, stderr: "" });
      const b = await run(["release", UUID, "--token", "from-flag"], undefined, { env, noTransport: true });
      expect(b.code).toBe(0);
      const c = await run(["--server", url, "release", UUID], undefined, { noTransport: true });
      expect(c.code).toBe(0);
      expect(auth).toEqual(["Bearer from-env", "Bearer from-flag", undefined]);
    } finally {
      server.close();
    }
  });

  it("an RPC error exits 2 with its code name and message", async () => {
    const r = await run(["resolve", UUID], (router) =>
      router.service(PayloadDataService, {
        resolveSnapshot() {
          throw new ConnectError(`payload ${UUID} does not exist; check the id`, Code.NotFound);
        },
      }),
    );
    expect(r).toEqual({
      code: 2,
      stdout: "",
      stderr: `error: NOT_FOUND: payload ${UUID} does not exist; check the id\n`,
    });
  });

  it("an unreachable server exits 2 as UNAVAILABLE naming the URL", async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const r = await run(["stats"], undefined, {
      env: { PM_SERVER: `http://127.0.0.1:${port}` },
      noTransport: true,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `error: UNAVAILABLE: cannot reach the API at http://127.0.0.1:${port} (ECONNREFUSED); check --server or PM_SERVER\n`,
    );
  });

  it("allocate sends what the flags say", async () => {
    let seen: unknown;
    const r = await run(
      [
        "allocate",
        "--size",
        "64MiB",
        "--tier",
        "disk",
        "--ttl-ms",
        "1h",
        "--no-evict",
        "--spill-target",
        "VOID",
      ],
      (router) =>
        router.service(PayloadCatalogService, {
          allocatePayload(req) {
            seen = req;
            return { payloadDescriptor: { payloadId: idBytes(UUID), tier: req.preferredTier } };
          },
        }),
    );
    expect(r.code).toBe(0);
    expect(seen).toMatchObject({
      sizeBytes: 64n * 2n ** 20n,
      preferredTier: Tier.DISK,
      ttlMs: 3_600_000n,
      noEvict: true,
      evictionPolicy: { spillTarget: Tier.VOID },
    });
    expect(r.stderr).toBe(`write the bytes, then: payloadctl commit ${UUID}\n`);
  });

  it("list --all follows page tokens and prints one table; the footer goes to stderr", async () => {
    const tokens: string[] = [];
    const routes = (router: ConnectRouter) =>
      router.service(PayloadCatalogService, {
        listPayloads(req) {
          tokens.push(req.pageToken);
          const page = req.pageToken === "" ? 0 : 1;
          return {
            payloads: [
              {
                id: idBytes(page === 0 ? UUID : OTHER),
                tier: Tier.RAM,
                state: PayloadState.ACTIVE,
                sizeBytes: 2048n,
                activeLeases: page,
                createdAtMs: BigInt(Date.UTC(2026, 0, 1)),
              },
            ],
            nextPageToken: page === 0 ? "p2" : "",
            totalCount: 2,
          };
        },
      });
    const all = await run(["list", "--all", "--state", "active"], routes);
    expect(all.code).toBe(0);
    expect(tokens).toEqual(["", "p2"]);
    expect(all.stdout.split("\n")).toEqual([
      "PAYLOAD                               TIER  STATE       SIZE  LEASES  CREATED               EXPIRES",
      `${UUID}  RAM   ACTIVE  2.00 KiB       0  2026-01-01T00:00:00Z  never`,
      `${OTHER}  RAM   ACTIVE  2.00 KiB       1  2026-01-01T00:00:00Z  never`,
      "",
    ]);
    expect(all.stderr).toBe("2 of 2 payloads\n");
    const one = await run(["list"], routes);
    expect(one.stderr).toBe("1 of 2 payloads; next page: --page-token p2\n");
    const json = await run(["list", "--all", "--json"], routes);
    expect(JSON.parse(json.stdout)).toMatchObject({ nextPageToken: "", totalCount: 2 });
    expect(JSON.parse(json.stdout).payloads).toHaveLength(2);
  });

  it("spill exits 2 when any item failed and shows each result", async () => {
    const r = await run(["spill", UUID, OTHER, "--tier", "DISK", "--blocking"], (router) =>
      router.service(PayloadCatalogService, {
        spill(req) {
          return {
            results: [
              {
                id: req.ids[0],
                ok: true,
                payloadDescriptor: { tier: Tier.DISK, state: PayloadState.DURABLE },
              },
              { id: req.ids[1], ok: false, errorMessage: "LEASE_CONFLICT: leased" },
            ],
          };
        },
      }),
    );
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(new RegExp(`^${UUID} +ok +DISK +DURABLE$`, "m"));
    expect(r.stdout).toMatch(new RegExp(`^${OTHER} +failed +- +- +LEASE_CONFLICT: leased$`, "m"));
    expect(r.stderr).toBe("error: 1 of 2 payloads were not spilled\n");
  });

  it("empty responses print a confirmation, or {} under --json", async () => {
    const routes = (router: ConnectRouter) =>
      router.service(PayloadCatalogService, { delete: () => ({}), pin: () => ({}) });
    expect(await run(["delete", UUID, "--force"], routes)).toEqual({
      code: 0,
      stdout: `deleted ${UUID}\n`,
      stderr: "",
    });
    expect((await run(["pin", UUID, "--json"], routes)).stdout).toBe("{}\n");
  });

  it("stats prints the tier and agent tables", async () => {
    const r = await run(["stats"], (router) =>
      router.service(PayloadAdminService, {
        stats: () => ({ payloadsRam: 1n, bytesRam: 100n, agents: [] }),
      }),
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^RAM +1 +100 B$/m);
    expect(r.stdout).toMatch(/no tier agents registered/);
  });
});

describe("catalog and stream commands", () => {
  it("metadata set reads --data-file, merges by default and replaces with --replace", async () => {
    const dir = mkdtempSync(join(tmpdir(), "payloadctl-test-"));
    const file = join(dir, "meta.bin");
    writeFileSync(file, Buffer.from([0, 1, 2, 255]));
    const seen: { mode: number; data: number[]; schema: string }[] = [];
    const routes = (router: ConnectRouter) =>
      router.service(PayloadCatalogService, {
        updatePayloadMetadata(req) {
          seen.push({
            mode: req.mode,
            data: [...(req.metadata?.data ?? [])],
            schema: req.metadata?.schema ?? "",
          });
          return { id: req.id, metadata: req.metadata };
        },
      });
    try {
      const a = await run(["metadata", "set", UUID, "--data-file", file, "--schema", "raw"], routes);
      expect(a.code).toBe(0);
      expect(a.stdout).toMatch(/^data +base64:AAEC\/w==$/m);
      const b = await run(["metadata", "set", UUID, "--data", '{"k":1}', "--replace"], routes);
      expect(b.stdout).toMatch(/^data +\{"k":1\}$/m);
      expect(seen).toEqual([
        { mode: MetadataUpdateMode.MERGE, data: [0, 1, 2, 255], schema: "raw" },
        { mode: MetadataUpdateMode.REPLACE, data: [...Buffer.from('{"k":1}')], schema: "" },
      ]);
      const missing = await run(["metadata", "set", UUID, "--data-file", join(dir, "nope")], routes);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/^error: cannot read --data-file .*nope: ENOENT/);
      expect((await run(["metadata", "set", UUID], routes)).stderr).toMatch(/^error: nothing to set/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("lineage add sends one edge per --parent with operation and role", async () => {
    let seen: unknown;
    const r = await run(
      ["lineage", "add", UUID, "--parent", `${OTHER}:resize:input`, "--parent", OTHER],
      (router) =>
        router.service(PayloadCatalogService, {
          addLineage(req) {
            seen = req.parents.map((p) => ({
              operation: p.operation,
              role: p.role,
              n: p.parent?.value.length,
            }));
            return {};
          },
        }),
    );
    expect(r).toMatchObject({ code: 0, stdout: `recorded 2 parents of ${UUID}\n` });
    expect(seen).toEqual([
      { operation: "resize", role: "input", n: 16 },
      { operation: "", role: "", n: 16 },
    ]);
    expect((await run(["lineage", "add", UUID])).stderr).toMatch(/^error: --parent is required/);
  });

  it("stream append tags every item; stream read prints the entries", async () => {
    let appended: unknown;
    const routes = (router: ConnectRouter) =>
      router.service(PayloadStreamService, {
        append(req) {
          appended = {
            stream: { namespace: req.stream?.namespace, name: req.stream?.name },
            items: req.items.map((i) => ({ tags: i.tags, durationNs: i.durationNs })),
          };
          return { firstOffset: 10n, lastOffset: 11n };
        },
        read: (req) => ({
          entries: [
            {
              stream: req.stream,
              offset: req.startOffset,
              payloadId: idBytes(UUID),
              appendTime: timestampFromMs(Date.UTC(2026, 0, 1)),
              tags: { cam: "front" },
            },
          ],
        }),
      });
    const a = await run(
      ["stream", "append", "cams/front", UUID, OTHER, "--tag", "cam=front", "--duration-ns", "5"],
      routes,
    );
    expect(a).toMatchObject({ code: 0, stdout: "appended at offsets 10..11\n" });
    expect(appended).toEqual({
      stream: { namespace: "cams", name: "front" },
      items: [
        { tags: { cam: "front" }, durationNs: 5n },
        { tags: { cam: "front" }, durationNs: 5n },
      ],
    });
    const r = await run(["stream", "read", "cams/front", "--start-offset", "10"], routes);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^ *10 +${UUID} +- +2026-01-01T00:00:00Z +- +cam=front$`, "m"));
  });
});

describe("watch", () => {
  it("prints entries as they arrive and ends cleanly (exit 0) on Ctrl-C", async () => {
    const ac = new AbortController();
    let seenStart: unknown;
    const routes = (router: ConnectRouter) =>
      router.service(PayloadStreamService, {
        async *subscribe(req, ctx) {
          seenStart = req.start;
          for (let offset = 5n; offset < 7n; offset++)
            yield { entry: { offset, payloadId: idBytes(UUID), tags: { cam: "front" } } };
          ac.abort();
          await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
        },
      });
    const r = await run(["watch", "cams/front", "--offset", "5"], routes, { signal: ac.signal });
    expect(r.code).toBe(0);
    expect(seenStart).toEqual({ case: "offset", value: 5n });
    expect(r.stdout.split("\n")).toEqual([
      `5  ${UUID}  -  -  -  cam=front`,
      `6  ${UUID}  -  -  -  cam=front`,
      "",
    ]);
  });

  it("prints one protojson line per entry under --json", async () => {
    const r = await run(["watch", "s", "--json", "--from-latest"], (router) =>
      router.service(PayloadStreamService, {
        async *subscribe(req) {
          expect(req.start).toEqual({ case: "fromLatest", value: true });
          yield { entry: { offset: 1n } };
        },
      }),
    );
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ entry: { offset: "1" } });
  });

  it("a server without streams answers UNIMPLEMENTED: printed cleanly, exit 2", async () => {
    const r = await run(["watch", "cams/front"], () => undefined);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: UNIMPLEMENTED: /);
    expect(r.stderr.split("\n")).toHaveLength(2);
  });
});

describe("codeName", () => {
  it("spells codes like the wire contract", () => {
    expect(codeName(Code.NotFound)).toBe("NOT_FOUND");
    expect(codeName(Code.FailedPrecondition)).toBe("FAILED_PRECONDITION");
    expect(codeName(Code.Unavailable)).toBe("UNAVAILABLE");
    expect(codeName(Code.Aborted)).toBe("ABORTED");
  });
});
