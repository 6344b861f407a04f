import {
  appendToStream,
  createStream,
  type PayloadId,
  readStream,
  type StreamDeps,
  type StreamNotifier,
} from "@pm/domain";
import { afterEach, describe, expect, it } from "vitest";
import { type WorkerHarness, workerHarness } from "../testing/worker-harness.ts";

let h: WorkerHarness;
afterEach(() => h.close());

const quiet: StreamNotifier = { subscribe: () => () => {}, notify: async () => {} };

function streams(harness: WorkerHarness): StreamDeps {
  return { ...harness.deps, notifier: quiet };
}

async function append(harness: WorkerHarness, name: string, payloadId: PayloadId, n: number): Promise<void> {
  await appendToStream(streams(harness), harness.ctx, {
    stream: { namespace: "cams", name },
    items: Array.from({ length: n }, () => ({ payloadId, eventTime: undefined, durationNs: 0, tags: {} })),
  });
}

async function offsets(harness: WorkerHarness, name: string): Promise<number[]> {
  const entries = await readStream(streams(harness), harness.ctx, {
    stream: { namespace: "cams", name },
    startOffset: 0,
    maxEntries: 0,
    notBefore: undefined,
  });
  return entries.map((e) => e.offset);
}

describe("periodic stream retention (in-process runner)", () => {
  it("ages out a stream nobody appends to once the clock passes its limit", async () => {
    h = workerHarness({ sweepIntervalMs: false, pressureIntervalMs: false });
    const start = h.clock.now();
    const p = await h.committed("RAM");
    await createStream(streams(h), h.ctx, {
      stream: { namespace: "cams", name: "aged" },
      retentionMaxEntries: 0,
      retentionMaxAgeSec: 60,
    });
    await createStream(streams(h), h.ctx, {
      stream: { namespace: "cams", name: "forever" },
      retentionMaxEntries: 0,
      retentionMaxAgeSec: 0,
    });
    await h.advance(1_000);
    await append(h, "aged", p.id, 2); // offsets 0, 1 at +1 s
    await append(h, "forever", p.id, 2);
    await h.advance(39_000);
    await append(h, "aged", p.id, 1); // offset 2 at +40 s

    // The passes at +30 s and +60 s find nothing older than 60 s.
    await h.advance(start + 60_500 - h.clock.now());
    expect(await offsets(h, "aged")).toEqual([0, 1, 2]);

    // +90 s: the entries of +1 s are 89 s old and go, without any append in between.
    await h.advance(30_000);
    expect(await offsets(h, "aged")).toEqual([2]);
    expect(h.outcomes("stream-retention")).toContainEqual(["completed", { streams: 1, entriesRemoved: 2 }]);

    // +120 s: the last entry is 80 s old.
    await h.advance(30_000);
    expect(await offsets(h, "aged")).toEqual([]);
    expect(await offsets(h, "forever")).toEqual([0, 1]);
    expect(h.outcomes("stream-retention").every(([outcome]) => outcome === "completed")).toBe(true);
    expect(h.outcomes("stream-retention")).toHaveLength(4);
  });

  it("does not run when its interval is off", async () => {
    h = workerHarness({
      sweepIntervalMs: false,
      pressureIntervalMs: false,
      streamRetentionIntervalMs: false,
    });
    const p = await h.committed("RAM");
    await createStream(streams(h), h.ctx, {
      stream: { namespace: "cams", name: "aged" },
      retentionMaxEntries: 0,
      retentionMaxAgeSec: 1,
    });
    await append(h, "aged", p.id, 3);
    await h.advance(600_000);
    expect(await offsets(h, "aged")).toEqual([0, 1, 2]);
    expect(h.outcomes("stream-retention")).toEqual([]);
  });
});
