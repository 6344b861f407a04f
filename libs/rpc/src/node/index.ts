export { createHttp1UnaryTransport, type Http1UnaryTransportOptions } from "./http1-unary-transport.ts";
export {
  adapterError,
  type FastCall,
  type FastPathHooks,
  type FastRequest,
  type FastResponse,
  type UnaryEntry,
  unaryFastPath,
} from "./unary-fast-path.ts";
