import { randomBytes } from "node:crypto";
import type { StreamNotifier } from "@pm/domain";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  PostgresStreamNotifier,
  type PostgresStreamNotifierOptions,
  type StreamNotifierLog,
  streamChannelOf,
} from "./postgres-stream-notifier.ts";

// Runs against the real server (infra/dev/services.sh). Every test uses its own channel and
// application_name, so parallel runs and other files never hear each other.
const URL = process.env.PM_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** The local fan-out the API wraps (apps/api's InProcessStreamNotifier), reduced to what tests need. */
class LocalFanOut implements StreamNotifier {
  private readonly listeners = new Map<string, Set<() => void>>();
  subscribe(key: string, fn: () => void): () => void {
    const wrapped = () => fn();
    const set = this.listeners.get(key) ?? new Set();
    set.add(wrapped);
    this.listeners.set(key, set);
    return () => set.delete(wrapped);
  }
  async notify(key: string): Promise<void> {
    for (const fn of [...(this.listeners.get(key) ?? [])]) fn();
  }
}

class RecordingLog implements StreamNotifierLog {
  readonly lines: { level: string; msg: string }[] = [];
  info(_obj: object, msg = "") {
    this.lines.push({ level: "info", msg });
  }
  warn(_obj: object, msg = "") {
    this.lines.push({ level: "warn", msg });
  }
}

let admin: pg.Pool;
const open: PostgresStreamNotifier[] = [];

beforeAll(() => {
  admin = new pg.Pool({ connectionString: URL, max: 2 });
});
afterEach(async () => {
  for (const n of open.splice(0)) await n.close();
});
afterAll(async () => {
  await admin.end();
});

const unique = () => randomBytes(5).toString("hex");

/** Two or more notifiers on one channel: the API replicas of one catalog. */
function scenario() {
  const id = unique();
  const channel = `pm_streams_t_${id}`;
  const app = `pmtest-${id}`;
  return {
    channel,
    app,
    async replica(over: Partial<PostgresStreamNotifierOptions> = {}) {
      const n = await PostgresStreamNotifier.open({
        url: URL,
        local: new LocalFanOut(),
        channel,
        applicationName: app,
        reconnectMinMs: 50,
        reconnectMaxMs: 500,
        ...over,
      });
      open.push(n);
      return n;
    },
  };
}

/** Counts a listener's calls; `next()` resolves on the following call. */
function counter() {
  let calls = 0;
  let waiters: (() => void)[] = [];
  return {
    fn: () => {
      calls++;
      const w = waiters;
      waiters = [];
      for (const r of w) r();
    },
    get calls() {
      return calls;
    },
    next(timeoutMs = 2_000): Promise<void> {
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no notification within ${timeoutMs} ms`)), timeoutMs);
        waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function backends(app: string, suffix = "%"): Promise<number[]> {
  const r = await admin.query<{ pid: number }>(
    "SELECT pid FROM pg_stat_activity WHERE application_name LIKE $1",
    [`${app}:${suffix}`],
  );
  return r.rows.map((row) => row.pid);
}

async function until(what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length * p) / 100))]!;
};

describe("PostgresStreamNotifier", () => {
  it("carries a notify on one replica to a listener of that stream on another", async () => {
    const s = scenario();
    const a = await s.replica();
    const b = await s.replica();
    expect(a.listening && b.listening).toBe(true);
    const key = JSON.stringify(["team-a", "cams", "front"]);
    const onB = counter();
    const other = counter();
    b.subscribe(key, onB.fn);
    b.subscribe(JSON.stringify(["team-a", "cams", "back"]), other.fn);

    const latencies: number[] = [];
    for (let i = 0; i < 50; i++) {
      const arrived = onB.next(1_000);
      const t0 = performance.now();
      await a.notify(key);
      await arrived;
      latencies.push(performance.now() - t0);
    }
    expect(onB.calls).toBe(50);
    expect(other.calls).toBe(0);
    expect(pct(latencies, 50)).toBeLessThan(100);
    console.log(
      `cross-replica notification latency over ${latencies.length}: p50 ${pct(latencies, 50).toFixed(2)} ms, p99 ${pct(latencies, 99).toFixed(2)} ms, max ${Math.max(...latencies).toFixed(2)} ms`,
    );
  });

  it("wakes the notifying replica's own listeners at once, and only once (its echo is dropped)", async () => {
    const s = scenario();
    const a = await s.replica();
    const b = await s.replica();
    const key = JSON.stringify(["t", "", "s"]);
    const onA = counter();
    const onB = counter();
    a.subscribe(key, onA.fn);
    b.subscribe(key, onB.fn);
    const arrivedOnB = onB.next();
    const sent = a.notify(key);
    // Synchronously, before any round trip to the server.
    expect(onA.calls).toBe(1);
    await sent;
    await arrivedOnB;
    await sleep(200);
    expect(onA.calls).toBe(1);
    expect(onB.calls).toBe(1);
  });

  it("stops calling a listener once it unsubscribed; concurrent notifies of one key still arrive", async () => {
    const s = scenario();
    const a = await s.replica();
    const b = await s.replica();
    const key = "k";
    const first = counter();
    const second = counter();
    const offFirst = b.subscribe(key, first.fn);
    b.subscribe(key, second.fn);
    const both = Promise.all([first.next(), second.next()]);
    await Promise.all([a.notify(key), a.notify(key), a.notify(key)]);
    await both;
    offFirst();
    offFirst(); // twice is harmless
    const again = second.next();
    await a.notify(key);
    await again;
    await sleep(100);
    expect(first.calls).toBeGreaterThanOrEqual(1);
    const firstCalls = first.calls;
    await a.notify(key);
    await sleep(100);
    expect(first.calls).toBe(firstCalls);
  });

  it("reconnects after its LISTEN connection is killed, wakes every listener once, then delivers again", async () => {
    const s = scenario();
    const log = new RecordingLog();
    const a = await s.replica({ log, applicationName: `${s.app}a` });
    const b = await s.replica({ applicationName: `${s.app}b` });
    const k1 = counter();
    const k1bis = counter();
    const k2 = counter();
    a.subscribe("one", k1.fn);
    a.subscribe("one", k1bis.fn);
    a.subscribe("two", k2.fn);

    const [listener] = await backends(`${s.app}a`, "listen");
    expect(listener).toBeDefined();
    const woken = Promise.all([k1.next(5_000), k1bis.next(5_000), k2.next(5_000)]);
    await admin.query("SELECT pg_terminate_backend($1)", [listener]);
    await woken;
    expect(a.listening).toBe(true);
    await sleep(300);
    expect([k1.calls, k1bis.calls, k2.calls]).toEqual([1, 1, 1]);
    const after = await backends(`${s.app}a`, "listen");
    expect(after).toHaveLength(1);
    expect(after[0]).not.toBe(listener);
    expect(log.lines.map((l) => l.level)).toEqual(["warn", "info"]);
    expect(log.lines[0]!.msg).toMatch(/lost/);

    const arrived = k2.next();
    await b.notify("two");
    await arrived;
    expect([k1.calls, k1bis.calls, k2.calls]).toEqual([1, 1, 2]);
  });

  it("closing releases both of its connections", async () => {
    const s = scenario();
    const a = await s.replica();
    const b = await s.replica({ applicationName: `${s.app}b` });
    const heard = counter();
    b.subscribe("x", heard.fn);
    const arrived = heard.next();
    await a.notify("x");
    await arrived;
    expect(await backends(s.app, "listen")).toHaveLength(1);
    expect(await backends(s.app, "notify")).toHaveLength(1);
    await a.close();
    await a.close(); // idempotent
    await until("the connections to go", async () => (await backends(s.app)).length === 0);
    expect(a.listening).toBe(false);
    // Closed: a notify still wakes local listeners and resolves, but opens nothing.
    const local = counter();
    a.subscribe("x", local.fn);
    await a.notify("x");
    expect(local.calls).toBe(1);
    await sleep(100);
    expect(await backends(s.app)).toHaveLength(0);
  });

  it("keeps schemas apart: replicas of another schema's catalog do not hear it", async () => {
    const x = `pm_test_${unique()}`;
    const y = `pm_test_${unique()}`;
    const mk = async (schema: string) => {
      const n = await PostgresStreamNotifier.open({
        url: `${URL}?schema=${schema}&pool_size=3`,
        local: new LocalFanOut(),
        applicationName: `pmtest-${unique()}`,
      });
      open.push(n);
      return n;
    };
    const ax = await mk(x);
    const bx = await mk(x);
    const by = await mk(y);
    expect(ax.channel).toBe(`pm_streams_${x}`);
    expect(by.channel).toBe(`pm_streams_${y}`);
    const onX = counter();
    const onY = counter();
    bx.subscribe("k", onX.fn);
    by.subscribe("k", onY.fn);
    const arrived = onX.next();
    await ax.notify("k");
    await arrived;
    await sleep(200);
    expect(onY.calls).toBe(0);
  });

  it("never rejects while the server is unreachable, and logs why", async () => {
    const log = new RecordingLog();
    const n = await PostgresStreamNotifier.open({
      url: "postgres://postgres@127.0.0.1:1/test?connect_timeout_ms=500",
      local: new LocalFanOut(),
      channel: `pm_streams_t_${unique()}`,
      reconnectMinMs: 50,
      log,
    });
    open.push(n);
    expect(n.listening).toBe(false);
    const local = counter();
    n.subscribe("k", local.fn);
    await expect(n.notify("k")).resolves.toBeUndefined();
    await expect(n.notify("k".repeat(9_000))).resolves.toBeUndefined();
    expect(local.calls).toBe(1);
    expect(log.lines.filter((l) => l.level === "warn").length).toBeGreaterThanOrEqual(2);
    await n.close();
  });
});

describe("streamChannelOf", () => {
  it("names a plain identifier of at most 63 bytes per schema", () => {
    expect(streamChannelOf(undefined)).toBe("pm_streams");
    expect(streamChannelOf("pm")).toBe("pm_streams_pm");
    const long = "s".repeat(63);
    const c = streamChannelOf(long);
    expect(c).toMatch(/^[a-z_][a-z0-9_]{0,62}$/);
    expect(streamChannelOf(`${"s".repeat(62)}t`)).not.toBe(c);
  });

  it("refuses a channel that is not a plain identifier", () => {
    expect(
      () => new PostgresStreamNotifier({ url: URL, local: new LocalFanOut(), channel: 'x"; DROP' }),
    ).toThrow(/not allowed/);
  });
});
