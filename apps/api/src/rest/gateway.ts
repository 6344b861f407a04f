import {
  type DescMessage,
  type DescMethod,
  type DescService,
  getOption,
  hasOption,
  ScalarType,
} from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { createEnvelopeReadableStream, encodeEnvelope } from "@connectrpc/connect/protocol";
import { endStreamFlag } from "@connectrpc/connect/protocol-connect";
import { DomainError, idFromPathSegment, isDomainError, uuidToBytes } from "@pm/domain";
import { http } from "@pm/rpc";
import { codeName, HTTP_STATUS_OF } from "../rpc/errors.ts";

/**
 * REST/JSON per the `google.api.http` options of the schema. Every route is compiled from the
 * descriptors, turned into a Connect JSON call of the same method and answered from its result,
 * so REST shares validation, auth, metrics and the error mapping with the RPC transports.
 */
interface Route {
  readonly verb: string;
  readonly regex: RegExp;
  readonly vars: readonly string[];
  readonly bodyStar: boolean;
  readonly method: DescMethod;
  readonly rpcPath: string;
}

/** Calls a Connect handler by its RPC path with a Connect JSON request (enveloped for streams). */
export type UnaryCaller = (rpcPath: string, req: Request) => Promise<Response>;

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export function compileRoutes(services: readonly DescService[]): Route[] {
  const routes: Route[] = [];
  for (const svc of services) {
    for (const method of svc.methods) {
      if (!hasOption(method, http)) continue;
      const rule = getOption(method, http);
      const p = rule.pattern;
      if (p.case === undefined || p.case === "custom") continue;
      const vars: string[] = [];
      const source = p.value
        .split(/(\{[^}]+\})/)
        .map((part) => {
          const m = /^\{([^}=]+)\}$/.exec(part);
          if (!m) return escapeRegex(part);
          vars.push(m[1]!);
          // Empty segments are allowed: a stream in the default namespace is /v1/streams//name.
          return "([^/]*)";
        })
        .join("");
      routes.push({
        verb: p.case.toUpperCase(),
        regex: new RegExp(`^${source}$`),
        vars,
        bodyStar: rule.body === "*",
        method,
        rpcPath: `/${svc.typeName}/${method.name}`,
      });
    }
  }
  return routes;
}

function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split(".");
  let cur = obj;
  for (const part of parts.slice(0, -1)) {
    const key = camel(part);
    if (typeof cur[key] !== "object" || cur[key] === null) cur[key] = {};
    cur = cur[key] as Record<string, unknown>;
  }
  cur[camel(parts[parts.length - 1]!)] = value;
}

function decodeSegment(raw: string, field: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new DomainError(
      "INVALID_ARGUMENT",
      `path segment for ${field} has a malformed %-escape; percent-encode it as UTF-8`,
      {
        field,
      },
    );
  }
}

const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

function bytesToBase64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** Field of `msg` at a dotted path (proto or JSON names). */
function fieldAt(msg: DescMessage, path: string) {
  let cur: DescMessage | undefined = msg;
  let field: DescMessage["fields"][number] | undefined;
  for (const part of path.split(".")) {
    if (!cur) return undefined;
    field = cur.fields.find((f) => f.name === part || f.jsonName === part);
    if (!field) return undefined;
    cur = field.fieldKind === "message" ? field.message : undefined;
  }
  return field;
}

/** Converts a query-string value to the JSON the field expects. */
function queryValue(msg: DescMessage, key: string, raw: string): unknown {
  const field = fieldAt(msg, key);
  if (!field) {
    throw new DomainError("INVALID_ARGUMENT", `unknown query parameter "${key}" for this route`, {
      field: key,
    });
  }
  if (field.fieldKind === "scalar") {
    switch (field.scalar) {
      case ScalarType.BOOL:
        if (raw === "" || raw === "true" || raw === "1") return true;
        if (raw === "false" || raw === "0") return false;
        throw new DomainError("INVALID_ARGUMENT", `query parameter ${key} must be true or false`, {
          field: key,
        });
      case ScalarType.INT32:
      case ScalarType.UINT32:
      case ScalarType.SINT32:
      case ScalarType.FIXED32:
      case ScalarType.SFIXED32:
      case ScalarType.DOUBLE:
      case ScalarType.FLOAT: {
        const n = Number(raw);
        if (raw === "" || !Number.isFinite(n)) {
          throw new DomainError("INVALID_ARGUMENT", `query parameter ${key} must be a number, got "${raw}"`, {
            field: key,
          });
        }
        return n;
      }
      default:
        return raw;
    }
  }
  return raw;
}

function errorBody(code: Code, message: string, reason: string | undefined) {
  return {
    code,
    status: codeName(code),
    message,
    details: reason
      ? [{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason, domain: "payload-manager" }]
      : [],
  };
}

export function restError(status: number, code: Code, message: string, reason?: string): Response {
  return Response.json(errorBody(code, message, reason), { status });
}

const CODE_BY_CONNECT_NAME: Record<string, Code> = Object.fromEntries(
  Object.entries(Code)
    .filter(([, v]) => typeof v === "number")
    .map(([k, v]) => [k.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase(), v as Code]),
);

/**
 * Handles one REST request, or returns undefined when no route matches the path (so the caller
 * can answer 404). A path that matches with another verb is 405.
 */
export async function handleRest(
  routes: readonly Route[],
  req: Request,
  call: UnaryCaller,
): Promise<Response | undefined> {
  const url = new URL(req.url);
  const path = url.pathname;
  const matching = routes.filter((r) => r.regex.test(path));
  if (matching.length === 0) return undefined;
  const route = matching.find((r) => r.verb === req.method);
  if (!route) {
    return restError(
      405,
      Code.Unimplemented,
      `${req.method} is not allowed on ${path}; allowed: ${[...new Set(matching.map((r) => r.verb))].join(", ")}`,
    );
  }
  let json: Record<string, unknown> = {};
  try {
    if (route.bodyStar) {
      const text = await req.text();
      if (text.trim() !== "") {
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch (e) {
          throw new DomainError(
            "INVALID_ARGUMENT",
            `request body is not valid JSON (${(e as Error).message}); send a JSON object`,
          );
        }
        if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
          throw new DomainError("INVALID_ARGUMENT", "request body must be a JSON object");
        }
        json = parsed as Record<string, unknown>;
      }
    }
    const values = route.regex.exec(path)!.slice(1);
    route.vars.forEach((v, i) => {
      const raw = values[i] ?? "";
      const field = fieldAt(route.method.input, v);
      if (field?.fieldKind === "scalar" && field.scalar === ScalarType.BYTES) {
        const parent = v.split(".")[0]!;
        setPath(json, v, bytesToBase64(uuidToBytes(idFromPathSegment(raw, parent))));
      } else {
        setPath(json, v, decodeSegment(raw, v));
      }
    });
    for (const [key, raw] of url.searchParams) {
      setPath(json, key, queryValue(route.method.input, key, raw));
    }
  } catch (e) {
    if (isDomainError(e)) return restError(400, Code.InvalidArgument, e.message, e.code);
    throw e;
  }
  const headers = new Headers({ "content-type": "application/json", "x-pm-transport": "rest" });
  for (const h of ["authorization", "x-request-id", "traceparent", "tracestate", "connect-timeout-ms"]) {
    const v = req.headers.get(h);
    if (v) headers.set(h, v);
  }
  if (route.method.methodKind === "server_streaming") {
    headers.set("content-type", "application/connect+json");
    const res = await call(
      route.rpcPath,
      new Request(`http://rest.internal${route.rpcPath}`, {
        method: "POST",
        headers,
        body: encodeEnvelope(0, new TextEncoder().encode(JSON.stringify(json))),
        // The client hanging up aborts the call, which ends the server's feed.
        signal: req.signal,
      }),
    );
    return ndjsonFromConnectStream(res);
  }
  if (route.method.methodKind !== "unary") {
    return restError(
      501,
      Code.Unimplemented,
      `${route.method.name} streams; over REST it is not available yet, use Connect or gRPC`,
    );
  }
  const res = await call(
    route.rpcPath,
    new Request(`http://rest.internal${route.rpcPath}`, {
      method: "POST",
      headers,
      body: JSON.stringify(json),
    }),
  );
  if (res.ok) return new Response(res.body, { status: 200, headers: { "content-type": "application/json" } });
  const body = (await res.json().catch(() => ({}))) as { code?: string; message?: string };
  const code = CODE_BY_CONNECT_NAME[body.code ?? ""] ?? Code.Internal;
  return restError(
    HTTP_STATUS_OF[code],
    code,
    body.message ?? "request failed",
    res.headers.get("pm-error-reason") ?? undefined,
  );
}

// ---- server streaming over REST ----------------------------------------------------------------
//
// As gRPC-Gateway does it: newline-delimited JSON, one `{"result": <message>}` per streamed message
// and, when the call fails, a final `{"error": <status>}`. The REST request is turned into a Connect
// streaming call (application/connect+json, enveloped) of the same handler, so auth, metrics and
// the error mapping are the RPC transports' own. Connect resolves a stream's response only with its
// first message, so an error before any message (e.g. NOT_FOUND) still gets its own HTTP status;
// one after the first message can only travel in the body, with status 200.

const NDJSON = { "content-type": "application/x-ndjson" };
const encoder = new TextEncoder();
const RESULT_OPEN = encoder.encode('{"result":');
const RESULT_CLOSE = encoder.encode("}\n");

function resultLine(message: Uint8Array): Uint8Array {
  const line = new Uint8Array(RESULT_OPEN.length + message.length + RESULT_CLOSE.length);
  line.set(RESULT_OPEN, 0);
  line.set(message, RESULT_OPEN.length);
  line.set(RESULT_CLOSE, RESULT_OPEN.length + message.length);
  return line;
}

/** The error of a Connect end-stream message as a REST status body, or undefined on success. */
function endStreamError(data: Uint8Array): { code: Code; body: ReturnType<typeof errorBody> } | undefined {
  let parsed: {
    error?: { code?: string; message?: string };
    metadata?: Record<string, string[] | undefined>;
  };
  try {
    parsed = JSON.parse(new TextDecoder().decode(data)) as typeof parsed;
  } catch {
    return { code: Code.Internal, body: errorBody(Code.Internal, "malformed end of stream", undefined) };
  }
  if (!parsed.error) return undefined;
  const code = CODE_BY_CONNECT_NAME[parsed.error.code ?? ""] ?? Code.Internal;
  const reason = parsed.metadata?.["pm-error-reason"]?.[0];
  return { code, body: errorBody(code, parsed.error.message ?? "request failed", reason) };
}

async function ndjsonFromConnectStream(res: Response): Promise<Response> {
  if (!res.body || !(res.headers.get("content-type") ?? "").startsWith("application/connect+json")) {
    // Connect refuses a malformed call with a plain HTTP error before streaming anything.
    const body = (await res.json().catch(() => ({}))) as { code?: string; message?: string };
    const code = CODE_BY_CONNECT_NAME[body.code ?? ""] ?? Code.Internal;
    return restError(HTTP_STATUS_OF[code], code, body.message ?? "request failed");
  }
  const reader = createEnvelopeReadableStream(res.body).getReader();
  const first = await reader.read();
  if (first.done) return new Response("", { status: 200, headers: NDJSON });
  if ((first.value.flags & endStreamFlag) === endStreamFlag) {
    const err = endStreamError(first.value.data);
    if (!err) return new Response("", { status: 200, headers: NDJSON });
    return new Response(`${JSON.stringify({ error: err.body })}\n`, {
      status: HTTP_STATUS_OF[err.code],
      headers: NDJSON,
    });
  }
  const firstLine = resultLine(first.value.data);
  const out = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(firstLine);
    },
    async pull(controller) {
      let next: ReadableStreamReadResult<{ flags: number; data: Uint8Array }>;
      try {
        next = await reader.read();
      } catch {
        // The inner call was cut off (the client left, the server is shutting down).
        controller.close();
        return;
      }
      if (next.done) {
        controller.close();
        return;
      }
      if ((next.value.flags & endStreamFlag) === endStreamFlag) {
        const err = endStreamError(next.value.data);
        if (err) controller.enqueue(encoder.encode(`${JSON.stringify({ error: err.body })}\n`));
        controller.close();
        return;
      }
      controller.enqueue(resultLine(next.value.data));
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  return new Response(out, { status: 200, headers: NDJSON });
}
