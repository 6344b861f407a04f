import { createHash } from "node:crypto";
import { invalidArgument, type StreamNotifier } from "@pm/domain";
import pg from "pg";
import { describeUrl } from "./postgres-errors.ts";
import { splitPostgresUrl } from "./postgres-url.ts";

/** Where the notifier reports faults; a pino logger satisfies it. */
export interface StreamNotifierLog {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface PostgresStreamNotifierOptions {
  /**
   * The catalog's Postgres URL (PM_CATALOG_URL). Its catalog parameters (`schema`,
   * `connect_timeout_ms`, `idle_timeout_ms`, …) are read the way the catalog reads them; the rest
   * goes to the driver, so both connect to the same server and database with the same credentials.
   */
  readonly url: string;
  /**
   * Delivers to this process's subscribers (the API's InProcessStreamNotifier). Every subscription
   * is registered there; this notifier only adds the fan-out across processes.
   */
  readonly local: StreamNotifier;
  /** Scopes the channel; default: the URL's `schema` parameter (none: the database's default). */
  readonly schema?: string;
  /** The LISTEN/NOTIFY channel; default: `streamChannelOf(schema)`. Replicas must agree on it. */
  readonly channel?: string;
  /**
   * application_name prefix of the two connections (`<name>:listen`, `<name>:notify`), as
   * pg_stat_activity shows them (default "payload-manager-streams").
   */
  readonly applicationName?: string;
  /** Bound on connecting and on each statement (default: the URL's connect_timeout_ms, else 5000). */
  readonly connectTimeoutMs?: number;
  /** First delay before reconnecting the listener; doubles per failed try (default 200 ms). */
  readonly reconnectMinMs?: number;
  /** Longest delay between reconnect tries (default 5000 ms). */
  readonly reconnectMaxMs?: number;
  /**
   * How often the listening connection is probed with `SELECT 1` (default 30 000 ms; 0 = never), so
   * a connection the network silently dropped is noticed and replaced rather than waited on.
   */
  readonly healthCheckMs?: number;
  /** Where faults and recoveries are reported (the API passes its logger); default: nowhere. */
  readonly log?: StreamNotifierLog;
}

const CHANNEL_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const CHANNEL_PREFIX = "pm_streams";
// NOTIFY refuses payloads of 8000 bytes or more; stream keys are far below that (names are capped).
const MAX_PAYLOAD_BYTES = 7_999;
const FAULT_LOG_EVERY_MS = 30_000;

/**
 * The channel of a catalog schema: `pm_streams` for the default schema, `pm_streams_<schema>`
 * otherwise, shortened with a hash of the schema where that would pass Postgres's 63-byte
 * identifier limit. Always a plain lowercase identifier.
 */
export function streamChannelOf(schema: string | undefined): string {
  if (schema === undefined || schema === "") return CHANNEL_PREFIX;
  const full = `${CHANNEL_PREFIX}_${schema}`;
  if (CHANNEL_NAME.test(full)) return full;
  const safe = schema.toLowerCase().replace(/[^a-z0-9_]/g, "_");
  const hash = createHash("sha1").update(schema).digest("hex").slice(0, 12);
  return `${CHANNEL_PREFIX}_${safe.slice(0, 63 - CHANNEL_PREFIX.length - 2 - hash.length)}_${hash}`;
}

const silentLog: StreamNotifierLog = { info() {}, warn() {} };

/**
 * Stream notifications across API replicas over Postgres LISTEN/NOTIFY. Each process keeps one
 * dedicated connection that LISTENs on the schema's channel, and sends `pg_notify(channel, key)`
 * (the payload is `streamKeyString(key)`) through a separate pool of one connection, since a pooled
 * catalog connection cannot hold a LISTEN. A notify wakes this process's own subscribers at once
 * through the local notifier (they do not wait for the round trip; the echo of the own NOTIFY is
 * recognised by its backend pid and dropped), and other processes' subscribers when it arrives.
 *
 * Notifications may be lost while the listening connection is down: it is re-established with
 * backoff, and once it listens again every local subscriber is woken once to re-read. Nothing here
 * rejects or throws after construction: faults are logged, and subscribers' slow re-check (follow-
 * stream's fallback timer) bounds the delay of anything missed.
 */
export class PostgresStreamNotifier implements StreamNotifier {
  readonly channel: string;
  private readonly local: StreamNotifier;
  private readonly log: StreamNotifierLog;
  private readonly where: string;
  private readonly listenConfig: pg.ClientConfig;
  private readonly sender: pg.Pool;
  private readonly connectTimeoutMs: number;
  private readonly reconnectMinMs: number;
  private readonly reconnectMaxMs: number;
  private readonly healthCheckMs: number;

  /** Subscriptions per stream key, to fan incoming notifications out and to wake all after a gap. */
  private readonly keys = new Map<string, number>();
  /** Sends not yet on the wire, per key: a notify of the same key meanwhile rides along. */
  private readonly queued = new Map<string, { promise: Promise<void> }>();
  /** Backend pids of the sender's connections: their notifications are our own echo. */
  private readonly ownPids = new Set<number>();

  private client: pg.Client | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private healthTimer: NodeJS.Timeout | undefined;
  private probing = false;
  private failures = 0;
  private downSince: number | undefined;
  private lastFaultLogAt = 0;
  private lastSendFaultLogAt = 0;
  private suppressedSendFaults = 0;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(options: PostgresStreamNotifierOptions) {
    const { url, settings } = splitPostgresUrl(options.url);
    const schema = options.schema ?? settings.schema;
    this.channel = options.channel ?? streamChannelOf(schema);
    if (!CHANNEL_NAME.test(this.channel)) {
      throw invalidArgument(
        `stream notification channel "${this.channel}" is not allowed: use 1-63 lowercase letters, digits or '_', starting with a letter or '_'`,
        { field: "channel" },
      );
    }
    this.local = options.local;
    this.log = options.log ?? silentLog;
    this.where = describeUrl(url);
    this.connectTimeoutMs = options.connectTimeoutMs ?? settings.connectTimeoutMs ?? 5_000;
    this.reconnectMinMs = Math.max(1, options.reconnectMinMs ?? 200);
    this.reconnectMaxMs = Math.max(this.reconnectMinMs, options.reconnectMaxMs ?? 5_000);
    this.healthCheckMs = options.healthCheckMs ?? 30_000;
    const name = options.applicationName ?? "payload-manager-streams";
    const common = {
      connectionString: url,
      connectionTimeoutMillis: this.connectTimeoutMs,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    };
    this.listenConfig = { ...common, application_name: `${name}:listen` };
    this.sender = new pg.Pool({
      ...common,
      application_name: `${name}:notify`,
      max: 1,
      idleTimeoutMillis: settings.idleTimeoutMs ?? 30_000,
      statement_timeout: this.connectTimeoutMs,
      query_timeout: this.connectTimeoutMs,
    });
    // An idle sending connection that failed (server restart, network): the pool drops it and the
    // next notify opens a new one. Without a listener the error would crash the process.
    this.sender.on("error", (err) =>
      this.log.info(
        { err, database: this.where },
        "stream notifications: an idle sending connection to Postgres failed; the next notify reconnects",
      ),
    );
    this.sender.on("connect", (c) => {
      const pid = backendPid(c);
      if (pid !== undefined) this.ownPids.add(pid);
    });
    this.sender.on("remove", (c) => {
      const pid = backendPid(c);
      if (pid !== undefined) this.ownPids.delete(pid);
    });
  }

  /**
   * A notifier whose first LISTEN has been tried: resolves listening, or (the server unreachable)
   * with a reconnect under way. Never rejects on a connection fault.
   */
  static async open(options: PostgresStreamNotifierOptions): Promise<PostgresStreamNotifier> {
    const n = new PostgresStreamNotifier(options);
    await n.listen(false);
    return n;
  }

  /** Whether the LISTEN connection is up right now (tests, readiness). */
  get listening(): boolean {
    return this.client !== undefined;
  }

  subscribe(streamKey: string, listener: () => void): () => void {
    const off = this.local.subscribe(streamKey, listener);
    this.keys.set(streamKey, (this.keys.get(streamKey) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      off();
      const n = (this.keys.get(streamKey) ?? 1) - 1;
      if (n > 0) this.keys.set(streamKey, n);
      else this.keys.delete(streamKey);
    };
  }

  async notify(streamKey: string): Promise<void> {
    await this.wakeLocal(streamKey);
    if (this.closed) return;
    if (Buffer.byteLength(streamKey, "utf8") > MAX_PAYLOAD_BYTES) {
      this.sendFault(new Error(`stream key of ${Buffer.byteLength(streamKey)} bytes is too long for NOTIFY`));
      return;
    }
    await this.send(streamKey);
  }

  /** Stops listening and reconnecting and closes both connections. Idempotent; never rejects. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = undefined;
      this.stopHealthCheck();
      const c = this.client;
      this.client = undefined;
      await Promise.all([c ? this.end(c) : undefined, this.sender.end().catch(() => undefined)]);
    })();
    return this.closing;
  }

  // ---- sending ---------------------------------------------------------------------------------

  private send(key: string): Promise<void> {
    const pending = this.queued.get(key);
    if (pending) return pending.promise;
    const slot = { promise: Promise.resolve() };
    this.queued.set(key, slot);
    slot.promise = this.sendNow(key, slot);
    return slot.promise;
  }

  private async sendNow(key: string, slot: { promise: Promise<void> }): Promise<void> {
    const leave = () => {
      if (this.queued.get(key) === slot) this.queued.delete(key);
    };
    let c: pg.PoolClient;
    try {
      c = await this.sender.connect();
    } catch (e) {
      leave();
      if (!this.closed) this.sendFault(e);
      return;
    }
    // From here on the NOTIFY goes out after every commit that joined it; later ones send anew.
    leave();
    try {
      await c.query("SELECT pg_notify($1, $2)", [this.channel, key]);
      c.release();
    } catch (e) {
      c.release(e instanceof Error ? e : true);
      if (!this.closed) this.sendFault(e);
    }
  }

  private sendFault(err: unknown): void {
    const now = Date.now();
    if (now - this.lastSendFaultLogAt < FAULT_LOG_EVERY_MS) {
      this.suppressedSendFaults++;
      return;
    }
    this.lastSendFaultLogAt = now;
    this.log.warn(
      { err, database: this.where, channel: this.channel, suppressed: this.suppressedSendFaults },
      "stream notification not sent to other replicas; their subscribers pick the change up on their next re-check",
    );
    this.suppressedSendFaults = 0;
  }

  // ---- listening -------------------------------------------------------------------------------

  private async wakeLocal(key: string): Promise<void> {
    try {
      await this.local.notify(key);
    } catch (e) {
      this.log.warn({ err: e }, "local stream notifier failed");
    }
  }

  private wakeAll(): void {
    for (const key of [...this.keys.keys()]) void this.wakeLocal(key);
  }

  private onNotification(msg: pg.Notification): void {
    if (msg.channel !== this.channel || this.ownPids.has(msg.processId)) return;
    const key = msg.payload;
    if (key !== undefined && this.keys.has(key)) void this.wakeLocal(key);
  }

  /** Connects and LISTENs; on failure schedules the next try. `wake`: wake every subscriber after. */
  private async listen(wake: boolean): Promise<void> {
    const client = new pg.Client(this.listenConfig);
    client.on("error", (err) => this.lost(client, err));
    client.on("end", () => this.lost(client, undefined));
    client.on("notification", (msg) => this.onNotification(msg));
    try {
      await client.connect();
      await client.query(`LISTEN ${pg.escapeIdentifier(this.channel)}`);
    } catch (e) {
      void this.end(client);
      if (this.closed) return;
      this.failures++;
      this.downSince ??= Date.now();
      const now = Date.now();
      if (this.failures === 1 || now - this.lastFaultLogAt >= FAULT_LOG_EVERY_MS) {
        this.lastFaultLogAt = now;
        this.log.warn(
          { err: e, database: this.where, channel: this.channel, attempt: this.failures },
          "stream notifications: cannot listen on Postgres; retrying (subscribers fall back to periodic re-checks)",
        );
      }
      this.scheduleReconnect();
      return;
    }
    if (this.closed) {
      void this.end(client);
      return;
    }
    this.client = client;
    if (this.downSince !== undefined) {
      this.log.info(
        {
          database: this.where,
          channel: this.channel,
          downMs: Date.now() - this.downSince,
          attempts: this.failures,
        },
        "stream notifications: listening on Postgres again; waking every subscriber to re-read",
      );
    }
    this.failures = 0;
    this.downSince = undefined;
    this.startHealthCheck();
    if (wake) this.wakeAll();
  }

  private lost(client: pg.Client, err: unknown): void {
    if (client !== this.client) return;
    this.client = undefined;
    this.stopHealthCheck();
    void this.end(client);
    if (this.closed) return;
    this.downSince = Date.now();
    this.lastFaultLogAt = this.downSince;
    this.log.warn(
      { err, database: this.where, channel: this.channel },
      "stream notifications: the LISTEN connection to Postgres was lost; reconnecting",
    );
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    const base = Math.min(this.reconnectMaxMs, this.reconnectMinMs * 2 ** Math.min(this.failures, 20));
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.listen(true);
    }, delay);
    this.reconnectTimer.unref();
  }

  private startHealthCheck(): void {
    if (this.healthCheckMs <= 0) return;
    this.stopHealthCheck();
    this.healthTimer = setInterval(() => void this.probe(), this.healthCheckMs);
    this.healthTimer.unref();
  }

  private stopHealthCheck(): void {
    clearInterval(this.healthTimer);
    this.healthTimer = undefined;
  }

  /** A LISTEN connection that stops answering is treated as lost. */
  private async probe(): Promise<void> {
    const client = this.client;
    if (!client || this.probing) return;
    this.probing = true;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        client.query("SELECT 1"),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer to a probe within ${this.connectTimeoutMs} ms`)),
            this.connectTimeoutMs,
          );
        }),
      ]);
    } catch (e) {
      this.lost(client, e);
    } finally {
      clearTimeout(timer);
      this.probing = false;
    }
  }

  /** Ends a listening client without waiting for ever on a dead socket. */
  private async end(client: pg.Client): Promise<void> {
    client.removeAllListeners("notification");
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      client.end().catch(() => undefined),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.connectTimeoutMs);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
  }
}

/** The server process id of a pooled connection (pg sets it at startup; not in its typings). */
function backendPid(client: pg.PoolClient): number | undefined {
  const pid = (client as unknown as { processID?: unknown }).processID;
  return typeof pid === "number" ? pid : undefined;
}
