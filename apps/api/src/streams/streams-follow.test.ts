import {
  appendToStream,
  asPayloadId,
  createStream,
  DEFAULT_EVICTION_POLICY,
  type StreamDeps,
  type StreamNotifier,
} from "@pm/domain";
import { FakeClock, MemoryCatalog } from "@pm/domain/testing";
import { describe, expect, it } from "vitest";
import { followStream } from "./follow-stream.ts";
import { InProcessStreamNotifier } from "./in-process-stream-notifier.ts";

// The subscription loop against the memory catalog: woken by the notifier, healed by the fallback
// re-check when notifications go missing, and released on abort.

const ctx = { namespace: "team-a" };
const S = { namespace: "", name: "s" };

/** A notifier that drops every notification (a broken LISTEN connection, another replica). */
class DeafNotifier implements StreamNotifier {
  subscribed = 0;
  subscribe() {
    this.subscribed++;
    return () => {
      this.subscribed--;
    };
  }
  async notify() {}
}

async function setup(notifier: StreamNotifier) {
  const catalog = new MemoryCatalog();
  const clock = new FakeClock();
  const deps: StreamDeps = { catalog, clock, notifier };
  await createStream(deps, ctx, { stream: S, retentionMaxEntries: 0, retentionMaxAgeSec: 0 });
  // A committed payload to reference, written straight into the catalog.
  const id = asPayloadId("00000000-0000-4000-8000-000000000001");
  await catalog.transaction((tx) =>
    tx.insertPayload({
      id,
      namespace: ctx.namespace,
      sizeBytes: 1,
      state: "DURABLE",
      version: 2,
      placement: {
        tier: "DISK",
        agentId: "a",
        host: "h",
        lengthBytes: 1,
        location: { kind: "disk", path: "/x", offsetBytes: 0 },
      },
      pendingPlacement: undefined,
      createdAt: clock.now(),
      updatedAt: clock.now(),
      expiresAt: undefined,
      lastAccessAt: clock.now(),
      noEvict: false,
      evictionPolicy: DEFAULT_EVICTION_POLICY,
      checksum: undefined,
    }),
  );
  const append = (n: number) =>
    appendToStream(deps, ctx, {
      stream: S,
      items: Array.from({ length: n }, () => ({
        payloadId: id,
        eventTime: undefined,
        durationNs: 0,
        tags: {},
      })),
    });
  return { deps, append };
}

describe("followStream", () => {
  it("replays in batches, then wakes on each notification", async () => {
    const notifier = new InProcessStreamNotifier();
    const { deps, append } = await setup(notifier);
    await append(7);
    const ac = new AbortController();
    const feed = followStream(
      deps,
      ctx,
      { stream: S, start: { kind: "offset", offset: 0 } },
      { signal: ac.signal, batch: 3, fallbackMs: 60_000 },
    );
    const got: number[] = [];
    for (let i = 0; i < 7; i++) got.push((await feed.next()).value!.offset);
    expect(got).toEqual([0, 1, 2, 3, 4, 5, 6]);
    const next = feed.next();
    await append(1);
    expect((await next).value!.offset).toBe(7);
    expect(notifier.subscriberCount).toBe(1);
    ac.abort();
    expect(await feed.next()).toEqual({ done: true, value: undefined });
    expect(notifier.subscriberCount).toBe(0);
  });

  it("still delivers when notifications are lost, on the fallback re-check", async () => {
    const notifier = new DeafNotifier();
    const { deps, append } = await setup(notifier);
    const ac = new AbortController();
    const feed = followStream(
      deps,
      ctx,
      { stream: S, start: { kind: "beginning" } },
      { signal: ac.signal, fallbackMs: 30 },
    );
    const next = feed.next();
    await append(1);
    expect((await next).value!.offset).toBe(0);
    ac.abort();
    await feed.next();
    expect(notifier.subscribed).toBe(0);
  });

  it("lets go of the notifier when the consumer stops early", async () => {
    const notifier = new InProcessStreamNotifier();
    const { deps, append } = await setup(notifier);
    await append(2);
    const feed = followStream(
      deps,
      ctx,
      { stream: S, start: { kind: "beginning" } },
      { signal: new AbortController().signal },
    );
    await feed.next();
    await feed.return(undefined);
    expect(notifier.subscriberCount).toBe(0);
  });
});

describe("InProcessStreamNotifier", () => {
  it("calls the listeners of one key, survives a throwing one, and unsubscribes", async () => {
    const n = new InProcessStreamNotifier();
    const calls: string[] = [];
    const offA = n.subscribe("a", () => calls.push("a1"));
    n.subscribe("a", () => {
      throw new Error("listener bug");
    });
    n.subscribe("a", () => calls.push("a3"));
    const offB = n.subscribe("b", () => calls.push("b"));
    await n.notify("a");
    expect(calls).toEqual(["a1", "a3"]);
    offA();
    offA();
    offB();
    await n.notify("a");
    await n.notify("b");
    await n.notify("nobody");
    expect(calls).toEqual(["a1", "a3", "a3"]);
    expect(n.subscriberCount).toBe(2);
  });

  it("keeps two subscriptions with the same listener function apart", async () => {
    const n = new InProcessStreamNotifier();
    let count = 0;
    const listener = () => count++;
    const off1 = n.subscribe("k", listener);
    n.subscribe("k", listener);
    off1();
    await n.notify("k");
    expect(count).toBe(1);
  });
});
