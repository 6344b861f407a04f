import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { CreateRegionRequestSchema, CreateRegionResult, Region } from "@pm/rpc";
import type { AgentClient } from "./agent-region-allocator.ts";

/** Most regions in one CreateRegions call (the agent refuses more). */
export const MAX_CREATE_BATCH = 256;

/**
 * Runs after the I/O callbacks of this turn of the event loop where the runtime can (Node's
 * setImmediate: the allocations parsed from one read of the sockets share a call), else on the
 * next microtask (Workers).
 */
const defer: (fn: () => void) => void =
  (globalThis as { setImmediate?: (fn: () => void) => void }).setImmediate ?? queueMicrotask;

/** How long an agent that does not know CreateRegions gets single calls before batches are tried again. */
export const SINGLES_FOR_MS = 60_000;

/** A status code number from the wire; one this client does not know is UNKNOWN. */
const codeOf = (n: number): Code => (Number.isInteger(n) && n >= 1 && n <= 16 ? (n as Code) : Code.Unknown);

type CreateRegionRequest = MessageInitShape<typeof CreateRegionRequestSchema>;

interface Waiter {
  readonly req: CreateRegionRequest;
  resolve(region: Region): void;
  reject(err: unknown): void;
}

/**
 * Coalesces the CreateRegion calls for one agent: a call that finds a lane free goes out at
 * once (after this turn's I/O, with the calls that arrived in it); while every lane has a
 * call in flight, new calls queue, and the next lane to come back sends all of them as one
 * CreateRegions call. One allocation alone pays no wait; sixteen concurrent ones share a few
 * HTTP requests, which is most of what a region costs the API and the agent.
 *
 * Each call keeps its own outcome: a region the agent refuses (tier full, bad size) fails only
 * that call, with the code CreateRegion would have answered. A failed request (agent down, past
 * the deadline) fails every call in it, as each would have failed alone. An agent that does not
 * know CreateRegions (older than this API) is sent single CreateRegion calls for a minute at a time.
 *
 * Runtime-neutral (setImmediate where there is one, else microtasks). Every wait is bounded: a
 * queued call waits at most for the batch in flight (itself bounded by timeoutMs), then for its
 * own batch.
 */
export class CreateRegionBatcher {
  private queue: Waiter[] = [];
  private inFlight = 0;
  private scheduled = false;
  /** Until when this agent gets single CreateRegion calls (it answered CreateRegions UNIMPLEMENTED). */
  private singlesUntil = 0;

  constructor(
    private readonly client: AgentClient,
    private readonly opts: {
      /** Deadline of each CreateRegion(s) call. */
      readonly timeoutMs: number;
      /** CreateRegions calls in flight at once (default 1: the largest batches). */
      readonly lanes?: number;
      /** Called with the number of regions of every CreateRegions call sent. */
      readonly onBatch?: ((size: number) => void) | undefined;
    },
  ) {}

  create(req: CreateRegionRequest): Promise<Region> {
    if (Date.now() < this.singlesUntil) {
      return this.client.createRegion(req, { timeoutMs: this.opts.timeoutMs });
    }
    return new Promise<Region>((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= (this.opts.lanes ?? 1) || this.queue.length === 0) return;
    this.scheduled = true;
    defer(() => {
      this.scheduled = false;
      while (this.inFlight < (this.opts.lanes ?? 1) && this.queue.length > 0) {
        const batch = this.queue.splice(0, MAX_CREATE_BATCH);
        this.inFlight++;
        void this.send(batch).finally(() => {
          this.inFlight--;
          this.schedule();
        });
      }
    });
  }

  private async send(batch: readonly Waiter[]): Promise<void> {
    try {
      this.opts.onBatch?.(batch.length);
    } catch {
      // metrics are best effort
    }
    let results: CreateRegionResult[];
    try {
      const res = await this.client.createRegions(
        { regions: batch.map((w) => w.req) },
        { timeoutMs: this.opts.timeoutMs },
      );
      results = res.results;
    } catch (e) {
      if (ConnectError.from(e).code === Code.Unimplemented) {
        // An agent older than CreateRegions: one call per region, now and for the next minute
        // (then batches are tried again, in case it was upgraded meanwhile).
        this.singlesUntil = Date.now() + SINGLES_FOR_MS;
        for (const w of batch) {
          this.client.createRegion(w.req, { timeoutMs: this.opts.timeoutMs }).then(w.resolve, w.reject);
        }
        return;
      }
      for (const w of batch) w.reject(e);
      return;
    }
    batch.forEach((w, i) => {
      const r = results[i]?.result;
      if (r?.case === "region") w.resolve(r.value);
      else if (r?.case === "error") w.reject(new ConnectError(r.value.message, codeOf(r.value.code)));
      else
        w.reject(
          new ConnectError(
            i < results.length
              ? `agent answered region ${i + 1} of ${batch.length} with neither a region nor an error`
              : `agent answered ${results.length} results for ${batch.length} regions`,
            Code.Internal,
          ),
        );
    });
  }
}
