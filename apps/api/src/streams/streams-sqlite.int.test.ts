import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { SqliteCatalog } from "@pm/db";
import { DEFAULT_DOMAIN_CONFIG, type StreamNotifier, type UseCaseDeps } from "@pm/domain";
import { FakeAllocator, RecordingJobQueue, SequentialIds } from "@pm/domain/testing";
import { PayloadCatalogService, type PayloadID, PayloadStreamService, Tier } from "@pm/rpc";
import { afterEach, describe, expect, it } from "vitest";
import { createApp } from "../app.ts";
import { consoleLogger } from "../logger.ts";
import { noopMetrics } from "../metrics.ts";
import { InProcessStreamNotifier } from "./in-process-stream-notifier.ts";

// Parallel clients appending over the API to a real SQLite catalog file, through two app instances
// ("replicas") sharing that file: offsets come out contiguous, each exactly once, and a subscriber
// on one replica sees every entry appended through either.

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function replica(path: string, notifier: StreamNotifier, name: string) {
  const catalog = await SqliteCatalog.open(path);
  cleanups.push(() => catalog.close());
  const useCases: UseCaseDeps = {
    catalog,
    allocator: new FakeAllocator({ DISK: 1024 ** 3 }),
    jobs: new RecordingJobQueue(),
    clock: { now: () => Date.now() },
    ids: {
      newId: (() => {
        // Distinct ids per replica: they share one catalog.
        const seq = new SequentialIds();
        return () => seq.newId().replace(/^00000000/, name === "a" ? "aaaaaaaa" : "bbbbbbbb");
      })(),
    },
    presigner: undefined,
    config: DEFAULT_DOMAIN_CONFIG,
  };
  let n = 0;
  const app = createApp({
    useCases,
    log: consoleLogger("silent"),
    metrics: noopMetrics,
    auth: { tokens: {}, agentToken: "" },
    heartbeatIntervalMs: 1000,
    newRequestId: () => `${name}-${++n}`,
    maxBodyBytes: 64 * 1024,
    readiness: {},
    streamNotifier: notifier,
  });
  const transport = createConnectTransport({
    baseUrl: `http://${name}.test`,
    fetch: (input, init) => Promise.resolve(app.fetch(new Request(input, init))),
  });
  return {
    catalog: createClient(PayloadCatalogService, transport),
    stream: createClient(PayloadStreamService, transport),
  };
}

describe("streams on a SQLite catalog file", () => {
  it("gives parallel appenders on two replicas contiguous offsets, each exactly once", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pm-streams-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, "catalog.db");
    // One notifier for both, standing in for a cross-replica one (Postgres LISTEN/NOTIFY).
    const notifier = new InProcessStreamNotifier();
    const a = await replica(path, notifier, "a");
    const b = await replica(path, notifier, "b");
    const stream = { namespace: "load", name: "hot" };
    await a.stream.createStream({ stream });

    const payloads: PayloadID[] = [];
    for (const r of [a, b]) {
      const { payloadDescriptor: d } = await r.catalog.allocatePayload({
        sizeBytes: 8n,
        preferredTier: Tier.DISK,
      });
      await r.catalog.commitPayload({ id: d!.payloadId! });
      payloads.push(d!.payloadId!);
    }

    const clients = 8;
    const rounds = 25;
    const sizeOf = (w: number, r: number) => ((w + r) % 3) + 1;
    const total = Array.from({ length: clients }, (_, w) =>
      Array.from({ length: rounds }, (_, r) => sizeOf(w, r)).reduce((x, y) => x + y, 0),
    ).reduce((x, y) => x + y, 0);
    const ac = new AbortController();
    cleanups.push(() => ac.abort());
    const seen: bigint[] = [];
    const subscriber = (async () => {
      for await (const m of a.stream.subscribe(
        { stream, start: { case: "offset", value: 0n } },
        { signal: ac.signal },
      )) {
        seen.push(m.entry!.offset);
        if (seen.length === total) return;
      }
    })();

    const blocks = (
      await Promise.all(
        Array.from({ length: clients }, async (_, w) => {
          const r = w % 2 === 0 ? a : b;
          const out: [bigint, bigint, number][] = [];
          for (let i = 0; i < rounds; i++) {
            const n = sizeOf(w, i);
            const res = await r.stream.append({
              stream,
              items: Array.from({ length: n }, (_, k) => ({
                payloadId: payloads[(w + k) % 2]!,
                tags: { writer: String(w), round: String(i), item: String(k) },
              })),
            });
            out.push([res.firstOffset, res.lastOffset, n]);
          }
          return out;
        }),
      )
    ).flat();

    // Every append got a block as long as its items; the blocks tile 0..total-1.
    for (const [first, last, n] of blocks) expect(last - first + 1n).toBe(BigInt(n));
    const covered = blocks.flatMap(([first, last]) => {
      const xs: number[] = [];
      for (let o = Number(first); o <= Number(last); o++) xs.push(o);
      return xs;
    });
    expect(covered.sort((x, y) => x - y)).toEqual(Array.from({ length: total }, (_, i) => i));

    const read = await b.stream.read({ stream, startOffset: 0n });
    expect(read.entries.map((e) => Number(e.offset))).toEqual(Array.from({ length: total }, (_, i) => i));
    // Each append's items are adjacent and in request order.
    for (let i = 0; i < read.entries.length; ) {
      const e = read.entries[i]!;
      const n = sizeOf(Number(e.tags.writer), Number(e.tags.round));
      const group = read.entries.slice(i, i + n);
      expect(group.map((x) => [x.tags.writer, x.tags.round, x.tags.item])).toEqual(
        Array.from({ length: n }, (_, k) => [e.tags.writer, e.tags.round, String(k)]),
      );
      i += n;
    }

    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      subscriber,
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`subscriber saw ${seen.length} of ${total} entries`)),
          3_000,
        );
      }),
    ]);
    clearTimeout(timer);
    expect(seen).toEqual(Array.from({ length: total }, (_, i) => BigInt(i)));
    const info = await a.stream.listStreams({ namespace: "load" });
    expect(info.streams[0]).toMatchObject({
      firstOffset: 0n,
      lastOffset: BigInt(total - 1),
      entryCount: BigInt(total),
    });
  });
});
