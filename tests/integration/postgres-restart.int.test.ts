import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { createPayloadClient, idBytes, idText, type PayloadClient } from "@pm/client";
import { Tier } from "@pm/rpc";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningSystem, removeDataDir, startSystem } from "../support/system.ts";
import { freePort, ThrowawayCluster, throwawayClusterUnsupported, withDatabase } from "./lib/postgres.ts";

// Faults of the catalog database, on a Postgres cluster of the test's own (initdb in a temp dir,
// its own port) so the shared server other tests use is never restarted. The API runs as a real
// process; every call is bounded by a client deadline, so a hang shows up as DEADLINE_EXCEEDED.

const unsupported = throwawayClusterUnsupported();
const CALL_TIMEOUT_MS = 8_000;

let cluster: ThrowawayCluster;
const systems: RunningSystem[] = [];

beforeAll(async () => {
  if (unsupported) return;
  cluster = await ThrowawayCluster.start(await freePort());
}, 60_000);

afterAll(async () => {
  for (const s of systems) {
    await s.stop().catch(() => undefined);
    for (const f of readdirSync("/dev/shm")) if (f.startsWith(s.ramPrefix)) rmSync(join("/dev/shm", f));
    removeDataDir(s.dataDir);
  }
  cluster?.destroy();
});

async function database(name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: cluster.url });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return withDatabase(cluster.url, name);
}

async function start(catalogUrl: string): Promise<RunningSystem> {
  const sys = await startSystem({ role: "all", env: { PM_CATALOG_URL: catalogUrl } });
  systems.push(sys);
  return sys;
}

interface Outcome {
  readonly op: string;
  readonly payload: string;
  readonly start: number;
  readonly end: number;
  readonly code: string;
  readonly message: string;
}

/** Runs a call with a deadline and records what came back. */
async function timed<T>(
  out: Outcome[],
  op: string,
  payload: string,
  fn: () => Promise<T>,
): Promise<T | undefined> {
  const start = performance.now();
  try {
    const r = await fn();
    out.push({ op, payload, start, end: performance.now(), code: "OK", message: "" });
    return r;
  } catch (e) {
    const err = ConnectError.from(e);
    out.push({ op, payload, start, end: performance.now(), code: Code[err.code], message: err.rawMessage });
    return undefined;
  }
}

/** allocate → commit → lease → release, over and over, until `stop()` says so. */
async function lifecycleLoop(client: PayloadClient, out: Outcome[], stop: () => boolean): Promise<void> {
  const o = { timeoutMs: CALL_TIMEOUT_MS };
  while (!stop()) {
    const a = await timed(out, "allocate", "", () =>
      client.catalog.allocatePayload({ sizeBytes: 4096n, preferredTier: Tier.RAM }, o),
    );
    if (!a) {
      await new Promise((r) => setTimeout(r, 20));
      continue;
    }
    const id = idText(a.payloadDescriptor?.payloadId);
    out[out.length - 1] = { ...out[out.length - 1]!, payload: id };
    if (!(await timed(out, "commit", id, () => client.catalog.commitPayload({ id: idBytes(id) }, o))))
      continue;
    const l = await timed(out, "acquire", id, () => client.data.acquireReadLease({ id: idBytes(id) }, o));
    if (!l) continue;
    await timed(out, "release", idText(l.leaseId), () => client.data.releaseLease({ leaseId: l.leaseId }, o));
  }
}

describe.skipIf(unsupported !== undefined)(
  `catalog database faults${unsupported ? ` (skipped: ${unsupported})` : ""}`,
  () => {
    it("fails calls fast with UNAVAILABLE while Postgres restarts or is down, then recovers in the same process", {
      timeout: 120_000,
    }, async () => {
      const url = await database("pm_restart");
      // A short connect timeout keeps calls during the outage from waiting long for a connection.
      const sys = await start(`${url}?connect_timeout_ms=2000`);
      const pid = sys.proc.pid;
      const client = createPayloadClient({ baseUrl: sys.url });
      const out: Outcome[] = [];
      let stopping = false;
      const loops = Array.from({ length: 6 }, () => lifecycleLoop(client, out, () => stopping));
      const okCount = () => out.filter((o) => o.code === "OK").length;
      const waitFor = async (what: string, cond: () => boolean, ms = 20_000) => {
        const deadline = Date.now() + ms;
        while (!cond()) {
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      };

      await waitFor("load before the restart", () => okCount() >= 60);
      const restartAt = performance.now();
      await cluster.restart();
      const restartedAt = performance.now();
      const before = okCount();
      await waitFor("calls succeeding after the restart", () => okCount() >= before + 60);

      // Down for two seconds: every call in that window must fail promptly with UNAVAILABLE.
      const downAt = performance.now();
      await cluster.stop();
      await new Promise((r) => setTimeout(r, 2_000));
      const upAt = performance.now();
      await cluster.start();
      const afterStart = okCount();
      await waitFor("calls succeeding after the server came back", () => okCount() >= afterStart + 60);
      stopping = true;
      await Promise.all(loops);

      expect(sys.proc.exitCode).toBeNull();
      expect(sys.proc.pid).toBe(pid);
      const failures = out.filter((o) => o.code !== "OK");
      // Nothing but UNAVAILABLE, never INTERNAL and never a hang (DEADLINE_EXCEEDED).
      expect(failures.filter((o) => o.code !== "Unavailable")).toEqual([]);
      for (const f of failures) expect(f.message).toMatch(/Postgres catalog/);
      // Calls that started while the server was down failed, and quickly.
      const duringDown = out.filter((o) => o.start > downAt + 200 && o.end < upAt);
      expect(duringDown.length).toBeGreaterThan(5);
      expect(duringDown.filter((o) => o.code === "OK")).toEqual([]);
      expect(Math.max(...duringDown.map((o) => o.end - o.start))).toBeLessThan(CALL_TIMEOUT_MS);
      expect(failures.some((o) => o.end >= restartAt && o.start <= restartedAt + 500)).toBe(true);
      console.log(
        `postgres-restart: ${out.length} calls, ${failures.length} UNAVAILABLE (${duringDown.length} while down), restart took ${(restartedAt - restartAt).toFixed(0)} ms`,
      );

      // No partial writes: what a successful call wrote is there, in full; nothing is half-made.
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      try {
        const rows = new Map(
          (
            await admin.query<{ id: string; state: string; version: number }>(
              "SELECT id, state, version::int FROM payloads",
            )
          ).rows.map((r) => [r.id, r]),
        );
        const leases = (await admin.query<{ id: string }>("SELECT id FROM leases")).rows.map((r) => r.id);
        for (const o of out.filter((x) => x.code === "OK")) {
          if (o.op === "allocate") expect(rows.has(o.payload), `allocated ${o.payload}`).toBe(true);
          if (o.op === "commit")
            expect(rows.get(o.payload), `committed ${o.payload}`).toMatchObject({
              state: "ACTIVE",
              version: 2,
            });
          if (o.op === "release") expect(leases).not.toContain(o.payload);
        }
        // Every row is in one of the two states this load produces, with the version that goes with it.
        for (const r of rows.values()) {
          expect([
            { state: "ALLOCATED", version: 1 },
            { state: "ACTIVE", version: 2 },
          ]).toContainEqual({ state: r.state, version: r.version });
        }
        const orphanLeases = await admin.query(
          "SELECT count(*)::int AS n FROM leases l LEFT JOIN payloads p ON p.id = l.payload_id WHERE p.id IS NULL",
        );
        expect(orphanLeases.rows[0].n).toBe(0);
        // Each row has its region on the agent.
        const regions = new Set(
          readdirSync("/dev/shm")
            .filter((f) => f.startsWith(sys.ramPrefix))
            .map((f) => /([0-9a-f-]{36})\.bin$/.exec(f)?.[1] ?? f),
        );
        expect([...rows.keys()].filter((id) => !regions.has(id))).toEqual([]);
        // A region whose row could not be stored is freed by AllocatePayload at once: the catalog is
        // down, but the allocator still knows the agent from the agent list it read last.
        expect([...regions].filter((id) => !rows.has(id))).toEqual([]);
        const counted = await admin.query("SELECT sum(payloads)::int AS n FROM payload_counts");
        expect(counted.rows[0].n).toBe(rows.size);
      } finally {
        await admin.end();
      }
    });

    it("gives back-pressure when the pool is exhausted: calls queue, then succeed or get UNAVAILABLE", {
      timeout: 60_000,
    }, async () => {
      const url = await database("pm_pool");
      const sys = await start(`${url}?pool_size=2&group_commit_lanes=2&connect_timeout_ms=1500`);
      const client = createPayloadClient({ baseUrl: sys.url });
      const a = await client.catalog.allocatePayload({ sizeBytes: 4096n, preferredTier: Tier.RAM });
      const id = idText(a.payloadDescriptor?.payloadId);
      await client.catalog.commitPayload({ id: idBytes(id) });

      // Slow calls on a payload whose row another session holds locked, released after holdMs.
      const rowLock = async (c: pg.Client) => {
        await c.query("SELECT 1 FROM payloads WHERE id = $1 FOR UPDATE", [id]);
      };
      const whileLocked = async (
        holdMs: number,
        calls: (out: Outcome[]) => Promise<unknown>[],
        lock: (c: pg.Client) => Promise<void> = rowLock,
      ) => {
        const locker = new pg.Client({ connectionString: url });
        await locker.connect();
        await locker.query("BEGIN");
        await lock(locker);
        const out: Outcome[] = [];
        const running = calls(out);
        await new Promise((r) => setTimeout(r, holdMs));
        await locker.query("COMMIT");
        await locker.end();
        await Promise.all(running);
        return out;
      };
      const acquire = (out: Outcome[]) =>
        timed(out, "acquire", id, () =>
          client.data.acquireReadLease({ id: idBytes(id) }, { timeoutMs: 20_000 }),
        );
      const expectStarved = (outcomes: Outcome[], message: RegExp) => {
        expect([...new Set(outcomes.map((o) => o.code))].sort()).toEqual(["OK", "Unavailable"]);
        for (const o of outcomes.filter((x) => x.code === "Unavailable")) {
          expect(o.message).toMatch(message);
          expect(o.end - o.start).toBeLessThan(3_000);
        }
      };

      // Held briefly: 50 leases of the locked payload leave their batch (a locked row is skipped,
      // not waited for), queue for the two connections to wait for the lock alone, and succeed.
      const queued = await whileLocked(500, (out) => Array.from({ length: 50 }, () => acquire(out)));
      expect(queued.map((o) => o.code)).toEqual(Array(50).fill("OK"));

      // Held past the connect timeout: the two pooled connections wait on the lock, the calls
      // stuck waiting for a connection get UNAVAILABLE with a message that says what happened and
      // what to do — for per-call transactions (RenewLease) and for leases of the locked payload.
      const held = await client.data.acquireReadLease({ id: idBytes(id), minLeaseDurationMs: 60_000n });
      const renewals = await whileLocked(3_000, (out) =>
        Array.from({ length: 50 }, () =>
          timed(out, "renew", id, () =>
            client.data.renewLease({ leaseId: held.leaseId }, { timeoutMs: 20_000 }),
          ),
        ),
      );
      expectStarved(renewals, /no connection to the Postgres catalog .* became available within 1500 ms/);
      const lockedLeases = await whileLocked(3_000, (out) => Array.from({ length: 50 }, () => acquire(out)));
      expectStarved(lockedLeases, /no connection to the Postgres catalog .* became available within 1500 ms/);

      // Group commit lanes: a statement stuck on a table lock (which SKIP LOCKED does not skip)
      // holds its lane; with both lanes stuck, the calls queued behind them give up after the
      // same 1500 ms, with their own message.
      const tableLock = async (c: pg.Client) => {
        await c.query("LOCK TABLE leases IN SHARE ROW EXCLUSIVE MODE");
      };
      const leases = await whileLocked(
        3_000,
        (out) => [
          acquire(out),
          new Promise<void>((r) => setTimeout(r, 50)).then(() => acquire(out)),
          new Promise<void>((r) => setTimeout(r, 100)).then(() =>
            Promise.all(Array.from({ length: 10 }, () => acquire(out))).then(() => undefined),
          ),
        ],
        tableLock,
      );
      expect(leases.filter((o) => o.code === "OK")).toHaveLength(2);
      expectStarved(leases, /within 1500 ms \(lease calls waited \d+ ms for a group-commit lane\)/);
      expect(sys.proc.exitCode).toBeNull();
      // And it serves normally afterwards.
      const after = await client.data.acquireReadLease({ id: idBytes(id) }, { timeoutMs: 2_000 });
      await client.data.releaseLease({ leaseId: after.leaseId });
      expect(
        existsSync(
          `/dev/shm${a.payloadDescriptor?.location.case === "ram" ? a.payloadDescriptor.location.value.shmName : ""}`,
        ),
      ).toBe(true);
    });
  },
);
