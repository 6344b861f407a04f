import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import {
  PayloadAdminService,
  PayloadCatalogService,
  PayloadDataService,
  PayloadStreamService,
} from "@pm/rpc";

export interface PayloadClientOptions {
  /** The API's HTTP URL, e.g. http://127.0.0.1:8080. */
  readonly baseUrl: string;
  /** Bearer token of your namespace, when the server requires one. */
  readonly token?: string;
  /** Use the binary Connect protocol (smaller, faster) instead of JSON. Default true. */
  readonly binary?: boolean;
  /** Bring your own transport (gRPC over HTTP/2, a test router…); overrides baseUrl/binary. */
  readonly transport?: Transport;
}

/** Typed clients for every service of the v1 API (plus the compatible additions). */
export interface PayloadClient {
  readonly catalog: Client<typeof PayloadCatalogService>;
  readonly data: Client<typeof PayloadDataService>;
  readonly admin: Client<typeof PayloadAdminService>;
  readonly stream: Client<typeof PayloadStreamService>;
}

/** Creates the typed clients over Connect (fetch), usable from Node, browsers and Workers. */
export function createPayloadClient(opts: PayloadClientOptions): PayloadClient {
  const transport =
    opts.transport ??
    createConnectTransport({
      baseUrl: opts.baseUrl,
      useBinaryFormat: opts.binary ?? true,
      interceptors: authInterceptors(opts.token),
    });
  return clientsOn(transport);
}

/** The interceptors that present `token` as a bearer token (none without one). */
export function authInterceptors(token: string | undefined): Interceptor[] {
  if (!token) return [];
  const value = `Bearer ${token}`;
  return [
    (next) => (req) => {
      req.header.set("authorization", value);
      return next(req);
    },
  ];
}

/** The typed clients of every service over one transport. */
export function clientsOn(transport: Transport): PayloadClient {
  return {
    catalog: createClient(PayloadCatalogService, transport),
    data: createClient(PayloadDataService, transport),
    admin: createClient(PayloadAdminService, transport),
    stream: createClient(PayloadStreamService, transport),
  };
}

/** Canonical UUID text of a 16-byte wire id. */
export function idText(id: { value: Uint8Array } | undefined): string {
  const b = id?.value ?? new Uint8Array();
  if (b.length !== 16) throw new Error(`expected a 16-byte id, got ${b.length} bytes`);
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The 16-byte wire id of canonical UUID text. */
export function idBytes(text: string): { value: Uint8Array } {
  const hex = text.replaceAll("-", "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new Error(`${JSON.stringify(text)} is not a UUID`);
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return { value: out };
}
