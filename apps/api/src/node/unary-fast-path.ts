import type http from "node:http";
import type http2 from "node:http2";
import {
  create,
  type DescMessage,
  type DescMethod,
  type DescService,
  fromBinary,
  isMessage,
  toBinary,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createContextValues,
  type HandlerContext,
} from "@connectrpc/connect";
import { codeToHttpStatus, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { kRequest } from "../rpc/context.ts";
import { codeName, toConnectError } from "../rpc/errors.ts";
import { authenticate, type RpcDeps, registerServices } from "../rpc/router.ts";

type Request = http.IncomingMessage | http2.Http2ServerRequest;
type Response = http.ServerResponse | http2.Http2ServerResponse;

type UnaryImpl = (input: unknown, ctx: HandlerContext) => Promise<unknown>;

interface UnaryEntry {
  readonly service: DescService;
  readonly method: DescMethod;
  readonly impl: UnaryImpl;
}

const NEVER_ABORTED = new AbortController().signal;

/**
 * The common case of the Connect protocol served without the generic adapter: a unary call with
 * a binary body (`application/proto`, with a `content-length` or chunked), no compression, no
 * deadline header. The Node Connect adapter spends most of a small call on machinery this case
 * does not need (abort controllers and their DOMExceptions, async iterables, header objects);
 * here the body is read, decoded, given to the same service implementation, and the answer or
 * the error written in the same bytes the adapter writes, with the same authentication, error
 * mapping and metrics as the interceptor (rpc/router.ts). Everything else — JSON, gRPC-Web,
 * streams, compression, deadlines, a declared length over the limit — returns false
 * and goes to the adapter. unary-fast-path.int.test.ts holds the two paths to the same answers.
 */
export function unaryFastPath(deps: RpcDeps, maxBodyBytes: number) {
  const table = new Map<string, UnaryEntry>();
  const collector = {
    service(service: DescService, impl: Record<string, UnaryImpl>) {
      for (const method of service.methods) {
        const fn = impl[method.localName];
        if (method.methodKind === "unary" && fn) {
          table.set(`/${service.typeName}/${method.name}`, { service, method, impl: fn.bind(impl) });
        }
      }
      return collector;
    },
  };
  registerServices(collector as unknown as ConnectRouter, deps);
  const jsonOptions = { alwaysEmitImplicit: true };

  /** Serves the call and returns true, or returns false without touching it. */
  return function serve(req: Request, res: Response): boolean {
    const h = req.headers;
    if (req.method !== "POST" || h["content-type"] !== "application/proto") return false;
    if (h["content-encoding"] || h["connect-content-encoding"] || h["connect-timeout-ms"]) return false;
    // A known length over the limit is the adapter's to refuse (its message names the size).
    const length = h["content-length"] === undefined ? undefined : Number(h["content-length"]);
    if (length !== undefined && (!Number.isSafeInteger(length) || length > maxBodyBytes)) return false;
    const entry = table.get(req.url ?? "");
    if (!entry) return false;
    handle(entry, req, res, length).catch((e: unknown) => {
      // Only a fault in writing the answer or in logging gets here: the call is lost either way.
      deps.log.error({ err: e }, "unary fast path failed to answer; closing the connection");
      res.destroy();
    });
    return true;
  };

  async function handle(
    entry: UnaryEntry,
    req: Request,
    res: Response,
    length: number | undefined,
  ): Promise<void> {
    // As in the adapter: the body is read and decoded before the call (and its interceptor:
    // authentication, metrics, logs) begins; what fails here is answered but neither counted nor
    // logged, and a client that went away mid-body gets nothing.
    let input: unknown;
    try {
      const body = await readBody(req, length, maxBodyBytes);
      try {
        input = fromBinary(entry.method.input, body);
      } catch (e) {
        throw new ConnectError(`parse binary: ${e instanceof Error ? e.message : String(e)}`, Code.Internal);
      }
    } catch (e) {
      if (e instanceof ConnectError) writeError(res, e);
      else res.destroy();
      return;
    }
    const started = performance.now();
    const h = req.headers;
    const requestId = (h["x-request-id"] as string | undefined) || deps.newRequestId();
    let code = "OK";
    try {
      const namespace = authenticate(deps.auth, entry.service.typeName, (h.authorization as string) ?? null);
      const call = handlerContext(entry, req, namespace, requestId);
      const output = await entry.impl(input, call.ctx);
      const schema: DescMessage = entry.method.output;
      const bytes = toBinary(
        schema,
        isMessage(output, schema) ? output : create(schema, output as Record<string, unknown>),
      );
      (res as http.ServerResponse).writeHead(200, {
        ...call.setHeaders(),
        "content-type": "application/proto",
        "content-length": bytes.byteLength,
      });
      res.end(bytes);
    } catch (e) {
      const err = toConnectError(e, deps.log, requestId);
      code = codeName(err.code);
      writeError(res, err);
    } finally {
      deps.metrics.observeRequest(
        { service: entry.service.typeName, method: entry.method.name, code, transport: "connect" },
        (performance.now() - started) / 1000,
      );
    }
  }

  /** A Connect unary error answer, as the adapter writes it. */
  function writeError(res: Response, err: ConnectError): void {
    const body = errorToJsonBytes(err, jsonOptions);
    const headers: Record<string, string | number> = { "content-type": "application/json" };
    err.metadata.forEach((value, key) => {
      headers[key] = value;
    });
    headers["content-length"] = body.byteLength;
    if (!res.headersSent) (res as http.ServerResponse).writeHead(codeToHttpStatus(err.code), headers);
    res.end(body);
  }
}

/**
 * The body: `length` bytes when the client said how many (a shorter one, from a broken client,
 * fails the call), else chunks up to `maxBytes`, refused past that as the adapter refuses them.
 */
function readBody(req: Request, length: number | undefined, maxBytes: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const onData = (c: Buffer) => {
      got += c.byteLength;
      if (length === undefined && got > maxBytes) {
        req.off("data", onData);
        req.resume();
        reject(
          new ConnectError(
            `message size is larger than configured readMaxBytes ${maxBytes}`,
            Code.ResourceExhausted,
          ),
        );
        return;
      }
      chunks.push(c);
    };
    req.on("data", onData);
    req.on("end", () => {
      if (length !== undefined && got !== length) {
        reject(
          new ConnectError(`protocol error: promised ${length} bytes, received ${got}`, Code.InvalidArgument),
        );
      } else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    });
    req.on("error", reject);
  });
}

/**
 * What a service implementation may read of its call. Ours read only the request context
 * (rpc/context.ts); header objects are built only if something asks for them, and what an
 * implementation sets on them is sent as the adapter would (trailers as `trailer-` headers).
 */
function handlerContext(entry: UnaryEntry, req: Request, namespace: string, requestId: string) {
  let requestHeader: Headers | undefined;
  let responseHeader: Headers | undefined;
  let responseTrailer: Headers | undefined;
  const ctx = {
    method: entry.method,
    service: entry.service,
    requestMethod: "POST",
    protocolName: "connect",
    url: req.url ?? "",
    signal: NEVER_ABORTED,
    timeoutMs: () => undefined,
    get requestHeader() {
      requestHeader ??= new Headers(
        Object.entries(req.headers).flatMap(([k, v]) =>
          k.startsWith(":") || v === undefined
            ? []
            : [[k, Array.isArray(v) ? v.join(", ") : v] as [string, string]],
        ),
      );
      return requestHeader;
    },
    get responseHeader() {
      responseHeader ??= new Headers();
      return responseHeader;
    },
    get responseTrailer() {
      responseTrailer ??= new Headers();
      return responseTrailer;
    },
    values: createContextValues().set(kRequest, { namespace, requestId }),
  } as HandlerContext;
  const setHeaders = () => {
    const out: Record<string, string> = {};
    responseHeader?.forEach((v, k) => {
      out[k] = v;
    });
    responseTrailer?.forEach((v, k) => {
      out[`trailer-${k}`] = v;
    });
    return out;
  };
  return { ctx, setHeaders };
}
