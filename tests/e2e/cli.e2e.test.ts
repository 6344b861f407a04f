import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, type RunningSystem, removeDataDir, startSystem } from "../support/system.ts";

const MIB = 1024 * 1024;
const BIN = join(ROOT, "apps/cli/bin/payloadctl.mjs");
const UUID_LINE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let sys: RunningSystem;
let work: string;

beforeAll(async () => {
  sys = await startSystem();
  work = mkdtempSync(join(tmpdir(), "pm-cli-e2e-"));
});
afterAll(async () => {
  await sys?.stop();
  if (sys) {
    for (const f of readdirSync("/dev/shm"))
      if (f.startsWith(sys.ramPrefix)) removeDataDir(join("/dev/shm", f));
    removeDataDir(sys.dataDir);
  }
  if (work) removeDataDir(work);
});

interface Result {
  code: number | null;
  stdout: Buffer;
  out: string;
  err: string;
}

/** Runs the real `payloadctl` binary in its own process against the started system. */
function payloadctl(args: readonly string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [BIN, ...args], {
      cwd: work,
      env: { ...process.env, PM_SERVER: sys.url, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on("data", (d: Buffer) => out.push(d));
    p.stderr.on("data", (d: Buffer) => err.push(d));
    // A command that should have answered by now is a failure, not a hang of the whole suite.
    const timer = setTimeout(() => p.kill("SIGKILL"), 60_000);
    p.once("error", reject);
    p.once("close", (code) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out);
      resolve({ code, stdout, out: stdout.toString(), err: Buffer.concat(err).toString() });
    });
  });
}

/** Fails with everything the command printed, so a wrong exit code explains itself. */
function expectExit(r: Result, code: number): void {
  expect({ code: r.code, out: r.out.slice(0, 2000), err: r.err }).toMatchObject({ code });
}

async function waitFor(cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface ListJson {
  payloads: { id: { value: string }; tier: string; state: string; sizeBytes: string; activeLeases: number }[];
  totalCount: number;
}

const uuidOfBase64 = (b64: string) => {
  const h = Buffer.from(b64, "base64").toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};

describe("payloadctl against a real payload-manager", () => {
  const ids: Record<string, string> = {};

  for (const tier of ["RAM", "DISK"] as const) {
    it(`put a 5 MiB file to ${tier}, get it back to a file and to stdout, byte for byte`, async () => {
      const bytes = randomBytes(5 * MIB);
      const input = join(work, `in-${tier}.bin`);
      writeFileSync(input, bytes);

      const put = await payloadctl(["put", input, "--tier", tier]);
      expectExit(put, 0);
      const id = put.out.trim();
      expect(id).toMatch(UUID_LINE);
      ids[tier] = id;
      const region = tier === "RAM" ? `/dev/shm/${sys.ramPrefix}${id}.bin` : join(sys.diskRoot, `${id}.bin`);
      expect(existsSync(region)).toBe(true);

      const output = join(work, `out-${tier}.bin`);
      const get = await payloadctl(["get", id, "-o", output, "--verify"]);
      expectExit(get, 0);
      expect(readFileSync(output).equals(bytes)).toBe(true);

      const piped = await payloadctl(["get", id]);
      expectExit(piped, 0);
      expect(piped.stdout.equals(bytes)).toBe(true);

      const resolved = await payloadctl(["resolve", id]);
      expectExit(resolved, 0);
      expect(resolved.out).toMatch(new RegExp(`^tier +${tier}$`, "m"));
      expect(resolved.out).toMatch(/^size +5\.00 MiB \(5242880 bytes\)$/m);
    });
  }

  it("list --json is the protojson of ListPayloads and names both payloads", async () => {
    const r = await payloadctl(["list", "--json"]);
    expectExit(r, 0);
    const res = JSON.parse(r.out) as ListJson;
    expect(res.totalCount).toBeGreaterThanOrEqual(2);
    const byId = new Map(res.payloads.map((p) => [uuidOfBase64(p.id.value), p]));
    expect(byId.get(ids.RAM!)).toMatchObject({
      tier: "TIER_RAM",
      state: "PAYLOAD_STATE_ACTIVE",
      sizeBytes: "5242880",
    });
    expect(byId.get(ids.DISK!)).toMatchObject({ tier: "TIER_DISK", state: "PAYLOAD_STATE_DURABLE" });

    const disk = JSON.parse((await payloadctl(["list", "--json", "--tier", "DISK"])).out) as ListJson;
    expect(disk.payloads.map((p) => p.tier)).toEqual(disk.payloads.map(() => "TIER_DISK"));
  });

  it("stats shows per-tier counts and the live local agent", async () => {
    const r = await payloadctl(["stats"]);
    expectExit(r, 0);
    expect(r.out).toMatch(/^TIER +PAYLOADS +BYTES$/m);
    expect(r.out).toMatch(/^RAM +[1-9]\d* +\S+ \S+$/m);
    expect(r.out).toMatch(/^DISK +[1-9]\d* +\S+ \S+$/m);
    expect(r.out).toMatch(/^\S+ +\S+ +http:\/\/\S+ +yes +\S+ +RAM /m);
  });

  it("lease blocks a plain delete; release, then delete frees the region", async () => {
    const id = ids.RAM!;
    const lease = await payloadctl(["lease", id, "--duration-ms", "60s", "--json"]);
    expectExit(lease, 0);
    const leaseId = (JSON.parse(lease.out) as { leaseId: { value: string } }).leaseId.value;

    const listed = JSON.parse((await payloadctl(["list", "--json"])).out) as ListJson;
    expect(listed.payloads.find((p) => uuidOfBase64(p.id.value) === id)?.activeLeases).toBe(1);

    const blocked = await payloadctl(["delete", id]);
    expectExit(blocked, 2);
    expect(blocked.err).toMatch(/^error: ABORTED: /);

    // The lease id exactly as --json printed it (base64) is accepted back.
    const released = await payloadctl(["release", leaseId]);
    expectExit(released, 0);
    expect(released.out).toBe(`released lease ${uuidOfBase64(leaseId)}\n`);

    const deleted = await payloadctl(["delete", id]);
    expectExit(deleted, 0);
    expect(deleted.out).toBe(`deleted ${id}\n`);
    await waitFor(() => !existsSync(`/dev/shm/${sys.ramPrefix}${id}.bin`));

    const gone = await payloadctl(["resolve", id]);
    expectExit(gone, 2);
    expect(gone.err).toMatch(/^error: NOT_FOUND: /);
  });

  it("an unknown payload is exit 2 with the code name, and get leaves no file behind", async () => {
    const unknown = "123e4567-e89b-42d3-a456-426614174000";
    const r = await payloadctl(["resolve", unknown]);
    expectExit(r, 2);
    expect(r.err).toMatch(new RegExp(`^error: NOT_FOUND: .*${unknown}`));
    expect(r.out).toBe("");

    const output = join(work, "never.bin");
    const g = await payloadctl(["get", unknown, "-o", output]);
    expectExit(g, 2);
    expect(existsSync(output)).toBe(false);
  });

  it("usage errors are exit 1 with a hint; --help is exit 0", async () => {
    const bad = await payloadctl(["resolve", "not-a-uuid"]);
    expectExit(bad, 1);
    expect(bad.err).toMatch(/^error: "not-a-uuid" is not a payload id/);
    expect(bad.err).toMatch(/^usage: payloadctl resolve <id>$/m);

    const unknown = await payloadctl(["frobnicate"]);
    expectExit(unknown, 1);
    expect(unknown.err).toMatch(/^error: unknown command "frobnicate"/);

    const help = await payloadctl(["--help"]);
    expectExit(help, 0);
    expect(help.out).toMatch(/^usage: payloadctl \[global flags\] <command>/m);
    expect(help.out).toMatch(/^ {2}put +upload a file/m);

    const cmdHelp = await payloadctl(["put", "--help"]);
    expectExit(cmdHelp, 0);
    expect(cmdHelp.out).toMatch(/^usage: payloadctl put <file> \[--tier TIER\]/);
  });

  it("watch on a stream prints the server's error cleanly with exit 2 (streams may be unimplemented)", async () => {
    const r = await payloadctl(["watch", "cli-e2e/none", "--from-beginning"]);
    expectExit(r, 2);
    expect(r.err).toMatch(/^error: [A-Z_]+: \S/);
    expect(r.err.trim().split("\n")).toHaveLength(1);
  });

  it("an unreachable server is exit 2 UNAVAILABLE", async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const r = await payloadctl(["stats"], { PM_SERVER: `http://127.0.0.1:${port}` });
    expectExit(r, 2);
    expect(r.err).toBe(
      `error: UNAVAILABLE: cannot reach the API at http://127.0.0.1:${port} (ECONNREFUSED); check --server or PM_SERVER\n`,
    );
  });
});
