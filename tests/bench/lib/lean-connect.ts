import { connect, type Socket } from "node:net";
import { create, type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import type { GenService } from "@bufbuild/protobuf/codegenv2";

/**
 * A minimal Connect unary client for load generation, the way pgbench is a minimal libpq client:
 * binary Connect over plain keep-alive HTTP/1.1 connections written and read by hand (one call in
 * flight per connection, connections reused), no interceptors, no abort signals, no stream
 * machinery. It speaks exactly the protocol the SDK speaks (POST /<service>/<method>,
 * `application/proto`, `connect-protocol-version: 1`, a content-length), so the server does the
 * same work; it only spends less of the shared CPUs on the client side. It understands the
 * answers this server gives (a status line, headers with a content-length, the body) and refuses
 * anything else. An error answer throws with the server's JSON error body.
 */
export function leanConnect(baseUrl: string) {
  const url = new URL(baseUrl);
  const host = url.hostname;
  const port = Number(url.port);
  const idle: Connection[] = [];
  const exchange = async (head: string, path: string, body: Uint8Array): Promise<Buffer> => {
    const c = idle.pop() ?? (await Connection.open(host, port));
    const res = await c.call(Buffer.from(head, "latin1"), body);
    idle.push(c);
    if (res.status === 200) return res.body;
    throw new Error(`${path}: HTTP ${res.status} ${res.body.toString("utf8")}`);
  };
  const post = (path: string, body: Uint8Array) =>
    exchange(
      `POST ${path} HTTP/1.1\r\nhost: ${url.host}\r\ncontent-type: application/proto\r\nconnect-protocol-version: 1\r\ncontent-length: ${body.byteLength}\r\n\r\n`,
      path,
      body,
    );
  const none = new Uint8Array();

  /** A typed unary call of `method` on `service`; `.get(path)` is a plain GET for baselines. */
  return Object.assign(unary, {
    get: (path: string) => exchange(`GET ${path} HTTP/1.1\r\nhost: ${url.host}\r\n\r\n`, path, none),
  });

  function unary<I extends DescMessage, O extends DescMessage>(
    service: GenService<Record<string, unknown>>,
    method: string,
    input: I,
    output: O,
  ) {
    const path = `/${service.typeName}/${method}`;
    return {
      encode: (value: Parameters<typeof create<I>>[1]) => toBinary(input, create(input, value)),
      call: async (body: Uint8Array): Promise<MessageShape<O>> => fromBinary(output, await post(path, body)),
    };
  }
}

interface Answer {
  readonly status: number;
  readonly body: Buffer;
}

const HEADER_END = Buffer.from("\r\n\r\n");
const CONTENT_LENGTH = /\r\ncontent-length: *(\d+)/i;

/** One keep-alive HTTP/1.1 connection with at most one request in flight. */
class Connection {
  private buffered: Buffer = Buffer.alloc(0);
  private waiting: { resolve(a: Answer): void; reject(e: Error): void } | undefined;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on("data", (d: Buffer) => this.onData(d));
    const fail = (e: Error) => {
      const w = this.waiting;
      this.waiting = undefined;
      w?.reject(e);
    };
    socket.on("error", fail);
    socket.on("close", () => fail(new Error("connection closed by the server")));
  }

  static open(host: string, port: number): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const s = connect({ host, port }, () => resolve(new Connection(s)));
      s.once("error", reject);
    });
  }

  call(head: Buffer, body: Uint8Array): Promise<Answer> {
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.socket.cork();
      this.socket.write(head);
      this.socket.write(body);
      this.socket.uncork();
    });
  }

  private onData(d: Buffer): void {
    this.buffered = this.buffered.length === 0 ? d : Buffer.concat([this.buffered, d]);
    const end = this.buffered.indexOf(HEADER_END);
    if (end < 0) return;
    const head = this.buffered.toString("latin1", 0, end);
    const length = CONTENT_LENGTH.exec(head);
    const w = this.waiting;
    if (!length || !head.startsWith("HTTP/1.1 ")) {
      this.waiting = undefined;
      w?.reject(new Error(`unexpected answer without a content-length: ${head.slice(0, 200)}`));
      this.socket.destroy();
      return;
    }
    const total = end + HEADER_END.length + Number(length[1]);
    if (this.buffered.length < total) return;
    const status = Number(head.slice(9, 12));
    const body = this.buffered.subarray(end + HEADER_END.length, total);
    this.buffered = this.buffered.subarray(total);
    this.waiting = undefined;
    w?.resolve({ status, body });
  }
}
