export {
  type AgentClient,
  AgentRegionAllocator,
  type AgentRegionAllocatorOptions,
} from "./agent-region-allocator.ts";
export {
  type LocationPb,
  locationFromRegion,
  locationToPb,
  placementFromRegion,
  regionOf,
  TIER_TO_PB,
  tierOfPb,
} from "./region-mapping.ts";
