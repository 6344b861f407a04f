export { nodeAgentTransports } from "./agent-transports.ts";
export {
  DEFAULT_KEY_PREFIX,
  isKeyOfPayload,
  isValidKeyPrefix,
  objectKeyOf,
  sidecarKeyOf,
} from "./object-keys.ts";
export {
  ObjectRegionAllocator,
  type ObjectRegionAllocatorOptions,
  type ObjectTarget,
} from "./object-region-allocator.ts";
export {
  OBJECT_STORE_ENV,
  ObjectStoreConfigSchema,
  type ObjectStoreSettings,
} from "./object-store-config.ts";
export { createRegionAllocation, type RegionAllocation } from "./region-allocation.ts";
export {
  createS3Client,
  describeS3Error,
  isS3NotFound,
  type ObjectStoreConfig,
  type S3ClientOptions,
  s3Status,
} from "./s3-client.ts";
export { S3ObjectPresigner, type S3ObjectPresignerOptions } from "./s3-object-presigner.ts";
export {
  type ObjectCopyAgents,
  TieredRegionAllocator,
  type TieredRegionAllocatorOptions,
} from "./tiered-region-allocator.ts";
