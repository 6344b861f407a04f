/**
 * Group commit: concurrent calls of one kind are coalesced into batches, and each batch is one
 * statement (one round trip, one commit) instead of one transaction per call.
 *
 * Batching adapts to load without a timer: a call that finds a lane free goes out on the next
 * turn of the event loop (with whatever arrived in the same turn); while every lane is busy,
 * calls queue, and the next lane to finish takes all of them (up to `maxBatch`). One client
 * alone pays no wait; sixteen clients share a few statements.
 *
 * Each call keeps its own outcome: `run` returns one result per request. When a whole batch
 * fails with an error `isolate` accepts (a bad value in one request, say), its requests are run
 * again one by one so only the request at fault fails; other errors (the database is down) fail
 * every request of the batch, as they would have failed each alone.
 */
export interface GroupCommitOptions<Req, Res> {
  /** Runs one batch as one statement; returns the results in request order. */
  readonly run: (batch: readonly Req[]) => Promise<readonly Res[]>;
  /** Batches in flight at once; each holds one pooled connection while it runs. */
  readonly lanes: number;
  /** Most requests in one batch. */
  readonly maxBatch: number;
  /** Whether a failed batch of several requests is retried one request at a time. */
  readonly isolate: (err: unknown) => boolean;
  /** Called after each batch with its size (for metrics). */
  readonly onBatch?: (size: number) => void;
  /**
   * A call still queued after this long (every lane stuck, e.g. on a lock or a dead server)
   * fails with `waitError()` instead of waiting without bound — the back-pressure a pool gives
   * with its connect timeout. Undefined: wait as long as it takes.
   */
  readonly maxWaitMs?: number;
  readonly waitError?: (waitedMs: number) => Error;
}

interface Waiter<Req, Res> {
  readonly req: Req;
  readonly queuedAt: number;
  resolve(res: Res): void;
  reject(err: unknown): void;
}

export class GroupCommit<Req, Res> {
  private queue: Waiter<Req, Res>[] = [];
  private inFlight = 0;
  private scheduled = false;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly o: GroupCommitOptions<Req, Res>) {
    if (!Number.isInteger(o.lanes) || o.lanes < 1) throw new RangeError(`lanes must be ≥ 1, got ${o.lanes}`);
    if (!Number.isInteger(o.maxBatch) || o.maxBatch < 1) {
      throw new RangeError(`maxBatch must be ≥ 1, got ${o.maxBatch}`);
    }
  }

  submit(req: Req): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      this.queue.push({ req, queuedAt: performance.now(), resolve, reject });
      this.schedule();
      this.armTimer();
    });
  }

  /** Calls queued or in a batch in flight. */
  get pending(): number {
    return this.queue.length + this.inFlight;
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.o.lanes || this.queue.length === 0) return;
    this.scheduled = true;
    // setImmediate runs after the I/O callbacks of this loop turn: calls parsed from the same
    // read of the sockets join one batch.
    setImmediate(() => {
      this.scheduled = false;
      while (this.inFlight < this.o.lanes && this.queue.length > 0) {
        const batch = this.queue.splice(0, this.o.maxBatch);
        this.inFlight++;
        void this.runBatch(batch).finally(() => {
          this.inFlight--;
          this.schedule();
        });
      }
    });
  }

  /** Reports a batch size; a failing metrics hook must not leave the batch's calls hanging. */
  private observe(size: number): void {
    try {
      this.o.onBatch?.(size);
    } catch {
      // metrics are best effort
    }
  }

  /** Fails the calls queued longer than maxWaitMs, then waits for the next oldest. */
  private armTimer(): void {
    const maxWait = this.o.maxWaitMs;
    if (maxWait === undefined || this.timer || this.queue.length === 0) return;
    const due = this.queue[0]!.queuedAt + maxWait - performance.now();
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        const now = performance.now();
        while (this.queue.length > 0 && now - this.queue[0]!.queuedAt >= maxWait) {
          const w = this.queue.shift()!;
          const waited = Math.round(now - w.queuedAt);
          w.reject(this.o.waitError?.(waited) ?? new Error(`queued ${waited} ms without a free lane`));
        }
        this.armTimer();
      },
      Math.max(0, Math.ceil(due)),
    );
    this.timer.unref?.();
  }

  private async runBatch(batch: readonly Waiter<Req, Res>[]): Promise<void> {
    this.observe(batch.length);
    try {
      const results = await this.o.run(batch.map((w) => w.req));
      if (results.length !== batch.length) {
        throw new Error(`a batch of ${batch.length} returned ${results.length} results`);
      }
      batch.forEach((w, i) => {
        w.resolve(results[i] as Res);
      });
    } catch (e) {
      if (batch.length === 1 || !this.o.isolate(e)) {
        for (const w of batch) w.reject(e);
        return;
      }
      for (const w of batch) {
        this.observe(1);
        try {
          const [res] = await this.o.run([w.req]);
          w.resolve(res as Res);
        } catch (err) {
          w.reject(err);
        }
      }
    }
  }
}
