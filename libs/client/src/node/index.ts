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
export {
  type GetObjectOptions,
  getObject,
  getObjectStream,
  type ObjectStream,
  type PutObjectOptions,
  type PutObjectResult,
  putObject,
} from "./objects.ts";
export { mapDescriptor } from "./regions.ts";
