import { connect, type Socket } from "node:net";
import { create, type DescMessage, fromBinary, isMessage, toBinary } from "@bufbuild/protobuf";
import { appendHeaders, Code, ConnectError, type Transport } from "@connectrpc/connect";
import {
  errorFromJsonBytes,
  trailerDemux,
  validateResponseWithCompression,
} from "@connectrpc/connect/protocol-connect";

/**
 * A Connect transport whose unary calls are written and read by hand over keep-alive HTTP/1.1
 * connections (binary protobuf, one call in flight per connection, idle connections reused);
 * streaming calls go to `fallback`. For the control plane's calls to tier agents, which are
 * small, frequent and unary: connect-node's transport spends most of such a call on machinery
 * it does not need here (a ClientRequest, abort controllers linked per call and aborted at its
 * end, async iterables), which was a tenth of the API's CPU under allocation load.
 *
 * What a caller sees is what connect-node's Connect transport gives it: the same request on the
 * wire (POST /<service>/<method>, `application/proto`, `connect-protocol-version: 1`,
 * `connect-timeout-ms`), the same answers (message, headers, `trailer-` headers as trailers,
 * JSON errors as ConnectErrors with their details and metadata, other HTTP statuses by their
 * code), DEADLINE_EXCEEDED "the operation timed out" past `timeoutMs`, the signal's reason as
 * CANCELED, and connection faults as UNAVAILABLE (refused, not found, timed out) or ABORTED
 * (reset, closed mid-answer). http1-unary-transport.int.test.ts holds the two to that.
 *
 * A call that finds its reused connection closed before any answer byte (the server let it go
 * idle at that moment; a Node server closes only connections with no request in progress) is
 * sent once more on a new connection. Interceptors are not supported: use the fallback for that.
 */
export interface Http1UnaryTransportOptions {
  /** `http://host:port`, optionally with a path prefix. */
  readonly baseUrl: string;
  /** For streaming methods. */
  readonly fallback: Transport;
  /**
   * Largest answer body accepted, as connect's readMaxBytes (default as connect's: 0xffffffff;
   * ListRegions of an agent holding many regions is large).
   */
  readonly readMaxBytes?: number;
  /** An idle connection is closed after this long (default 4 s, under Node's 5 s keepAliveTimeout). */
  readonly idleTimeoutMs?: number;
  /**
   * Headers sent with every unary call (an agent token's `authorization`); a caller's header of
   * the same name is sent instead. The fallback needs its own (an interceptor).
   */
  readonly headers?: Readonly<Record<string, string>>;
}

const DEFAULT_READ_MAX_BYTES = 0xffffffff;
const MAX_HEAD_BYTES = 64 * 1024;
const HEAD_END = Buffer.from("\r\n\r\n");
/** Request headers the transport writes itself; a caller's own are left out (connect-node overrides them). */
const RESERVED = new Set([
  "host",
  "content-type",
  "content-length",
  "connect-protocol-version",
  "connect-timeout-ms",
  "transfer-encoding",
  "connection",
]);
const CRLF = Buffer.from("\r\n");

export function createHttp1UnaryTransport(o: Http1UnaryTransportOptions): Transport {
  const url = new URL(o.baseUrl);
  if (url.protocol !== "http:") {
    throw new ConnectError(`HTTP/1.1 unary transport takes http: URLs, got ${o.baseUrl}`, Code.Internal);
  }
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const port = Number(url.port || 80);
  const prefix = url.pathname.replace(/\/$/, "");
  const readMaxBytes = o.readMaxBytes ?? DEFAULT_READ_MAX_BYTES;
  const idleTimeoutMs = o.idleTimeoutMs ?? 4_000;
  const idle: Http1Connection[] = [];
  const fixed = new Headers(o.headers);
  for (const name of RESERVED) fixed.delete(name);
  let fixedHead = "";
  fixed.forEach((value, name) => {
    fixedHead += `${name}: ${value}\r\n`;
  });

  const release = (c: Http1Connection) => {
    if (!c.reusable()) {
      c.close();
      return;
    }
    idle.push(c);
    c.idle(idleTimeoutMs, () => {
      const i = idle.indexOf(c);
      if (i >= 0) idle.splice(i, 1);
    });
  };

  async function exchange(head: Buffer, body: Uint8Array, stop: Stop): Promise<Answer> {
    for (;;) {
      const reused = idle.pop();
      const c = reused ?? (await Http1Connection.open(host, port, stop));
      try {
        const answer = await c.call(head, body, readMaxBytes, stop);
        release(c);
        return answer;
      } catch (e) {
        c.close();
        if (e instanceof ClosedBeforeAnswer) {
          if (reused) continue;
          throw new ConnectError(e.message, Code.Aborted, undefined, undefined, e);
        }
        throw e;
      }
    }
  }

  return {
    async unary(method, signal, timeoutMs, header, message) {
      const t = timeoutMs === undefined || timeoutMs <= 0 ? undefined : timeoutMs;
      const stop = new Stop(signal, t);
      try {
        const stopped = stop.reason();
        if (stopped) throw stopped;
        const input: DescMessage = method.input;
        const body = toBinary(input, isMessage(message, input) ? message : create(input, message));
        let head = `POST ${prefix}/${method.parent.typeName}/${method.name} HTTP/1.1\r\nhost: ${url.host}\r\ncontent-type: application/proto\r\nconnect-protocol-version: 1\r\ncontent-length: ${body.byteLength}\r\n`;
        if (t !== undefined) head += `connect-timeout-ms: ${t}\r\n`;
        if (header === undefined) head += fixedHead;
        else {
          const own = new Headers(header);
          fixed.forEach((value, name) => {
            if (!own.has(name)) head += `${name}: ${value}\r\n`;
          });
          own.forEach((value, name) => {
            if (!RESERVED.has(name)) head += `${name}: ${value}\r\n`;
          });
        }
        const answer = await exchange(Buffer.from(`${head}\r\n`, "latin1"), body, stop);
        const { isUnaryError, unaryError } = validateResponseWithCompression(
          method.methodKind,
          [],
          true,
          answer.status,
          answer.headers,
        );
        const [resHeader, trailer] = trailerDemux(answer.headers);
        if (isUnaryError) {
          throw errorFromJsonBytes(answer.body, appendHeaders(resHeader, trailer), unaryError!);
        }
        let output: ReturnType<typeof fromBinary>;
        try {
          // A copy: bytes fields are views of the buffer they were read from, which should be
          // a plain Uint8Array of this message alone (as connect-node gives), not a Buffer
          // view of the socket's read chunk.
          output = fromBinary(method.output, new Uint8Array(answer.body));
        } catch (e) {
          throw new ConnectError(
            `parse binary: ${e instanceof Error ? e.message : String(e)}`,
            Code.Internal,
          );
        }
        return {
          stream: false as const,
          service: method.parent,
          method,
          header: resHeader,
          // biome-ignore lint/suspicious/noExplicitAny: the output type of this method
          message: output as any,
          trailer,
        };
      } catch (e) {
        throw stop.reason() ?? ConnectError.from(e);
      } finally {
        stop.done();
      }
    },
    stream(method, signal, timeoutMs, header, input, contextValues) {
      return o.fallback.stream(method, signal, timeoutMs, header, input, contextValues);
    },
  };
}

/** The call's end from outside: its signal aborted or its deadline passed. */
class Stop {
  private timer: NodeJS.Timeout | undefined;
  private stopped: ConnectError | undefined;
  private onStop: (() => void) | undefined;
  private readonly onAbort = () => this.stop(ConnectError.from(this.signal?.reason, Code.Canceled));

  constructor(
    private readonly signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
  ) {
    if (signal?.aborted) this.stopped = ConnectError.from(signal.reason, Code.Canceled);
    else signal?.addEventListener("abort", this.onAbort);
    if (timeoutMs !== undefined && !this.stopped) {
      this.timer = setTimeout(
        () => this.stop(new ConnectError("the operation timed out", Code.DeadlineExceeded)),
        timeoutMs,
      );
    }
  }

  /** Why the call was stopped, if it was. */
  reason(): ConnectError | undefined {
    return this.stopped;
  }

  /** `fn` runs when the call is stopped (now, if it already was); one at a time. */
  watch(fn: (() => void) | undefined): void {
    this.onStop = fn;
    if (fn && this.stopped) fn();
  }

  done(): void {
    clearTimeout(this.timer);
    this.signal?.removeEventListener("abort", this.onAbort);
  }

  private stop(e: ConnectError): void {
    if (this.stopped) return;
    this.stopped = e;
    this.onStop?.();
  }
}

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Buffer;
}

/** The reused connection was closed before any byte of the answer arrived. */
class ClosedBeforeAnswer extends Error {}

/** A Node socket error as connect-node reports it. */
function socketError(e: NodeJS.ErrnoException): ConnectError {
  const code = ["ETIMEDOUT", "ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED"].includes(e.code ?? "")
    ? Code.Unavailable
    : e.code === "ECONNRESET" || e.code === "EPIPE"
      ? Code.Aborted
      : Code.Internal;
  return ConnectError.from(e, code);
}

const protocolError = (what: string) => new ConnectError(`protocol error: ${what}`, Code.Internal);

/** One keep-alive HTTP/1.1 connection with at most one call in flight. */
class Http1Connection {
  /** Bytes received and not yet consumed, joined into one buffer only when a parse needs them. */
  private parts: Buffer[] = [];
  private size = 0;
  /** Unconsumed bytes the next parse step needs before it can make progress. */
  private need = 1;
  private got = 0;
  private current: CallState | undefined;
  private keepAlive = true;
  private closed = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private onIdleGone: (() => void) | undefined;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on("data", (d: Buffer) => this.onData(d));
    socket.on("error", (e) => this.fail(socketError(e), e));
    socket.on("close", () => {
      this.closed = true;
      this.fail(undefined, undefined);
    });
  }

  static open(host: string, port: number, stop: Stop): Promise<Http1Connection> {
    return new Promise((resolve, reject) => {
      const s = connect({ host, port });
      const onError = (e: NodeJS.ErrnoException) => {
        stop.watch(undefined);
        reject(socketError(e));
      };
      s.once("error", onError);
      s.once("connect", () => {
        stop.watch(undefined);
        s.off("error", onError);
        resolve(new Http1Connection(s));
      });
      stop.watch(() => {
        s.destroy();
        reject(stop.reason());
      });
    });
  }

  reusable(): boolean {
    return this.keepAlive && !this.closed && this.size === 0;
  }

  /**
   * Waits for the next call without keeping the process alive (as Node's keep-alive agent does
   * with its free sockets); `onGone` runs if the connection closes or times out meanwhile.
   */
  idle(timeoutMs: number, onGone: () => void): void {
    this.socket.unref();
    this.onIdleGone = onGone;
    this.idleTimer = setTimeout(() => {
      onGone();
      this.close();
    }, timeoutMs);
    this.idleTimer.unref();
  }

  close(): void {
    clearTimeout(this.idleTimer);
    this.closed = true;
    this.socket.destroy();
  }

  call(head: Buffer, body: Uint8Array, readMaxBytes: number, stop: Stop): Promise<Answer> {
    clearTimeout(this.idleTimer);
    this.onIdleGone = undefined;
    this.socket.ref();
    return new Promise<Answer>((resolve, reject) => {
      if (this.closed) {
        reject(new ClosedBeforeAnswer("connection closed"));
        return;
      }
      this.got = 0;
      this.need = 1;
      this.current = { resolve, reject, readMaxBytes, parsed: undefined, chunks: [], chunkBytes: 0 };
      stop.watch(() => {
        this.current = undefined;
        this.close();
        reject(stop.reason());
      });
      if (!this.current) return;
      // A failed write surfaces as the socket's error event.
      this.socket.cork();
      this.socket.write(head);
      this.socket.write(body);
      this.socket.uncork();
    }).finally(() => stop.watch(undefined));
  }

  private fail(e: ConnectError | undefined, cause: unknown): void {
    const c = this.current;
    this.current = undefined;
    if (!c) {
      // Closed while idle: leave the pool.
      this.closed = true;
      clearTimeout(this.idleTimer);
      this.onIdleGone?.();
      this.onIdleGone = undefined;
      return;
    }
    if (this.got === 0 && (e === undefined || e.code === Code.Aborted)) {
      c.reject(new ClosedBeforeAnswer("connection closed before the answer", { cause }));
      return;
    }
    if (c.parsed?.framing === "close" && e === undefined) {
      this.finish(c, c.parsed, this.take(this.size));
      return;
    }
    c.reject(e ?? new ConnectError("connection closed before the whole answer arrived", Code.Aborted));
  }

  private onData(d: Buffer): void {
    this.got += d.byteLength;
    this.parts.push(d);
    this.size += d.byteLength;
    const c = this.current;
    if (!c) {
      // Bytes nobody asked for: the connection cannot be trusted with another call.
      this.close();
      return;
    }
    if (this.size < this.need) return;
    try {
      this.advance(c);
    } catch (e) {
      this.current = undefined;
      this.close();
      c.reject(e);
    }
  }

  /** The unconsumed bytes as one buffer (joined once, kept joined). */
  private peek(): Buffer {
    if (this.parts.length !== 1) this.parts = [this.parts.length === 0 ? EMPTY : Buffer.concat(this.parts)];
    return this.parts[0]!;
  }

  /** Consumes and returns the next `n` bytes (n ≤ size). */
  private take(n: number): Buffer {
    const all = this.peek();
    const out = all.subarray(0, n);
    this.parts = n === all.length ? [] : [all.subarray(n)];
    this.size -= n;
    return out;
  }

  /** Parses what has arrived; settles the call once the whole answer is here. */
  private advance(c: CallState): void {
    this.need = 1;
    while (!c.parsed) {
      const buf = this.peek();
      // A status line that cannot become HTTP/1.x is refused as soon as it shows.
      const start = buf.toString("latin1", 0, Math.min(buf.length, STATUS_PREFIX.length));
      if (!STATUS_PREFIX.startsWith(start))
        throw protocolError(`not an HTTP/1.x answer: ${JSON.stringify(start)}`);
      const end = buf.indexOf(HEAD_END);
      if (end < 0) {
        if (buf.length > MAX_HEAD_BYTES) throw protocolError("answer head too large");
        this.need = this.size + 1;
        return;
      }
      const head = parseHead(this.take(end + HEAD_END.length).toString("latin1", 0, end), c.readMaxBytes);
      // 1xx answers (100 Continue, 103 Early Hints) come before the real one.
      if (head.status >= 100 && head.status < 200) continue;
      c.parsed = head;
      if (!head.keepAlive) this.keepAlive = false;
    }
    const p = c.parsed;
    if (p.framing === "length") {
      if (this.size < p.length) {
        this.need = p.length;
        return;
      }
      this.finish(c, p, this.take(p.length));
    } else if (p.framing === "chunked") {
      const body = this.readChunks(c);
      if (body) this.finish(c, p, body);
    } else if (this.size > c.readMaxBytes) {
      throw tooLarge(c.readMaxBytes);
    } else {
      this.need = Number.POSITIVE_INFINITY; // until the server closes
    }
  }

  /** Reads the complete chunks that have arrived; the body once the last one has. */
  private readChunks(c: CallState): Buffer | undefined {
    for (;;) {
      const buf = this.peek();
      const eol = buf.indexOf(CRLF);
      if (eol < 0) {
        if (buf.length > 1024) throw protocolError("chunk size line too long");
        this.need = this.size + 1;
        return undefined;
      }
      const sizeText = buf.toString("latin1", 0, eol).split(";")[0]!.trim();
      if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) throw protocolError(`bad chunk size ${sizeText}`);
      const size = Number.parseInt(sizeText, 16);
      if (size === 0) {
        // The last chunk, then trailer fields (none expected) and an empty line.
        const bare = buf.length >= eol + 4 && buf[eol + 2] === 13 && buf[eol + 3] === 10;
        const end = bare ? eol : buf.indexOf(HEAD_END, eol);
        if (end < 0) {
          this.need = this.size + 1;
          return undefined;
        }
        this.take(end + HEAD_END.length);
        return c.chunks.length === 1 ? c.chunks[0]! : Buffer.concat(c.chunks);
      }
      if (buf.length < eol + 2 + size + 2) {
        this.need = eol + 2 + size + 2;
        return undefined;
      }
      c.chunkBytes += size;
      if (c.chunkBytes > c.readMaxBytes) throw tooLarge(c.readMaxBytes);
      c.chunks.push(this.take(eol + 2 + size + 2).subarray(eol + 2, eol + 2 + size));
    }
  }

  private finish(c: CallState, p: ParsedHead, body: Buffer): void {
    this.current = undefined;
    if (p.framing === "close") this.keepAlive = false;
    c.resolve({ status: p.status, headers: p.headers, body });
  }
}

const EMPTY = Buffer.alloc(0);
const STATUS_PREFIX = "HTTP/1.";

interface CallState {
  resolve(a: Answer): void;
  reject(e: unknown): void;
  readonly readMaxBytes: number;
  parsed: ParsedHead | undefined;
  /** Chunked bodies: the chunks read so far, and their bytes. */
  readonly chunks: Buffer[];
  chunkBytes: number;
}

interface ParsedHead {
  readonly status: number;
  readonly headers: Headers;
  readonly keepAlive: boolean;
  readonly framing: "length" | "chunked" | "close";
  readonly length: number;
}

const tooLarge = (max: number) =>
  new ConnectError(`message size is larger than configured readMaxBytes ${max}`, Code.ResourceExhausted);

function parseHead(text: string, readMaxBytes: number): ParsedHead {
  const lines = text.split("\r\n");
  const status = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(lines[0] ?? "");
  if (!status) throw protocolError(`not an HTTP/1.x status line: ${JSON.stringify(lines[0]?.slice(0, 80))}`);
  const headers = new Headers();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(":");
    if (colon <= 0) throw protocolError(`malformed header line ${JSON.stringify(line.slice(0, 80))}`);
    headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  const connection = headers.get("connection")?.toLowerCase() ?? "";
  const keepAlive = status[1] === "1" ? !connection.includes("close") : connection.includes("keep-alive");
  const te = headers.get("transfer-encoding");
  const cl = headers.get("content-length");
  const code = Number(status[2]);
  let framing: ParsedHead["framing"];
  let length = 0;
  if (code === 204 || code === 304) framing = "length";
  else if (te !== null) {
    if (te.toLowerCase() !== "chunked") throw protocolError(`unsupported transfer-encoding ${te}`);
    framing = "chunked";
  } else if (cl !== null) {
    if (!/^\d+$/.test(cl)) throw protocolError(`bad content-length ${cl}`);
    length = Number(cl);
    if (length > readMaxBytes) throw tooLarge(readMaxBytes);
    framing = "length";
  } else framing = "close";
  return { status: code, headers, keepAlive, framing, length };
}
