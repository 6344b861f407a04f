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
  type ContextValues,
  type HandlerContext,
} from "@connectrpc/connect";
import { createDeadlineSignal } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";

export type FastRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type FastResponse = http.ServerResponse | http2.Http2ServerResponse;

type UnaryImpl = (input: unknown, ctx: HandlerContext) => Promise<unknown>;

/** One unary method the fast path serves. */
export interface UnaryEntry {
  readonly service: DescService;
  readonly method: DescMethod;
  readonly impl: UnaryImpl;
}

/** What a server adds around one call, set up when its body has been decoded. */
export interface FastCall {
  /** Context values for the implementation (the API: the caller's namespace); may throw (auth). */
  values(): ContextValues;
  /** The error to answer for what `values` or the implementation threw. */
  toError(e: unknown): ConnectError;
}

/** What a server adds around each call (the API: authentication, error mapping, metrics). */
export interface FastPathHooks {
  readonly begin: (entry: UnaryEntry, req: FastRequest) => FastCall;
  /** After each call that got past decoding, with its outcome (for metrics). */
  readonly done?: (entry: UnaryEntry, code: Code | undefined, seconds: number) => void;
  /** A fault in writing an answer: the call is lost, the connection is closed after this. */
  readonly onWriteFault: (e: unknown) => void;
}

const NEVER_ABORTED = new AbortController().signal;

/**
 * What the Connect adapter answers for an error an implementation threw: a ConnectError as it
 * is, anything else as INTERNAL "internal error" (the cause kept, not sent). For servers without
 * error mapping of their own.
 */
export const adapterError = (e: unknown): ConnectError =>
  e instanceof ConnectError ? e : new ConnectError("internal error", Code.Internal, undefined, undefined, e);
const JSON_OPTIONS = { alwaysEmitImplicit: true };

/**
 * The common case of the Connect protocol served without the generic adapter: a unary call with
 * a binary body (`application/proto`, with a `content-length` or chunked), no compression
 * header. The Node Connect adapter spends most of a small call on machinery this case
 * does not need (abort controllers and their DOMExceptions, async iterables, header objects);
 * here the body is read, decoded, given to the same service implementation, and the answer or
 * the error written in the same bytes the adapter writes. A `connect-timeout-ms` deadline is
 * the call's signal, as in the adapter. Everything else — JSON, gRPC-Web, streams, compression,
 * a malformed deadline, a declared length over the limit, a method not registered —
 * returns false and goes to the adapter. The servers using it hold the two paths to the same
 * answers with differential tests (apps/api unary-fast-path.int.test.ts, apps/tier-agent).
 *
 * `register` registers the services as for a ConnectRouter; only their unary methods are taken.
 */
export function unaryFastPath(
  register: (router: ConnectRouter) => void,
  maxBodyBytes: number,
  hooks: FastPathHooks,
): (req: FastRequest, res: FastResponse) => boolean {
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
  register(collector as unknown as ConnectRouter);

  return function serve(req, res) {
    const h = req.headers;
    if (req.method !== "POST" || h["content-type"] !== "application/proto") return false;
    if (h["content-encoding"] || h["connect-content-encoding"]) return false;
    // A deadline the adapter would accept becomes the call's signal, as the adapter makes it; a
    // malformed one is the adapter's to refuse.
    const timeout = h["connect-timeout-ms"];
    if (timeout !== undefined && (typeof timeout !== "string" || !/^\d{1,10}$/.test(timeout))) return false;
    // A known length over the limit is the adapter's to refuse (its message names the size).
    const length = h["content-length"] === undefined ? undefined : Number(h["content-length"]);
    if (length !== undefined && (!Number.isSafeInteger(length) || length > maxBodyBytes)) return false;
    const entry = table.get(req.url ?? "");
    if (!entry) return false;
    handle(entry, req, res, length, timeout === undefined ? undefined : Number(timeout)).catch(
      (e: unknown) => {
        hooks.onWriteFault(e);
        res.destroy();
      },
    );
    return true;
  };

  async function handle(
    entry: UnaryEntry,
    req: FastRequest,
    res: FastResponse,
    length: number | undefined,
    timeoutMs: number | undefined,
  ): Promise<void> {
    // As in the adapter: the body is read and decoded before the call (and its interceptors)
    // begins; what fails here is answered but not reported to `done`, and a client that went
    // away mid-body gets nothing.
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
    const fast = hooks.begin(entry, req);
    const deadline = timeoutMs === undefined ? undefined : createDeadlineSignal(timeoutMs);
    let code: Code | undefined;
    try {
      const call = handlerContext(entry, req, fast.values(), deadline?.signal, timeoutMs);
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
      const err = fast.toError(e);
      code = err.code;
      writeError(res, err);
    } finally {
      deadline?.cleanup();
      hooks.done?.(entry, code, (performance.now() - started) / 1000);
    }
  }
}

/** A Connect unary error answer, as the adapter writes it. */
function writeError(res: FastResponse, err: ConnectError): void {
  const body = errorToJsonBytes(err, JSON_OPTIONS);
  const headers: Record<string, string | number> = { "content-type": "application/json" };
  err.metadata.forEach((value, key) => {
    headers[key] = value;
  });
  headers["content-length"] = body.byteLength;
  if (!res.headersSent) (res as http.ServerResponse).writeHead(codeToHttpStatus(err.code), headers);
  res.end(body);
}

/**
 * The body: `length` bytes when the client said how many (a shorter one, from a broken client,
 * fails the call), else chunks up to `maxBytes`, refused past that as the adapter refuses them.
 */
function readBody(req: FastRequest, length: number | undefined, maxBytes: number): Promise<Uint8Array> {
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
 * What a service implementation may read of its call. Header objects are built only if
 * something asks for them, and what an implementation sets on them is sent as the adapter would
 * (trailers as `trailer-` headers).
 */
function handlerContext(
  entry: UnaryEntry,
  req: FastRequest,
  values: ContextValues,
  signal: AbortSignal | undefined,
  timeoutMs: number | undefined,
) {
  const due = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
  let requestHeader: Headers | undefined;
  let responseHeader: Headers | undefined;
  let responseTrailer: Headers | undefined;
  const ctx = {
    method: entry.method,
    service: entry.service,
    requestMethod: "POST",
    protocolName: "connect",
    url: req.url ?? "",
    signal: signal ?? NEVER_ABORTED,
    timeoutMs: () => (due === undefined ? undefined : due - Date.now()),
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
    values,
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
