export {
  type AgentClient,
  AgentRegionAllocator,
  type AgentRegionAllocatorOptions,
} from "./agent-region-allocator.ts";
export { CreateRegionBatcher, MAX_CREATE_BATCH } from "./create-region-batcher.ts";
export {
  type LocationPb,
  locationFromRegion,
  locationToPb,
  placementFromRegion,
  regionOf,
  TIER_TO_PB,
  tierOfPb,
} from "./region-mapping.ts";
