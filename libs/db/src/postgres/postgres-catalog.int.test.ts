import { randomBytes } from "node:crypto";
import {
  asLeaseId,
  asPayloadId,
  type CatalogTx,
  DEFAULT_EVICTION_POLICY,
  type DomainError,
  type LeaseGrantRequest,
  type Payload,
} from "@pm/domain";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { defaultMigrationsDir, loadMigrations } from "../migrations.ts";
import { catalogContract } from "../testing/catalog.contract.ts";
import { migratePostgres, PostgresCatalog, type PostgresCatalogOptions } from "./postgres-catalog.ts";

// Runs against the real server (infra/dev/services.sh). Every catalog lives in its own schema,
// pm_test_<random>, dropped afterwards, so runs and files never see each other's rows.
const URL = process.env.PM_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

let admin: pg.Pool;
const schemas: string[] = [];
const newSchema = () => {
  const s = `pm_test_${randomBytes(6).toString("hex")}`;
  schemas.push(s);
  return s;
};
const dropSchemas = async () => {
  for (const s of schemas.splice(0)) await admin.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
};
const open = (over: Partial<PostgresCatalogOptions> = {}) =>
  PostgresCatalog.open({ url: URL, schema: newSchema(), ...over });

beforeAll(() => {
  admin = new pg.Pool({ connectionString: URL, max: 2 });
});
afterAll(async () => {
  await dropSchemas();
  await admin.end();
});

catalogContract("postgres", async () => {
  const catalog = await open();
  return {
    catalog,
    cleanup: async () => {
      await catalog.close();
      await dropSchemas();
    },
  };
});

const pid = (n: number) => asPayloadId(`00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`);
const payload = (n: number): Payload => ({
  id: pid(n),
  namespace: "ns",
  sizeBytes: 10,
  state: "ACTIVE",
  version: 1,
  placement: {
    tier: "RAM",
    agentId: "a",
    host: "h",
    lengthBytes: 10,
    location: { kind: "ram", shmName: "/x" },
  },
  pendingPlacement: undefined,
  createdAt: 1,
  updatedAt: 1,
  expiresAt: undefined,
  lastAccessAt: 1,
  noEvict: false,
  evictionPolicy: DEFAULT_EVICTION_POLICY,
  checksum: undefined,
});

async function rejection(p: Promise<unknown>): Promise<DomainError> {
  return (await p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: unknown) => e,
  )) as DomainError;
}

function expectUnavailable(err: DomainError, message: RegExp): void {
  expect(err).toMatchObject({ name: "DomainError", code: "UNAVAILABLE", retryable: true });
  expect(err.message).toMatch(message);
  expect(err.message).not.toMatch(/password/);
}

/** Resolves when `n` parties have arrived; every party waits for all. */
function barrier(n: number): () => Promise<void> {
  let arrived = 0;
  let release!: () => void;
  const all = new Promise<void>((r) => {
    release = r;
  });
  return () => {
    if (++arrived === n) release();
    return all;
  };
}

/** A connection of its own holding payload `id` FOR UPDATE in an open transaction (newest schema). */
async function holdRowLock(id: string): Promise<pg.Client> {
  const locker = new pg.Client({ connectionString: URL });
  await locker.connect();
  await locker.query(`SET search_path TO ${schemas.at(-1)}`);
  await locker.query("BEGIN");
  await locker.query("SELECT 1 FROM payloads WHERE id = $1 FOR UPDATE", [id]);
  return locker;
}

describe("PostgresCatalog", () => {
  const opened: PostgresCatalog[] = [];
  const track = async (p: Promise<PostgresCatalog>) => {
    const c = await p;
    opened.push(c);
    return c;
  };
  afterEach(async () => {
    for (const c of opened.splice(0)) await c.close();
    await dropSchemas();
  });

  it("lets concurrent migrations of one database all succeed, applying each step once", async () => {
    const schema = newSchema();
    const shipped = loadMigrations(defaultMigrationsDir("postgres"));
    const latest = shipped[shipped.length - 1]!.version;
    const results = await Promise.all(Array.from({ length: 4 }, () => migratePostgres(URL, { schema })));
    expect(results.map((r) => r.current)).toEqual([latest, latest, latest, latest]);
    expect(results.flatMap((r) => r.applied)).toEqual(shipped.map((m) => m.version));
    const { rows } = await admin.query(
      `SELECT version, name FROM ${schema}.schema_migrations ORDER BY version`,
    );
    expect(rows).toEqual(shipped.map((m) => ({ version: m.version, name: m.name })));
    const tables = await admin.query(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name",
      [schema],
    );
    expect(tables.rows.map((r) => r.table_name)).toEqual([
      "agents",
      "leases",
      "lineage_edges",
      "metadata_events",
      "payload_counts",
      "payload_metadata",
      "payloads",
      "pins",
      "retired_regions",
      "schema_migrations",
      "stream_commits",
      "stream_entries",
      "streams",
    ]);
  });

  it("opens many replicas at once on a fresh schema", async () => {
    const schema = newSchema();
    const catalogs = await Promise.all(
      Array.from({ length: 5 }, () => track(PostgresCatalog.open({ url: URL, schema, poolSize: 2 }))),
    );
    await catalogs[0]!.transaction((t) => t.insertPayload(payload(1)));
    for (const c of catalogs) expect(await c.transaction((t) => t.getPayload(pid(1)))).toBeDefined();
  });

  it("reports UNAVAILABLE quickly when Postgres is unreachable", async () => {
    const down = "postgres://postgres:s3cret@127.0.0.1:1/test";
    const started = Date.now();
    const err = await rejection(PostgresCatalog.open({ url: down }));
    expectUnavailable(err, /cannot reach the Postgres catalog at postgres:\/\/postgres@127\.0\.0\.1:1\/test/);
    expect(err.message).not.toMatch(/s3cret/);
    const lazy = await track(PostgresCatalog.open({ url: down, migrate: false }));
    expectUnavailable(await rejection(lazy.ping()), /check that Postgres is running/);
    expectUnavailable(await rejection(lazy.transaction((t) => t.getPayload(pid(1)))), /ECONNREFUSED/);
    expectUnavailable(await rejection(migratePostgres(down)), /cannot reach/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("gives up waiting for a pooled connection after connectTimeoutMs", async () => {
    const catalog = await track(open({ poolSize: 1, connectTimeoutMs: 300 }));
    let release!: () => void;
    const holding = catalog.transaction(() => new Promise<void>((r) => (release = r)));
    const started = Date.now();
    const err = await rejection(catalog.transaction((t) => t.getPayload(pid(1))));
    expectUnavailable(err, /no connection .* became available within 300 ms/);
    expect(Date.now() - started).toBeLessThan(3_000);
    release();
    await holding;
    await catalog.transaction((t) => t.getPayload(pid(1)));
  });

  it("takes pool settings from the URL and queues callers for a connection (back-pressure)", async () => {
    const schema = newSchema();
    const queued = await track(
      PostgresCatalog.open({ url: `${URL}?pool_size=2&connect_timeout_ms=5000`, schema }),
    );
    let inFlight = 0;
    let most = 0;
    const slow = () =>
      queued.transaction(async (t) => {
        most = Math.max(most, ++inFlight);
        await t.getPayload(pid(1));
        await new Promise((r) => setTimeout(r, 20));
        inFlight--;
      });
    // 50 slow calls on 2 connections: they wait their turn and all succeed.
    await Promise.all(Array.from({ length: 50 }, slow));
    expect(most).toBe(2);

    // Waiting longer than connect_timeout_ms for a connection is UNAVAILABLE, never a crash or hang.
    const starved = await track(
      PostgresCatalog.open({ url: `${URL}?pool_size=2&connect_timeout_ms=200`, schema }),
    );
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, () =>
        starved.transaction(async (t) => {
          await t.getPayload(pid(1));
          await new Promise((r) => setTimeout(r, 100));
        }),
      ),
    );
    const failed = results.flatMap((r) => (r.status === "rejected" ? [r.reason as DomainError] : []));
    expect(failed.length).toBeGreaterThan(0);
    expect(results.length - failed.length).toBeGreaterThan(0);
    for (const e of failed) expectUnavailable(e, /no connection .* became available within 200 ms/);
  });

  it("runs a transaction again when Postgres aborts it as a deadlock victim", async () => {
    const catalog = await track(open());
    await catalog.transaction(async (t) => {
      await t.insertPayload(payload(1));
      await t.insertPayload(payload(2));
    });
    const bothLockedFirst = barrier(2);
    const runs = [0, 0];
    const crosswise = (i: number, first: number, second: number) =>
      catalog.transaction(async (t) => {
        runs[i]!++;
        const a = await t.lockPayload(pid(first));
        await bothLockedFirst();
        const b = await t.lockPayload(pid(second));
        await t.updatePayload({ ...a!, version: a!.version + 1 });
        await t.updatePayload({ ...b!, version: b!.version + 1 });
      });
    await Promise.all([crosswise(0, 1, 2), crosswise(1, 2, 1)]);
    // Postgres aborts one of the two; it ran again after the other committed.
    expect(runs[0]! + runs[1]!).toBeGreaterThanOrEqual(3);
    const versions = await catalog.transaction(async (t) => [
      (await t.getPayload(pid(1)))!.version,
      (await t.getPayload(pid(2)))!.version,
    ]);
    expect(versions).toEqual([3, 3]);
  });

  it("reports UNAVAILABLE when a statement runs past statement_timeout", async () => {
    const schema = newSchema();
    const holder = await track(PostgresCatalog.open({ url: URL, schema }));
    const impatient = await track(PostgresCatalog.open({ url: URL, schema, statementTimeoutMs: 200 }));
    await holder.transaction((t) => t.insertPayload(payload(1)));
    let release!: () => void;
    const locked = barrier(2);
    const holding = holder.transaction(async (t) => {
      await t.lockPayload(pid(1));
      await locked();
      await new Promise<void>((r) => (release = r));
    });
    await locked();
    const err = await rejection(impatient.transaction((t) => t.lockPayload(pid(1))));
    expectUnavailable(err, /statement_timeout \(200 ms\)/);
    release();
    await holding;
    expect(await impatient.transaction((t) => t.lockPayload(pid(1)))).toBeDefined();
  });

  it("reports UNAVAILABLE when its connection is terminated, then carries on with a new one", async () => {
    const applicationName = `pm-test-${randomBytes(4).toString("hex")}`;
    const poolErrors: Error[] = [];
    const catalog = await track(open({ applicationName, onPoolError: (e) => poolErrors.push(e) }));
    const kill = () =>
      admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", [
        applicationName,
      ]);
    const err = await rejection(
      catalog.transaction(async (t) => {
        await t.getPayload(pid(1));
        await kill();
        await t.getPayload(pid(1));
      }),
    );
    expectUnavailable(err, /lost|terminat/i);
    await catalog.transaction((t) => t.insertPayload(payload(1)));

    // An idle pooled connection that dies is reported to onPoolError, not thrown at anyone.
    await kill();
    const deadline = Date.now() + 5_000;
    while (poolErrors.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(poolErrors.length).toBeGreaterThan(0);
    expect(await catalog.transaction((t) => t.getPayload(pid(1)))).toBeDefined();
  });

  it("has the server end a transaction left idle past idleInTransactionTimeoutMs, freeing its locks", async () => {
    const schema = newSchema();
    const stalled = await track(
      PostgresCatalog.open({
        url: `${URL}?idle_in_transaction_timeout_ms=300`,
        schema,
        onPoolError: () => {},
      }),
    );
    const other = await track(PostgresCatalog.open({ url: URL, schema, statementTimeoutMs: 5_000 }));
    await other.transaction((t) => t.insertPayload(payload(1)));
    const err = await rejection(
      stalled.transaction(async (t) => {
        await t.lockPayload(pid(1));
        // A replica that stops mid-transaction (a pause, a partition) must not keep the row locked.
        await new Promise((r) => setTimeout(r, 800));
        await t.getPayload(pid(1));
      }),
    );
    expectUnavailable(err, /idle inside a transaction longer than 300 ms/);
    const started = Date.now();
    expect(await other.transaction((t) => t.lockPayload(pid(1)))).toBeDefined();
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(await stalled.transaction((t) => t.getPayload(pid(1)))).toBeDefined();
  });

  it("refuses a CatalogTx used after its transaction ended", async () => {
    const catalog = await track(open());
    let leaked: CatalogTx | undefined;
    await catalog.transaction(async (t) => {
      leaked = t;
    });
    await expect(leaked!.insertPayload(payload(1))).rejects.toThrow(/after its transaction ended/);
    expect(await catalog.transaction((t) => t.getPayload(pid(1)))).toBeUndefined();
  });

  it("works without named prepared statements (behind a transaction-pooling proxy)", async () => {
    const catalog = await track(open({ preparedStatements: false }));
    await catalog.transaction((t) => t.insertPayload(payload(1)));
    expect(await catalog.transaction((t) => t.getPayload(pid(1)))).toStrictEqual(payload(1));
  });

  it("is UNAVAILABLE after close, and close is idempotent", async () => {
    const catalog = await open();
    await catalog.close();
    await catalog.close();
    expectUnavailable(await rejection(catalog.transaction((t) => t.getPayload(pid(1)))), /closed/);
  });

  it("autocommit holds no lock past its statement and saves the BEGIN/COMMIT", async () => {
    const catalog = await track(open());
    await catalog.transaction((t) => t.insertPayload(payload(1)));
    await catalog
      .autocommit(async (t) => {
        await t.lockPayload(pid(1));
        // A transaction elsewhere takes the same row lock at once: the statement's lock is gone.
        await catalog.transaction(async (u) => {
          const p = await u.lockPayload(pid(1));
          await u.updatePayload({ ...p!, version: 2 });
        });
        // And this statement is committed on its own, whatever follows it.
        await t.updatePayload({ ...payload(1), version: 3 });
        throw new Error("after the write");
      })
      .catch((e: Error) => expect(e.message).toBe("after the write"));
    expect((await catalog.transaction((t) => t.getPayload(pid(1))))!.version).toBe(3);
  });

  describe("group commit of lease calls", () => {
    const lid = (n: number) => asLeaseId(`11111111-0000-4000-8000-${n.toString(16).padStart(12, "0")}`);
    const grantReq = (n: number, payloadId = pid(1)): LeaseGrantRequest => ({
      leaseId: lid(n),
      payloadId,
      namespace: "ns",
      now: 10,
      expiresAt: 20_000,
      states: ["ACTIVE"],
      tiers: ["RAM"],
      touchIfAccessedAtOrBefore: 0,
    });

    it("coalesces concurrent calls into batches and isolates a call whose row fails", async () => {
      const batches: number[] = [];
      const catalog = await track(open({ groupCommitLanes: 1, onGroupCommit: (size) => batches.push(size) }));
      await catalog.transaction(async (t) => {
        await t.insertPayload(payload(1));
        // Lease 5 exists already: granting it again violates the primary key.
        await t.insertLease({
          id: lid(5),
          payloadId: pid(1),
          namespace: "ns",
          version: 1,
          createdAt: 1,
          expiresAt: 20_000,
          revoked: false,
        });
      });
      const results = await Promise.allSettled(
        Array.from({ length: 40 }, (_, i) => catalog.grantLease(grantReq(i + 1))),
      );
      expect(Math.max(...batches)).toBeGreaterThan(1);
      expect(batches.reduce((n, b) => n + b, 0)).toBeGreaterThan(40); // the failed batch ran again call by call
      results.forEach((r, i) => {
        if (i + 1 === 5) expect(r).toMatchObject({ status: "rejected", reason: { code: "23505" } });
        else expect(r).toMatchObject({ status: "fulfilled", value: { lease: { id: lid(i + 1) } } });
      });
      expect(await catalog.transaction((t) => t.liveLeases(pid(1), 0))).toHaveLength(40);
      batches.length = 0;
      const released = await Promise.all(
        Array.from({ length: 40 }, (_, i) => catalog.releaseLease(lid(i + 1), "ns")),
      );
      expect(released.every((r) => r?.payloadId === pid(1))).toBe(true);
      expect(Math.max(...batches)).toBeGreaterThan(1);
      expect(await catalog.transaction((t) => t.liveLeases(pid(1), 0))).toEqual([]);
    });

    it("carries grants and releases in one statement, each answered in its own order", async () => {
      const batches: number[] = [];
      const catalog = await track(open({ groupCommitLanes: 1, onGroupCommit: (size) => batches.push(size) }));
      await catalog.transaction(async (t) => {
        await t.insertPayload(payload(1));
        await t.insertPayload({ ...payload(2), state: "DELETING" });
        for (let i = 100; i < 110; i++) {
          const onto = i % 2 === 0 ? pid(1) : pid(2);
          await t.insertLease({
            id: lid(i),
            payloadId: onto,
            namespace: "ns",
            version: 1,
            createdAt: 1,
            expiresAt: 20_000,
            revoked: false,
          });
        }
      });
      const first = catalog.grantLease(grantReq(1)); // occupies the lane, so the rest queue together
      await new Promise((r) => setImmediate(r));
      const ops = Array.from({ length: 20 }, (_, i) =>
        i % 2 === 0
          ? catalog.grantLease(grantReq(i + 2, i % 4 === 0 ? pid(1) : pid(2)))
          : catalog.releaseLease(lid(100 + (i >> 1)), "ns"),
      );
      const got = await Promise.all([first, ...ops]);
      expect(batches).toEqual([1, 20]);
      got.slice(1).forEach((r, i) => {
        if (i % 2 === 0) {
          // Grants: payload 1 is readable, payload 2 (DELETING) is not.
          expect(r).toMatchObject(
            i % 4 === 0
              ? { lease: { id: lid(i + 2) } }
              : { lease: undefined, payload: { state: "DELETING" } },
          );
        } else {
          const lease = 100 + (i >> 1);
          expect(r).toStrictEqual({
            payloadId: lease % 2 === 0 ? pid(1) : pid(2),
            payloadState: lease % 2 === 0 ? "ACTIVE" : "DELETING",
          });
        }
      });
      expect(await catalog.releaseLease(lid(100), "ns")).toBeUndefined();
    });

    it("does not let one locked payload stall the other calls of its batch", async () => {
      const catalog = await track(open({ groupCommitLanes: 1 }));
      await catalog.transaction(async (t) => {
        await t.insertPayload(payload(1));
        await t.insertPayload(payload(2));
      });
      const locker = await holdRowLock(pid(1));
      try {
        const done: string[] = [];
        const one = catalog.grantLease(grantReq(1, pid(1))).then((r) => {
          done.push("payload 1");
          return r;
        });
        const two = catalog.grantLease(grantReq(2, pid(2))).then((r) => {
          done.push("payload 2");
          return r;
        });
        expect((await two).lease?.id).toBe(lid(2));
        await new Promise((r) => setTimeout(r, 200));
        expect(done).toEqual(["payload 2"]); // payload 1 still waits for its lock, alone
        await locker.query("UPDATE payloads SET state = 'DELETING', version = 2 WHERE id = $1", [pid(1)]);
        await locker.query("COMMIT");
        expect(await one).toMatchObject({ lease: undefined, payload: { state: "DELETING" } });
      } finally {
        await locker.end();
      }
    });

    it("names its lane connections, and replaces the lease lanes' after laneLifetimeS", async () => {
      const app = `pm-lanes-${process.pid}`;
      const catalog = await track(open({ groupCommitLanes: 1, laneLifetimeS: 1, applicationName: app }));
      await catalog.transaction((t) => t.insertPayload(payload(1)));
      const backends = async (name: string) =>
        (
          await admin.query<{ pid: number }>(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid",
            [`${app}/${name}`],
          )
        ).rows.map((r) => r.pid);
      await catalog.grantLease(grantReq(1));
      await catalog.autocommit((t) => t.getPayload(pid(1)));
      const first = await backends("lease-lane");
      expect(first).toHaveLength(1);
      expect(await backends("payload-lane")).toHaveLength(1);
      // Past its lifetime the lease lane's connection is closed; the next batch opens another
      // (and so plans its statement again, from the tables as they are now).
      await new Promise((r) => setTimeout(r, 1_500));
      expect((await catalog.grantLease(grantReq(2))).lease?.id).toBe(lid(2));
      const second = await backends("lease-lane");
      expect(second).toHaveLength(1);
      expect(second[0]).not.toBe(first[0]);
    });

    it("runs each call alone with group_commit_lanes=0 in the URL", async () => {
      const batches: number[] = [];
      const catalog = await track(
        open({
          url: `${URL}${URL.includes("?") ? "&" : "?"}group_commit_lanes=0`,
          onGroupCommit: (n) => batches.push(n),
        }),
      );
      await catalog.transaction((t) => t.insertPayload(payload(1)));
      await Promise.all(Array.from({ length: 20 }, (_, i) => catalog.grantLease(grantReq(i + 1))));
      expect(batches).toEqual(Array.from({ length: 20 }, () => 1));
    });

    it("refuses a lane lifetime that is not a positive whole number of seconds", async () => {
      for (const laneLifetimeS of [0, -1, 1.5]) {
        const err = await rejection(open({ laneLifetimeS }));
        expect(err).toMatchObject({ code: "INVALID_ARGUMENT" });
        expect(err.message).toMatch(/lane lifetime .* got/);
      }
    });

    it("refuses more lanes than connections", async () => {
      const err = await rejection(open({ poolSize: 2, groupCommitLanes: 3 }));
      expect(err).toMatchObject({ code: "INVALID_ARGUMENT" });
      expect(err.message).toMatch(/lanes .* 0 to the pool size 2, got 3/);
    });

    it("answers UNAVAILABLE to every call of a batch when the database is unreachable", async () => {
      const catalog = await track(open({ groupCommitLanes: 1 }));
      await catalog.transaction((t) => t.insertPayload(payload(1)));
      await catalog.close();
      const results = await Promise.allSettled(
        Array.from({ length: 5 }, (_, i) => catalog.grantLease(grantReq(i + 1))),
      );
      for (const r of results)
        expect(r).toMatchObject({ status: "rejected", reason: { code: "UNAVAILABLE" } });
    });
  });

  describe("group commit of payload reads, inserts and compare-and-sets", () => {
    /** Records every group-commit statement sent, by kind. */
    const recorder = () => {
      const sent: { statement: string; size: number }[] = [];
      return {
        sent,
        onGroupCommit: (size: number, statement: string) => sent.push({ statement, size }),
        sizes: (statement: string) => sent.filter((b) => b.statement === statement).map((b) => b.size),
      };
    };
    const expectedOf = (p: Payload) => ({ version: p.version, state: p.state, updatedAt: p.updatedAt });
    const stored = (catalog: PostgresCatalog, id: ReturnType<typeof pid>) =>
      catalog.transaction((t) => t.getPayload(id));

    /** Every optional field set: a GPU placement (handle bytes 00, ff, quote, backslash) moving to disk. */
    const gpuToDisk = (n: number): Payload => ({
      id: pid(n),
      namespace: "ns-full",
      sizeBytes: 2 ** 40 + n,
      state: "SPILLING",
      version: 7,
      placement: {
        tier: "GPU",
        agentId: "gpu-agent",
        host: "gpu-host",
        lengthBytes: 2 ** 40 + n,
        location: {
          kind: "gpu",
          deviceId: 3,
          ipcHandle: new Uint8Array([0, 1, 0x5c, 0x22, 0x7f, 0x80, 0xfe, 0xff, n]),
        },
      },
      pendingPlacement: {
        tier: "DISK",
        agentId: "disk-agent",
        host: "disk-host",
        lengthBytes: 2 ** 40 + n,
        location: { kind: "disk", path: `/data/it's "quoted" \\ é/${n}`, offsetBytes: 4096 * n },
      },
      createdAt: 1_700_000_000_000 + n,
      updatedAt: 1_700_000_000_500 + n,
      expiresAt: 1_800_000_000_000 + n,
      lastAccessAt: 1_700_000_000_900 + n,
      noEvict: true,
      evictionPolicy: {
        priority: "HIGH",
        requireDurable: true,
        spillTarget: "OBJECT",
        minResidencyTier: "RAM",
      },
      checksum: `sha256:${"ab".repeat(32)}`,
    });
    /** The other way round: stored in the object store, the pending placement on a GPU. */
    const objectToGpu = (n: number): Payload => ({
      ...gpuToDisk(n),
      state: "ACTIVE",
      version: 3,
      placement: {
        tier: "OBJECT",
        agentId: "",
        host: "s3",
        lengthBytes: 99,
        location: { kind: "object", bucket: "bucket", key: `ключ/${n}` },
      },
      pendingPlacement: {
        tier: "GPU",
        agentId: "gpu-agent",
        host: "gpu-host",
        lengthBytes: 99,
        location: {
          kind: "gpu",
          deviceId: 0,
          // A view into a larger buffer: only its own bytes are stored.
          ipcHandle: new Uint8Array([9, 9, 9, 0xff, 0, n, 0, 9]).subarray(3, 7),
        },
      },
      evictionPolicy: {
        priority: "NEVER",
        requireDurable: false,
        spillTarget: "VOID",
        minResidencyTier: "GPU",
      },
      checksum: "crc32c:00000000",
    });

    it("coalesces concurrent reads, each answered with its own payload", async () => {
      const gc = recorder();
      const catalog = await track(open({ groupCommitLanes: 1, onGroupCommit: gc.onGroupCommit }));
      const rows = [payload(1), { ...payload(2), sizeBytes: 20, version: 2 }, gpuToDisk(3), objectToGpu(4)];
      await catalog.transaction(async (t) => {
        for (const p of rows) await t.insertPayload(p);
      });
      // Asked in an order other than the rows', with an unknown id and the same id twice.
      const asked = [pid(4), pid(99), pid(2), pid(3), pid(2), pid(1), pid(98)];
      const got = await Promise.all(asked.map((id) => catalog.autocommit((t) => t.getPayload(id))));
      expect(Math.max(...gc.sizes("payload_reads"))).toBeGreaterThan(1);
      expect(got).toEqual([rows[3], undefined, rows[1], rows[2], rows[1], rows[0], undefined]);
    });

    it("coalesces concurrent inserts and fails only the one whose id exists", async () => {
      const gc = recorder();
      const catalog = await track(open({ groupCommitLanes: 1, onGroupCommit: gc.onGroupCommit }));
      const existing = { ...payload(5), namespace: "already-there", version: 9 };
      await catalog.transaction((t) => t.insertPayload(existing));
      // Payloads 1..10 (5 exists already), then 11 twice in the same batch.
      const ps = [
        ...Array.from({ length: 10 }, (_, i) => payload(i + 1)),
        payload(11),
        { ...payload(11), namespace: "second" },
      ];
      const results = await Promise.allSettled(ps.map((p) => catalog.autocommit((t) => t.insertPayload(p))));
      results.forEach((r, i) => {
        if (i + 1 === 5 || i === 11)
          expect(r).toMatchObject({ status: "rejected", reason: { code: "23505" } });
        else expect(r).toMatchObject({ status: "fulfilled" });
      });
      const inserts = gc.sizes("payload_writes");
      expect(inserts[0]).toBe(ps.length);
      expect(inserts.slice(1)).toEqual(ps.map(() => 1)); // the failed batch ran again call by call
      for (let n = 1; n <= 11; n++)
        expect(await stored(catalog, pid(n))).toEqual(n === 5 ? existing : payload(n));
    });

    it("stores and reads back every field of a payload exactly through the batched statements", async () => {
      const gc = recorder();
      const catalog = await track(open({ groupCommitLanes: 1, onGroupCommit: gc.onGroupCommit }));
      const ps = [gpuToDisk(1), objectToGpu(2), payload(3), gpuToDisk(4)];
      await Promise.all(ps.map((p) => catalog.autocommit((t) => t.insertPayload(p))));
      expect(gc.sizes("payload_writes")).toEqual([ps.length]);
      // Read back through the batch, and through a plain transaction (what the insert stored).
      const batched = await Promise.all(ps.map((p) => catalog.autocommit((t) => t.getPayload(p.id))));
      expect(gc.sizes("payload_reads")).toEqual([ps.length]);
      expect(batched).toEqual(ps);
      for (const p of ps) expect(await stored(catalog, p.id)).toEqual(p);
    });

    it("compare-and-sets concurrent updates in one statement, each with its own outcome", async () => {
      const gc = recorder();
      const catalog = await track(open({ groupCommitLanes: 1, onGroupCommit: gc.onGroupCommit }));
      await catalog.transaction(async (t) => {
        for (let n = 1; n <= 5; n++) await t.insertPayload(payload(n));
      });
      const before = payload(1);
      const moved: Payload = { ...gpuToDisk(1), version: 2, updatedAt: 5 };
      const bump = (n: number, version: number): Payload => ({ ...payload(n), version, updatedAt: 5 });
      const cas = (next: Payload, expected: Pick<Payload, "version" | "state" | "updatedAt">) =>
        catalog.autocommit((t) => t.updatePayloadIf(next, expected));
      const got = await Promise.all([
        cas(moved, expectedOf(before)), // matches: every field changes
        cas(bump(2, 2), { ...expectedOf(payload(2)), version: 0 }), // stale version
        cas(bump(3, 2), { ...expectedOf(payload(3)), state: "ALLOCATED" }), // stale state
        cas(bump(4, 2), { ...expectedOf(payload(4)), updatedAt: 0 }), // stale updatedAt
        cas(bump(5, 2), expectedOf(payload(5))), // the same row twice with the same expectation:
        cas({ ...bump(5, 3), sizeBytes: 55 }, expectedOf(payload(5))), // exactly one wins
        cas(bump(99, 2), expectedOf(payload(99))), // no such payload
      ]);
      expect(Math.max(...gc.sizes("payload_writes"))).toBeGreaterThan(1);
      expect(got.slice(0, 4)).toEqual([true, false, false, false]);
      expect(got.slice(4, 6).filter((won) => won)).toHaveLength(1);
      expect(got[6]).toBe(false);
      expect(await stored(catalog, pid(1))).toEqual(moved);
      for (const n of [2, 3, 4]) expect(await stored(catalog, pid(n))).toEqual(payload(n));
      expect(await stored(catalog, pid(5))).toEqual(got[4] ? bump(5, 2) : { ...bump(5, 3), sizeBytes: 55 });
      expect(await stored(catalog, pid(99))).toBeUndefined();
    });

    it("sends concurrent inserts and compare-and-sets as one statement, each call with its own outcome", async () => {
      const gc = recorder();
      const catalog = await track(open({ groupCommitLanes: 1, onGroupCommit: gc.onGroupCommit }));
      await catalog.transaction(async (t) => {
        for (let n = 1; n <= 3; n++) await t.insertPayload(payload(n));
      });
      const committed = (n: number): Payload => ({
        ...payload(n),
        state: "ACTIVE",
        version: 2,
        updatedAt: 5,
      });
      const insert = (p: Payload) => catalog.autocommit((t) => t.insertPayload(p));
      const cas = (n: number, expected: Pick<Payload, "version" | "state" | "updatedAt">) =>
        catalog.autocommit((t) => t.updatePayloadIf(committed(n), expected));
      const got = await Promise.all([
        insert(payload(4)),
        cas(1, expectedOf(payload(1))), // wins
        insert(payload(5)),
        cas(2, { ...expectedOf(payload(2)), version: 7 }), // stale
        cas(3, expectedOf(payload(3))), // wins
      ]);
      expect(gc.sizes("payload_writes")).toEqual([5]); // one statement for all five
      expect(got).toEqual([undefined, true, undefined, false, true]);
      for (const n of [4, 5]) expect(await stored(catalog, pid(n))).toEqual(payload(n));
      expect(await stored(catalog, pid(1))).toEqual(committed(1));
      expect(await stored(catalog, pid(2))).toEqual(payload(2));
      expect(await stored(catalog, pid(3))).toEqual(committed(3));
    });

    it("fails only the insert at fault when a mixed batch fails, the compare-and-sets beside it still land", async () => {
      const gc = recorder();
      const catalog = await track(open({ groupCommitLanes: 1, onGroupCommit: gc.onGroupCommit }));
      await catalog.transaction(async (t) => {
        for (let n = 1; n <= 2; n++) await t.insertPayload(payload(n));
      });
      const committed: Payload = { ...payload(1), state: "ACTIVE", version: 2, updatedAt: 5 };
      const results = await Promise.allSettled([
        catalog.autocommit((t) => t.insertPayload(payload(2))), // exists already
        catalog.autocommit((t) => t.updatePayloadIf(committed, expectedOf(payload(1)))),
        catalog.autocommit((t) => t.insertPayload(payload(3))),
      ]);
      expect(results[0]).toMatchObject({ status: "rejected", reason: { code: "23505" } });
      expect(results[1]).toEqual({ status: "fulfilled", value: true });
      expect(results[2]).toMatchObject({ status: "fulfilled" });
      // The batch of three failed as a whole, then ran call by call.
      expect(gc.sizes("payload_writes")).toEqual([3, 1, 1, 1]);
      expect(await stored(catalog, pid(1))).toEqual(committed);
      expect(await stored(catalog, pid(3))).toEqual(payload(3));
    });

    for (const lockerChanges of [true, false]) {
      it(`does not let a locked row stall the other compare-and-sets of its batch (locker ${lockerChanges ? "changes" : "keeps"} the row)`, async () => {
        const gc = recorder();
        // A statement_timeout so that a batch waiting for the lock fails instead of hanging.
        const catalog = await track(
          open({ groupCommitLanes: 1, statementTimeoutMs: 5_000, onGroupCommit: gc.onGroupCommit }),
        );
        await catalog.transaction(async (t) => {
          for (let n = 1; n <= 3; n++) await t.insertPayload(payload(n));
        });
        const locker = await holdRowLock(pid(1));
        try {
          const done: number[] = [];
          const next = (n: number): Payload => ({
            ...payload(n),
            state: "DURABLE",
            version: 2,
            updatedAt: 5,
          });
          const [one, two, three] = [1, 2, 3].map((n) =>
            catalog
              .autocommit((t) => t.updatePayloadIf(next(n), expectedOf(payload(n))))
              .then((won) => {
                done.push(n);
                return won;
              }),
          );
          expect(await Promise.all([two, three])).toEqual([true, true]);
          expect(gc.sizes("payload_writes")[0]).toBe(3); // all three went out in one statement
          await new Promise((r) => setTimeout(r, 200));
          expect(done).toEqual([2, 3]); // payload 1 still waits for its lock, alone
          if (lockerChanges) {
            await locker.query("UPDATE payloads SET state = 'DELETING', version = 2 WHERE id = $1", [pid(1)]);
          }
          await locker.query("COMMIT");
          // Compared against the row as the locker left it.
          expect(await one).toBe(!lockerChanges);
          expect(await stored(catalog, pid(1))).toEqual(
            lockerChanges ? { ...payload(1), state: "DELETING", version: 2 } : next(1),
          );
          for (const n of [2, 3]) expect(await stored(catalog, pid(n))).toEqual(next(n));
        } finally {
          await locker.end();
        }
      });
    }

    it("runs each statement alone with groupCommitLanes 0", async () => {
      const gc = recorder();
      const catalog = await track(open({ groupCommitLanes: 0, onGroupCommit: gc.onGroupCommit }));
      await catalog.transaction((t) => t.insertPayload(payload(5)));
      const inserted = await Promise.allSettled(
        Array.from({ length: 6 }, (_, i) => catalog.autocommit((t) => t.insertPayload(payload(i + 1)))),
      );
      inserted.forEach((r, i) => {
        if (i + 1 === 5) expect(r).toMatchObject({ status: "rejected", reason: { code: "23505" } });
        else expect(r).toMatchObject({ status: "fulfilled" });
      });
      const read = await Promise.all(
        [pid(1), pid(6), pid(99)].map((id) => catalog.autocommit((t) => t.getPayload(id))),
      );
      expect(read).toEqual([payload(1), payload(6), undefined]);
      const next = { ...payload(1), version: 2, updatedAt: 5 };
      const cas = await Promise.all([
        catalog.autocommit((t) => t.updatePayloadIf(next, expectedOf(payload(1)))),
        catalog.autocommit((t) => t.updatePayloadIf(next, expectedOf(payload(1)))),
        catalog.autocommit((t) =>
          t.updatePayloadIf({ ...payload(2), version: 2 }, { ...expectedOf(payload(2)), version: 0 }),
        ),
      ]);
      expect(cas.filter((won) => won)).toHaveLength(1);
      expect(cas[2]).toBe(false);
      expect(await stored(catalog, pid(1))).toEqual(next);
      expect(gc.sent.filter((b) => b.statement.startsWith("payload_"))).toEqual([]);
    });

    it("checks out no pooled connection for an autocommit session whose statements are all batched", async () => {
      const gc = recorder();
      const catalog = await track(
        open({ poolSize: 1, groupCommitLanes: 1, onGroupCommit: gc.onGroupCommit }),
      );
      await catalog.transaction((t) => t.insertPayload(payload(1)));
      let entered!: () => void;
      const inside = new Promise<void>((r) => (entered = r));
      let release!: () => void;
      const holding = catalog.transaction(async (t) => {
        await t.getPayload(pid(1));
        entered();
        await new Promise<void>((r) => (release = r));
      });
      await inside; // the only pooled connection is now inside that transaction
      try {
        expect(await catalog.autocommit((t) => t.getPayload(pid(1)))).toEqual(payload(1));
        await catalog.autocommit((t) => t.insertPayload(payload(2)));
        const next = { ...payload(2), version: 2, updatedAt: 5 };
        expect(await catalog.autocommit((t) => t.updatePayloadIf(next, expectedOf(payload(2))))).toBe(true);
        expect(gc.sent.map((b) => b.statement)).toEqual([
          "payload_reads",
          "payload_writes",
          "payload_writes",
        ]);
      } finally {
        release();
        await holding;
      }
      expect(await stored(catalog, pid(2))).toEqual({ ...payload(2), version: 2, updatedAt: 5 });
    });

    it("answers UNAVAILABLE to batched calls after close", async () => {
      const gc = recorder();
      const catalog = await track(open({ groupCommitLanes: 1, onGroupCommit: gc.onGroupCommit }));
      await catalog.transaction((t) => t.insertPayload(payload(1)));
      await catalog.close();
      const results = await Promise.allSettled([
        ...[1, 2, 3].map((n) => catalog.autocommit((t) => t.getPayload(pid(n)))),
        ...[4, 5, 6].map((n) => catalog.autocommit((t) => t.insertPayload(payload(n)))),
        ...[1, 7].map((n) =>
          catalog.autocommit((t) => t.updatePayloadIf({ ...payload(n), version: 2 }, expectedOf(payload(n)))),
        ),
      ]);
      for (const r of results) {
        expect(r.status).toBe("rejected");
        expectUnavailable((r as PromiseRejectedResult).reason as DomainError, /closed/);
      }
      expect(new Set(gc.sent.map((b) => b.statement))).toEqual(new Set(["payload_reads", "payload_writes"]));
    });
  });

  it("rejects a schema name it would have to quote", async () => {
    const err = await rejection(PostgresCatalog.open({ url: URL, schema: "Robert'); DROP" }));
    expect(err).toMatchObject({ code: "INVALID_ARGUMENT" });
  });
});
