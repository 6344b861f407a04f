import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { promisify } from "node:util";
import { type ApiHandle, loadConfig, startApi } from "@pm/api";
import { type AgentHandle, loadAgentConfig, startAgent } from "@pm/tier-agent";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// gRPC compatibility with a client that shares no code with us: Debian's grpcio, with message
// classes protoc generates from proto/, against the real API (native gRPC on its h2c port) and a
// real tier agent serving DISK, both in this process.

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "../..");
const PYTHON = "/usr/bin/python3";
const INSTALL =
  "install them with `apt-get install -y --no-install-recommends python3-grpcio protobuf-compiler` (infra/dev/services.sh does)";

let dir: string;
let api: ApiHandle | undefined;
let agent: AgentHandle | undefined;
const timings: Record<string, number> = {};

/** Fails (never skips) when the third-party toolchain is missing: CI must provide it. */
async function requireToolchain(): Promise<void> {
  try {
    await run(PYTHON, ["-c", "import grpc, google.protobuf"]);
  } catch (e) {
    throw new Error(
      `${PYTHON} cannot import grpc and google.protobuf (${(e as Error).message.trim()}); ${INSTALL}`,
    );
  }
  try {
    await run("protoc", ["--version"]);
  } catch (e) {
    throw new Error(`protoc is not on PATH (${(e as Error).message.trim()}); ${INSTALL}`);
  }
}

/**
 * Debian's protoc ships without the well-known .proto files (they come with libprotobuf-dev, which
 * the services script does not install), so `google/protobuf/*.proto` imports would not resolve.
 * The Python protobuf runtime carries their descriptors: export those as a FileDescriptorSet and
 * hand it to protoc, which then generates code against exactly the runtime that will load it.
 */
const WKT_DESCRIPTORS = `
import sys
from google.protobuf import descriptor_pb2, empty_pb2, timestamp_pb2
out = descriptor_pb2.FileDescriptorSet()
for module in (descriptor_pb2, timestamp_pb2, empty_pb2):
    f = out.file.add()
    module.DESCRIPTOR.CopyToProto(f)
open(sys.argv[1], "wb").write(out.SerializeToString())
`;

function protoFiles(d: string): string[] {
  return readdirSync(d, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? protoFiles(join(d, e.name)) : e.name.endsWith(".proto") ? [join(d, e.name)] : [],
  );
}

async function generatePythonStubs(out: string): Promise<void> {
  const wkt = join(dir, "wkt.binpb");
  await run(PYTHON, ["-c", WKT_DESCRIPTORS, wkt]);
  const protoRoot = join(ROOT, "proto");
  const files = protoFiles(protoRoot).map((f) => relative(protoRoot, f));
  await run("protoc", ["-I", protoRoot, `--descriptor_set_in=${wkt}`, `--python_out=${out}`, ...files]);
}

async function waitReady(url: string, deadlineMs: number): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  let last = "";
  while (Date.now() < deadline) {
    const res = await fetch(`${url}/readyz`).catch((e: Error) => e);
    if (!(res instanceof Error) && res.status === 200) return;
    last = res instanceof Error ? res.message : await res.text();
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the API did not become ready within ${deadlineMs} ms: ${last}`);
}

beforeAll(async () => {
  await requireToolchain();
  dir = mkdtempSync(join(tmpdir(), "pm-compat-grpc-"));
  let started = performance.now();
  await generatePythonStubs(dir);
  timings.protocMs = performance.now() - started;

  started = performance.now();
  api = await startApi(
    loadConfig(undefined, {
      PM_CATALOG_URL: "memory:",
      PM_HTTP_PORT: "0",
      PM_GRPC_PORT: "0",
      PM_DATA_DIR: join(dir, "data"),
      PM_LOG_LEVEL: "silent",
    }),
  );
  const agentConfig = loadAgentConfig(undefined, {
    PM_AGENT_ID: "compat-agent",
    PM_AGENT_PORT: "0",
    PM_CONTROL_PLANE_URL: api.httpUrl,
    PM_DISK_ROOT: join(dir, "disk"),
    PM_GPU_ENABLED: "false",
    PM_LOG_LEVEL: "silent",
  });
  // DISK only: nothing of this test lands in /dev/shm.
  agent = await startAgent({
    ...agentConfig,
    tiers: { ...agentConfig.tiers, ram: { ...agentConfig.tiers.ram, enabled: false } },
  });
  await waitReady(api.httpUrl, 15_000);
  timings.startMs = performance.now() - started;
});

afterAll(async () => {
  await agent?.close();
  await api?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  console.info(
    `protoc: ${timings.protocMs?.toFixed(0)} ms; API + agent ready: ${timings.startMs?.toFixed(0)} ms; python client: ${timings.clientMs?.toFixed(0)} ms`,
  );
});

interface Failure {
  code: string;
  reason: string;
  details: string;
}
interface ClientReport {
  allocate: {
    id: string;
    id_bytes: number;
    tier: string;
    state: string;
    version: number;
    size_bytes: number;
    disk_path: string;
    disk_length_bytes: number;
    file_size: number;
  };
  commit: { state: string; version: number };
  commit_again: Failure;
  commit_15_byte_id: Failure;
  lease: { lease_id_bytes: number; state: string; version: number; disk_path: string; expires_at_s: number };
  delete_while_leased: Failure;
  release: string;
  delete: { file_exists_after: boolean };
  lease_after_delete: Failure;
}

describe("a Python grpcio client (protoc-generated messages) against the native gRPC port", () => {
  it("generates importable modules for every proto file", () => {
    for (const f of protoFiles(join(ROOT, "proto"))) {
      const module = relative(join(ROOT, "proto"), f).replace(/\.proto$/, "_pb2.py");
      expect(existsSync(join(dir, module)), module).toBe(true);
    }
  });

  it("runs allocate(DISK) → commit → lease → release → delete, with errors mapped to gRPC codes", async () => {
    const target = new URL(api!.grpcUrl).host;
    const started = performance.now();
    const { stdout } = await run(PYTHON, [join(ROOT, "tests/compat/grpc_client.py"), target, dir], {
      timeout: 60_000,
    }).catch((e: Error & { stdout?: string; stderr?: string }) => {
      throw new Error(`grpc_client.py failed: ${e.message}\n${e.stderr ?? ""}${e.stdout ?? ""}`);
    });
    timings.clientMs = performance.now() - started;
    const r = JSON.parse(stdout) as ClientReport;

    expect(r.allocate).toMatchObject({
      id_bytes: 16,
      tier: "TIER_DISK",
      state: "PAYLOAD_STATE_ALLOCATED",
      version: 1,
      size_bytes: 4096,
      disk_length_bytes: 4096,
      file_size: 4096,
    });
    expect(r.allocate.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(r.allocate.disk_path).toBe(join(dir, "disk", `${r.allocate.id}.bin`));
    expect(r.commit).toEqual({ state: "PAYLOAD_STATE_DURABLE", version: 2 });
    expect(r.commit_again).toMatchObject({ code: "FAILED_PRECONDITION", reason: "INVALID_TRANSITION" });
    expect(r.commit_again.details).toMatch(/DURABLE/);
    expect(r.commit_15_byte_id).toMatchObject({ code: "INVALID_ARGUMENT", reason: "INVALID_ARGUMENT" });
    expect(r.commit_15_byte_id.details).toMatch(/16 bytes/);
    expect(r.lease).toMatchObject({
      lease_id_bytes: 16,
      state: "PAYLOAD_STATE_DURABLE",
      version: 2,
      disk_path: r.allocate.disk_path,
    });
    expect(r.lease.expires_at_s * 1000).toBeGreaterThan(Date.now());
    expect(r.delete_while_leased).toMatchObject({ code: "ABORTED", reason: "LEASE_CONFLICT" });
    expect(r.release).toBe("ok");
    expect(r.delete.file_exists_after).toBe(false);
    expect(existsSync(r.allocate.disk_path)).toBe(false);
    expect(r.lease_after_delete).toMatchObject({ code: "NOT_FOUND", reason: "PAYLOAD_NOT_FOUND" });
  });

  it("left the agent's disk root empty", () => {
    const disk = join(dir, "disk");
    const left = existsSync(disk) ? readdirSync(disk).filter((f) => statSync(join(disk, f)).isFile()) : [];
    expect(left).toEqual([]);
  });
});
