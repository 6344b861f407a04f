/**
 * Generated protobuf-es code for the Payload Manager schema (`proto/`), re-exported in one place.
 *
 * Services (descriptors for Connect/gRPC): `PayloadCatalogService`, `PayloadDataService`,
 * `PayloadAdminService`, `PayloadStreamService` (wire contract v1) and the agent-facing
 * `AgentRegistryService` and `TierAgentService`. Each message `Foo` comes as a type `Foo` plus a
 * `FooSchema` for `create`, `toBinary`, `fromJson`, … from `@bufbuild/protobuf`.
 *
 * Everything under `./gen` is produced by `npm run gen`; never edit it by hand.
 * A single file is also importable on its own, e.g. `@pm/rpc/google/api/annotations_pb`.
 *
 * `google.api` contributes the `http` method option (read it with `getOption(method, http)`) and
 * `HttpRule`, which the REST gateway routes by.
 */

export * from "./gen/google/api/annotations_pb.ts";
export * from "./gen/google/api/http_pb.ts";
export * from "./gen/payload/manager/admin/v1/stats_pb.ts";
export * from "./gen/payload/manager/agent/v1/agent_pb.ts";
export * from "./gen/payload/manager/catalog/v1/archive_metadata_pb.ts";
export * from "./gen/payload/manager/catalog/v1/catalog_pb.ts";
export * from "./gen/payload/manager/catalog/v1/lineage_pb.ts";
export * from "./gen/payload/manager/catalog/v1/metadata_pb.ts";
export * from "./gen/payload/manager/core/v1/id_pb.ts";
export * from "./gen/payload/manager/core/v1/placement_pb.ts";
export * from "./gen/payload/manager/core/v1/policy_pb.ts";
export * from "./gen/payload/manager/core/v1/types_pb.ts";
export * from "./gen/payload/manager/runtime/v1/lease_pb.ts";
export * from "./gen/payload/manager/runtime/v1/lifecycle_pb.ts";
export * from "./gen/payload/manager/runtime/v1/stream_pb.ts";
export * from "./gen/payload/manager/runtime/v1/tiering_pb.ts";
export * from "./gen/payload/manager/services/v1/payload_admin_service_pb.ts";
export * from "./gen/payload/manager/services/v1/payload_catalog_service_pb.ts";
export * from "./gen/payload/manager/services/v1/payload_data_service_pb.ts";
export * from "./gen/payload/manager/services/v1/payload_stream_service_pb.ts";
