export {
  DEFAULT_CHUNK_BYTES,
  type GetOptions,
  get,
  getStream,
  type PutOptions,
  type PutResult,
  put,
  putStream,
  type ReadHandle,
  read,
} from "./data-plane.ts";
export { type GpuRegion, openGpu, putGpu, readGpuToHost } from "./gpu.ts";
export { mapDescriptor } from "./regions.ts";
