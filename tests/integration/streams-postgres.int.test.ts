import { createPayloadClient, idBytes, type PayloadClient } from "@pm/client";
import { put } from "@pm/client/node";
import { PostgresStreamNotifier, type StreamNotifierLog } from "@pm/db";
import { Tier } from "@pm/rpc";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InProcessStreamNotifier } from "../../apps/api/src/streams/in-process-stream-notifier.ts";
import { type RunningSystem, removeDataDir, startSystem } from "../support/system.ts";
import {
  createDatabase,
  freePort,
  SHARED_URL,
  type TestDatabase,
  ThrowawayCluster,
  throwawayClusterUnsupported,
} from "./lib/postgres.ts";

// Two real `payload-manager` processes on one fresh Postgres database: API#1 (role all, with the
// tier agent) and API#2 (role api). A Connect Subscribe on API#2 must see entries appended through
// API#1 promptly — woken by Postgres LISTEN/NOTIFY, not by its 5 s fallback re-check. Then two
// notifiers (as the API composes them) on a cluster of the test's own that is restarted and stopped.

let db: TestDatabase;
let one: RunningSystem | undefined;
let two: RunningSystem | undefined;
let c1: PayloadClient;
let c2: PayloadClient;

beforeAll(async () => {
  db = await createDatabase("pm_streams");
  one = await startSystem({ role: "all", env: { PM_CATALOG_URL: db.url } });
  two = await startSystem({ role: "api", env: { PM_CATALOG_URL: db.url } });
  c1 = createPayloadClient({ baseUrl: one.url });
  c2 = createPayloadClient({ baseUrl: two.url });
}, 90_000);

afterAll(async () => {
  for (const s of [two, one]) await s?.stop().catch(() => undefined);
  for (const s of [two, one]) if (s) removeDataDir(s.dataDir);
  await db?.drop();
});

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** LISTEN connections of API processes on the test database. */
async function listeners(): Promise<number> {
  const c = new pg.Client({ connectionString: SHARED_URL });
  await c.connect();
  try {
    const r = await c.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'payload-manager-streams:listen'",
      [db.name],
    );
    return r.rows[0]!.n;
  } finally {
    await c.end();
  }
}

describe("streams across API replicas on Postgres", () => {
  it("a Connect subscriber on API#2 gets entries appended through API#1 well before the fallback re-check; a stopping API#2 closes its LISTEN connection", async () => {
    const stream = { namespace: "replicas", name: "feed" };
    const { id } = await put(c1, Buffer.from("frame"), { tier: Tier.DISK });
    await c1.stream.createStream({ stream, retentionMaxEntries: 1000n });
    await c1.stream.append({ stream, items: [{ payloadId: idBytes(id), tags: { n: "0" } }] });
    expect(await listeners()).toBe(2);

    const ac = new AbortController();
    const feed = c2.stream
      .subscribe({ stream, start: { case: "offset", value: 0n } }, { signal: ac.signal })
      [Symbol.asyncIterator]();
    const latencies: number[] = [];
    const appendMs: number[] = [];
    try {
      const first = await within(feed.next(), 5_000, "the replayed entry");
      expect(first.value?.entry?.offset).toBe(0n);
      for (let n = 1; n <= 10; n++) {
        const next = feed.next();
        // Let API#2's feed go back to waiting on its notifier before appending.
        await new Promise((r) => setTimeout(r, 100));
        const started = performance.now();
        await c1.stream.append({ stream, items: [{ payloadId: idBytes(id), tags: { n: String(n) } }] });
        appendMs.push(performance.now() - started);
        const pushed = await within(next, 2_000, `entry ${n} on API#2`);
        latencies.push(performance.now() - started);
        expect(pushed.value?.entry).toMatchObject({ offset: BigInt(n), tags: { n: String(n) } });
      }
      const sorted = [...latencies].sort((a, b) => a - b);
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      expect(sorted[sorted.length - 1]).toBeLessThan(2_000);
      console.log(
        `append started on API#1 -> entry on API#2's subscriber (${sorted.length} rounds): p50 ${median(latencies).toFixed(1)} ms, max ${sorted[sorted.length - 1]!.toFixed(1)} ms; the Append call alone: p50 ${median(appendMs).toFixed(1)} ms`,
      );

      // API#2 stops while the feed is live (the server ends it) and closes its LISTEN connection.
      const ended = feed.next().catch(() => undefined);
      expect(await within(two!.stop(), 15_000, "API#2's shutdown")).toBe(0);
      await ended;
      const deadline = Date.now() + 5_000;
      while ((await listeners()) !== 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(await listeners()).toBe(1);
    } finally {
      ac.abort();
    }
  });
});

const unsupported = throwawayClusterUnsupported();

describe.skipIf(unsupported)("stream notifications over a Postgres restart and outage", () => {
  let cluster: ThrowawayCluster | undefined;
  const notifiers: PostgresStreamNotifier[] = [];
  afterAll(async () => {
    for (const n of notifiers) await n.close();
    cluster?.destroy();
  });

  it("reconnect, wake every subscriber once, and never reject while the server is gone", async () => {
    cluster = await ThrowawayCluster.start(await freePort());
    const warnings: string[] = [];
    const log: StreamNotifierLog = { info() {}, warn: (_o, msg) => warnings.push(msg ?? "") };
    const replica = async () => {
      const n = await PostgresStreamNotifier.open({
        url: `${cluster!.url}?connect_timeout_ms=1000`,
        local: new InProcessStreamNotifier(),
        reconnectMinMs: 50,
        reconnectMaxMs: 300,
        log,
      });
      notifiers.push(n);
      return n;
    };
    const a = await replica();
    const b = await replica();
    let calls = 0;
    let wake: (() => void) | undefined;
    const woken = () =>
      new Promise<void>((resolve) => {
        wake = resolve;
      });
    a.subscribe("feed", () => {
      calls++;
      wake?.();
    });
    let next = woken();
    await b.notify("feed");
    await within(next, 2_000, "the first notification");
    expect(calls).toBe(1);

    // Restart: every connection is cut; `a` listens again and wakes its subscriber once.
    next = woken();
    await cluster.restart();
    await within(next, 10_000, "the wake-up after the restart");
    expect(calls).toBe(2);
    next = woken();
    await b.notify("feed"); // b's pooled sender connection died too; it opens a new one
    await within(next, 2_000, "a notification after the restart");
    expect(calls).toBe(3);

    // Down: notify resolves (after at most the connect timeout) instead of rejecting.
    await cluster.stop();
    const started = performance.now();
    await expect(b.notify("feed")).resolves.toBeUndefined();
    expect(performance.now() - started).toBeLessThan(3_000);
    expect(a.listening).toBe(false);
    next = woken();
    await cluster.start();
    await within(next, 10_000, "the wake-up after the outage");
    next = woken();
    await b.notify("feed");
    await within(next, 2_000, "a notification after the outage");
    expect(calls).toBe(5);
    expect(warnings.some((w) => /lost/.test(w))).toBe(true);
  });
});
