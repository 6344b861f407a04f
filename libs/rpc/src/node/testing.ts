import { once } from "node:events";
import http, { request } from "node:http";
import type { AddressInfo } from "node:net";

/** An HTTP answer as the wire carried it. */
export interface RawAnswer {
  readonly status: number;
  readonly contentType: string | undefined;
  readonly body: Buffer;
}

/**
 * POSTs `body` as a binary Connect unary call (`application/proto` with its content-length) and
 * returns the answer as it came: for tests that compare the fast path with the Connect adapter
 * byte for byte. A header given as `null` is left out (content-length, to send chunked).
 */
export function postProto(
  baseUrl: string,
  path: string,
  body: Uint8Array,
  headers: Record<string, string | null> = {},
): Promise<RawAnswer> {
  const url = new URL(baseUrl);
  const all: Record<string, string | null> = {
    "content-type": "application/proto",
    "content-length": String(body.byteLength),
    ...headers,
  };
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method: "POST",
        path,
        headers: Object.fromEntries(Object.entries(all).filter(([, v]) => v !== null)) as Record<
          string,
          string
        >,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode!,
            contentType: res.headers["content-type"],
            body: Buffer.concat(chunks),
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** Added to a call, sends it to the Connect adapter instead (the fast path leaves any content-encoding to it). */
export const VIA_ADAPTER = { "content-encoding": "identity" } as const;

/**
 * POSTs the same call twice — through the fast path, then to the adapter (VIA_ADAPTER) — and
 * returns the fast path's answer; throws, failing the test, unless both answers have the same
 * status, content type and bytes.
 */
export async function postBothWays(
  baseUrl: string,
  path: string,
  body: Uint8Array,
  headers: Record<string, string | null> = {},
): Promise<RawAnswer> {
  const fast = await postProto(baseUrl, path, body, headers);
  const adapter = await postProto(baseUrl, path, body, { ...headers, ...VIA_ADAPTER });
  const show = (a: RawAnswer) => `${a.status} ${a.contentType} ${a.body.toString("hex")}`;
  if (show(fast) !== show(adapter)) {
    throw new Error(`${path}: the fast path answered ${show(fast)}, the adapter ${show(adapter)}`);
  }
  return fast;
}

/** An HTTP/1.1 server on a free loopback port, for tests; `close` ends its connections too. */
export async function serveOnLoopback(
  handler: http.RequestListener,
): Promise<{ readonly baseUrl: string; close(): Promise<void> }> {
  const server = http.createServer(handler);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
