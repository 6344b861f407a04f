import { Agent, request } from "node:http";
import { create, type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import type { GenService } from "@bufbuild/protobuf/codegenv2";

/**
 * A minimal Connect unary client for load generation, the way pgbench is a minimal libpq client:
 * binary Connect over node:http with keep-alive, no interceptors, no abort signals, no stream
 * machinery. It speaks exactly the protocol the SDK speaks (POST /<service>/<method>,
 * `application/proto`, `connect-protocol-version: 1`), so the server does the same work; it
 * only spends less of the shared CPUs on the client side. An error answer throws with the
 * server's JSON error body.
 */
export function leanConnect(baseUrl: string) {
  const url = new URL(baseUrl);
  const agent = new Agent({ keepAlive: true });
  const post = (path: string, body: Uint8Array) =>
    new Promise<Buffer>((resolve, reject) => {
      const req = request(
        {
          agent,
          host: url.hostname,
          port: url.port,
          method: "POST",
          path,
          headers: {
            "content-type": "application/proto",
            "connect-protocol-version": "1",
            "content-length": body.byteLength,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
            if (res.statusCode === 200) resolve(data);
            else reject(new Error(`${path}: HTTP ${res.statusCode} ${data.toString("utf8")}`));
          });
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(body);
    });

  /** A typed unary call of `method` on `service`. */
  return function unary<I extends DescMessage, O extends DescMessage>(
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
  };
}
