import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { AgentRegionAllocator } from "@pm/agents";
import { createPayloadClient, idBytes, idText, type PayloadClient } from "@pm/client";
import { PostgresCatalog } from "@pm/db";
import { DEFAULT_DOMAIN_CONFIG, sweep } from "@pm/domain";
import { type PayloadDescriptor, PayloadState, SpillPolicy, Tier } from "@pm/rpc";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningSystem, removeDataDir, startSystem } from "../support/system.ts";
import { createDatabase, type TestDatabase } from "./lib/postgres.ts";

// One catalog database, one tier agent and three API processes (real `payload-manager` processes):
// API#1 runs beside the agent (role all), API#2 and API#3 are API-only replicas that share the
// catalog and place on the agent that registered with API#1. Several clients run a few hundred
// mixed calls spread over the three APIs, every call's outcome is recorded with its start and end
// time, and the invariants are checked against the records, the catalog and the agent's files.

const SEED = Number(process.env.PM_TEST_SEED ?? Date.now() % 1_000_000);
const RUN_MS = Number(process.env.PM_MR_RUN_MS ?? 10_000);
const CALL_TIMEOUT_MS = 15_000;
const LEASE_MS = 60_000;

let db: TestDatabase;
let apis: RunningSystem[] = [];
let agentSys: RunningSystem;
let clients: PayloadClient[] = [];

beforeAll(async () => {
  db = await createDatabase("pm_mr");
  agentSys = await startSystem({ role: "all", env: { PM_CATALOG_URL: db.url } });
  const replicas = await Promise.all([
    startSystem({ role: "api", env: { PM_CATALOG_URL: db.url } }),
    startSystem({ role: "api", env: { PM_CATALOG_URL: db.url } }),
  ]);
  apis = [agentSys, ...replicas];
  clients = apis.map((s) => createPayloadClient({ baseUrl: s.url }));
}, 90_000);

afterAll(async () => {
  for (const s of apis) await s.stop().catch(() => undefined);
  if (agentSys) {
    for (const f of readdirSync("/dev/shm"))
      if (f.startsWith(agentSys.ramPrefix)) rmSync(join("/dev/shm", f));
  }
  for (const s of apis) removeDataDir(s.dataDir);
  await db?.drop();
});

// ---- recording ----------------------------------------------------------------------------------

type Op =
  | "allocate"
  | "commit"
  | "acquire"
  | "release"
  | "delete"
  | "pin"
  | "unpin"
  | "spill"
  | "resolve"
  | "list";

interface Obs {
  readonly op: Op;
  readonly payload: string;
  readonly api: number;
  readonly start: number;
  readonly end: number;
  /** "OK" or the Connect code's name. */
  readonly code: string;
  readonly version?: number;
  readonly force?: boolean;
  readonly leaseId?: string;
  /** spill: the tier changed. */
  readonly moved?: boolean;
  readonly message?: string;
}

interface RegionCheck {
  readonly payload: string;
  readonly leaseId: string;
  readonly path: string;
  readonly at: number;
  readonly exists: boolean;
}

const log: Obs[] = [];
const regionChecks: RegionCheck[] = [];

/** A small deterministic PRNG, so a failing interleaving's choices can be replayed with PM_TEST_SEED. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function call<T>(
  op: Op,
  payload: string,
  api: number,
  fn: (c: PayloadClient, opts: { timeoutMs: number }) => Promise<T>,
  extract: (r: T) => Partial<Obs> = () => ({}),
  extra: Partial<Obs> = {},
): Promise<T | undefined> {
  const start = performance.now();
  try {
    const r = await fn(clients[api]!, { timeoutMs: CALL_TIMEOUT_MS });
    log.push({ op, payload, api, start, end: performance.now(), code: "OK", ...extra, ...extract(r) });
    return r;
  } catch (e) {
    const err = ConnectError.from(e);
    log.push({
      op,
      payload,
      api,
      start,
      end: performance.now(),
      code: Code[err.code],
      message: err.rawMessage,
      ...extra,
    });
    return undefined;
  }
}

const versionOf = (d: PayloadDescriptor | undefined) => (d ? Number(d.version) : undefined);

function regionPath(d: PayloadDescriptor | undefined): string | undefined {
  if (d?.location.case === "ram") return `/dev/shm${d.location.value.shmName}`;
  if (d?.location.case === "disk") return d.location.value.path;
  return undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- the workload -------------------------------------------------------------------------------

async function workload(): Promise<void> {
  const rnd = prng(SEED);
  const pick = <T>(xs: readonly T[]): T | undefined => xs[Math.floor(rnd() * xs.length)];
  const anyApi = () => Math.floor(rnd() * apis.length);
  const known: string[] = [];
  const deadline = performance.now() + RUN_MS;
  const running = () => performance.now() < deadline;

  const producer = async () => {
    while (running()) {
      const tier = rnd() < 0.7 ? Tier.RAM : Tier.DISK;
      const a = await call(
        "allocate",
        "",
        anyApi(),
        (c, o) => c.catalog.allocatePayload({ sizeBytes: 4096n, preferredTier: tier }, o),
        (r) => ({ payload: idText(r.payloadDescriptor?.payloadId), version: versionOf(r.payloadDescriptor) }),
      );
      if (!a) continue;
      const id = idText(a.payloadDescriptor?.payloadId);
      known.push(id);
      if (rnd() < 0.05) continue; // left ALLOCATED
      // Sometimes two replicas race to commit the same payload: exactly one may win.
      const racers = rnd() < 0.25 ? 2 : 1;
      await Promise.all(
        Array.from({ length: racers }, () =>
          call(
            "commit",
            id,
            anyApi(),
            (c, o) => c.catalog.commitPayload({ id: idBytes(id) }, o),
            (r) => ({ version: versionOf(r.payloadDescriptor) }),
          ),
        ),
      );
    }
  };

  /** Takes a lease, checks its region while holding it for `holdMs`, releases it on any replica. */
  const leaseAndHold = async (id: string, holdMs: number) => {
    const l = await call(
      "acquire",
      id,
      anyApi(),
      (c, o) => c.data.acquireReadLease({ id: idBytes(id), minLeaseDurationMs: BigInt(LEASE_MS) }, o),
      (r) => ({ version: versionOf(r.payloadDescriptor), leaseId: idText(r.leaseId) }),
    );
    if (!l) return;
    const leaseId = idText(l.leaseId);
    const path = regionPath(l.payloadDescriptor);
    const check = () => {
      if (path)
        regionChecks.push({ payload: id, leaseId, path, at: performance.now(), exists: existsSync(path) });
    };
    check();
    const until = performance.now() + holdMs;
    while (performance.now() < until) {
      await sleep(Math.min(50, holdMs));
      check();
    }
    await call("release", id, anyApi(), (c, o) => c.data.releaseLease({ leaseId: l.leaseId }, o), undefined, {
      leaseId,
    });
  };

  const reader = async () => {
    while (running()) {
      const id = pick(known);
      if (!id) {
        await sleep(5);
        continue;
      }
      if (rnd() < 0.3) {
        await call(
          "resolve",
          id,
          anyApi(),
          (c, o) => c.data.resolveSnapshot({ id: idBytes(id) }, o),
          (r) => ({ version: versionOf(r.payloadDescriptor) }),
        );
      } else {
        await leaseAndHold(id, Math.floor(rnd() * 30));
      }
    }
  };

  // Long-lived holders: while they hold a lease, others force-delete and spill the payload.
  const holder = async () => {
    while (running()) {
      const id = pick(known);
      if (!id) {
        await sleep(5);
        continue;
      }
      await leaseAndHold(id, 500 + Math.floor(rnd() * 1500));
    }
  };

  const deleter = async () => {
    while (running()) {
      await sleep(20 + Math.floor(rnd() * 40));
      const id = pick(known);
      if (!id) continue;
      const force = rnd() < 0.5;
      await call(
        "delete",
        id,
        anyApi(),
        (c, o) => c.catalog.delete({ id: idBytes(id), force }, o),
        undefined,
        { force },
      );
    }
  };

  const spiller = async () => {
    while (running()) {
      await sleep(20 + Math.floor(rnd() * 40));
      const id = pick(known);
      if (!id) continue;
      const waitForLeases = rnd() < 0.7;
      const start = performance.now();
      const api = anyApi();
      try {
        const r = await clients[api]!.catalog.spill(
          { ids: [idBytes(id)], policy: SpillPolicy.BLOCKING, waitForLeases, targetTier: Tier.DISK },
          { timeoutMs: CALL_TIMEOUT_MS },
        );
        const item = r.results[0];
        log.push({
          op: "spill",
          payload: id,
          api,
          start,
          end: performance.now(),
          code: item?.ok ? "OK" : "ItemFailed",
          message: item?.errorMessage ?? "",
          version: item?.ok ? versionOf(item.payloadDescriptor) : undefined,
          moved: item?.ok === true,
        });
      } catch (e) {
        const err = ConnectError.from(e);
        log.push({ op: "spill", payload: id, api, start, end: performance.now(), code: Code[err.code] });
      }
    }
  };

  const pinner = async () => {
    while (running()) {
      await sleep(10 + Math.floor(rnd() * 20));
      const id = pick(known);
      if (!id) continue;
      if (rnd() < 0.5) await call("pin", id, anyApi(), (c, o) => c.catalog.pin({ id: idBytes(id) }, o));
      else await call("unpin", id, anyApi(), (c, o) => c.catalog.unpin({ id: idBytes(id) }, o));
    }
  };

  const lister = async () => {
    while (running()) {
      await sleep(20);
      const filters = [
        {},
        { tierFilter: Tier.RAM },
        { tierFilter: Tier.DISK },
        { stateFilter: PayloadState.ACTIVE },
        { tierFilter: Tier.DISK, stateFilter: PayloadState.DURABLE },
      ];
      const filter = pick(filters)!;
      let pageToken = "";
      for (let page = 0; page < 2; page++) {
        const r = await call("list", "", anyApi(), (c, o) =>
          c.catalog.listPayloads({ ...filter, pageSize: 20, pageToken }, o),
        );
        if (!r?.nextPageToken) break;
        pageToken = r.nextPageToken;
      }
    }
  };

  await Promise.all([
    producer(),
    producer(),
    producer(),
    reader(),
    reader(),
    reader(),
    reader(),
    holder(),
    holder(),
    holder(),
    deleter(),
    deleter(),
    spiller(),
    pinner(),
    lister(),
  ]);
}

// ---- the checks ---------------------------------------------------------------------------------

const EXPECTED: Record<Op, readonly string[]> = {
  allocate: ["OK"],
  commit: ["OK", "FailedPrecondition", "NotFound"],
  acquire: ["OK", "FailedPrecondition", "NotFound"],
  release: ["OK"],
  delete: ["OK", "NotFound", "Aborted"],
  pin: ["OK", "FailedPrecondition", "NotFound"],
  unpin: ["OK", "NotFound"],
  spill: ["OK", "ItemFailed"],
  resolve: ["OK", "NotFound"],
  list: ["OK"],
};

function byPayload(): Map<string, Obs[]> {
  const m = new Map<string, Obs[]>();
  for (const o of log) {
    if (!o.payload) continue;
    const list = m.get(o.payload) ?? [];
    list.push(o);
    m.set(o.payload, list);
  }
  return m;
}

const fmtObs = (o: Obs) =>
  `${o.op}@api${o.api + 1} ${o.start.toFixed(1)}–${o.end.toFixed(1)} ${o.code}${o.version ? ` v${o.version}` : ""}${o.force ? " force" : ""}${o.message ? ` (${o.message})` : ""}`;

describe(`three API replicas on one Postgres catalog (seed ${SEED})`, () => {
  it("an API-only replica places on the agent that registered with another replica", async () => {
    const c = clients[2]!;
    const a = await c.catalog.allocatePayload({ sizeBytes: 4096n, preferredTier: Tier.RAM });
    const path = regionPath(a.payloadDescriptor);
    expect(path && existsSync(path)).toBe(true);
    expect(path?.startsWith(`/dev/shm/${agentSys.ramPrefix}`)).toBe(true);
    await clients[1]!.catalog.commitPayload({ id: a.payloadDescriptor!.payloadId });
    await clients[0]!.catalog.delete({ id: a.payloadDescriptor!.payloadId });
    expect(existsSync(path!)).toBe(false);
  });

  it("keeps every invariant under a few hundred concurrent mixed calls", { timeout: 120_000 }, async () => {
    await workload();
    const counts = Object.fromEntries(
      (Object.keys(EXPECTED) as Op[]).map((op) => [op, log.filter((o) => o.op === op).length]),
    );
    console.log(`multi-replica: seed ${SEED}, ${log.length} calls`, counts);
    expect(log.length).toBeGreaterThan(300);
    expect(log.filter((o) => o.op === "acquire" && o.code === "OK").length).toBeGreaterThan(50);
    expect(log.filter((o) => o.op === "delete" && o.code === "OK").length).toBeGreaterThan(10);
    for (const s of [1, 2]) expect(log.filter((o) => o.api === s).length).toBeGreaterThan(50);

    // Every outcome is one the API may give for that call: no INTERNAL, UNAVAILABLE or timeout.
    const unexpected = log.filter((o) => !EXPECTED[o.op].includes(o.code));
    expect(unexpected.map(fmtObs)).toEqual([]);

    const perPayload = byPayload();
    const violations: string[] = [];
    for (const [id, obs] of perPayload) {
      const deletes = obs.filter((o) => o.op === "delete" && o.code === "OK");
      const acquires = obs.filter((o) => o.op === "acquire" && o.code === "OK");

      // 1. No lease is granted on a payload once a delete of it has succeeded.
      const deletedAt = Math.min(...deletes.map((d) => d.end));
      for (const a of acquires) {
        if (a.start > deletedAt) violations.push(`${id}: lease granted after delete: ${fmtObs(a)}`);
      }

      // 2. A delete without force never succeeds while a lease is held across it (unless it found the
      //    payload already being deleted by an earlier delete).
      for (const d of deletes.filter((x) => !x.force)) {
        if (deletes.some((other) => other !== d && other.start < d.end)) continue;
        for (const a of acquires) {
          const rel = obs.find((o) => o.op === "release" && o.leaseId === a.leaseId);
          const heldFrom = a.end;
          const heldUntil = rel ? rel.start : Number.POSITIVE_INFINITY;
          if (heldFrom < d.start && heldUntil > d.end) {
            violations.push(
              `${id}: non-force delete succeeded under a held lease: ${fmtObs(a)} / ${fmtObs(d)}`,
            );
          }
        }
      }

      // 3. No lost update: versions never go backwards between calls that did not overlap, and two
      //    successful changes never report the same version.
      const versioned = obs.filter((o) => o.code === "OK" && o.version !== undefined);
      for (const x of versioned) {
        for (const y of versioned) {
          if (x.end < y.start && y.version! < x.version!) {
            violations.push(`${id}: version went back: ${fmtObs(x)} then ${fmtObs(y)}`);
          }
        }
      }
      const changes = obs.filter(
        (o) => o.code === "OK" && (o.op === "commit" || (o.op === "spill" && o.moved)),
      );
      const commits = changes.filter((o) => o.op === "commit");
      if (commits.length > 1)
        violations.push(`${id}: committed ${commits.length} times: ${commits.map(fmtObs)}`);
      const versions = changes.map((o) => o.version);
      if (new Set(versions).size !== versions.length) {
        violations.push(`${id}: two changes share a version: ${changes.map(fmtObs).join(", ")}`);
      }
    }
    expect(violations).toEqual([]);

    // 4. No bytes freed under a live lease: every check made while holding a lease found the region.
    expect(regionChecks.length).toBeGreaterThan(100);
    expect(regionChecks.filter((c) => !c.exists)).toEqual([]);

    // 5. Settle as the worker would (free what finished deletions and moves left behind), then each
    //    payload row has exactly one region on the agent and the agent holds nothing else.
    const catalog = await PostgresCatalog.open({ url: db.url, poolSize: 2, migrate: false });
    try {
      const clock = { now: () => Date.now() };
      const allocator = new AgentRegionAllocator({
        catalog,
        clock,
        agentTtlMs: DEFAULT_DOMAIN_CONFIG.agentTtlMs,
        transportFor: (endpoint) => createConnectTransport({ baseUrl: endpoint }),
      });
      await sweep({
        catalog,
        allocator,
        clock,
        jobs: { enqueue: async () => undefined },
        ids: { newId: () => crypto.randomUUID() },
        presigner: undefined,
        config: DEFAULT_DOMAIN_CONFIG,
      });
    } finally {
      await catalog.close();
    }
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      const rows = (
        await admin.query<{ id: string; state: string; tier: string }>("SELECT id, state, tier FROM payloads")
      ).rows;
      const leases = (await admin.query("SELECT count(*)::int AS n FROM leases")).rows[0].n;
      const retired = (await admin.query("SELECT count(*)::int AS n FROM retired_regions")).rows[0].n;
      expect({ leases, retired }).toEqual({ leases: 0, retired: 0 });
      expect(rows.filter((r) => r.state === "DELETING" || r.state === "EXPIRED")).toEqual([]);

      const regions = new Map<string, string[]>();
      const add = (id: string, tier: string) => regions.set(id, [...(regions.get(id) ?? []), tier]);
      const uuidBin = /([0-9a-f-]{36})\.bin$/;
      for (const f of readdirSync("/dev/shm")) {
        if (f.startsWith(agentSys.ramPrefix)) add(uuidBin.exec(f)?.[1] ?? f, "RAM");
      }
      for (const f of existsSync(agentSys.diskRoot) ? readdirSync(agentSys.diskRoot) : []) {
        const m = uuidBin.exec(f);
        if (m) add(m[1]!, "DISK");
      }
      const placement = rows.map((r) => ({ id: r.id, tier: r.tier, regions: regions.get(r.id) ?? [] }));
      expect(placement.filter((p) => p.regions.length !== 1 || p.regions[0] !== p.tier)).toEqual([]);
      const orphans = [...regions.keys()].filter((id) => !rows.some((r) => r.id === id));
      expect(orphans).toEqual([]);

      // The trigger-maintained total agrees with the rows after all that concurrency.
      const listed = await clients[1]!.catalog.listPayloads({ pageSize: 1 });
      expect(listed.totalCount).toBe(rows.length);
      console.log(`multi-replica: ${rows.length} payloads left, ${regions.size} regions on the agent`);
    } finally {
      await admin.end();
    }
  });
});
