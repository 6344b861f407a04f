// Contract test for the protobuf schema: the generated descriptors must match the seed's v1 wire
// contract (shared/spec/api-v1-wire-contract.md) field by field, number by number, and every
// payload-manager addition must sit on a new number. A renumbered, retyped, relabelled, renamed or
// removed field, enum value, RPC or HTTP binding fails here.
//
// The v1 tables below were transcribed once from the contract document; they are embedded on purpose
// (the spec folder is not available in every checkout). Change them only together with a deliberate,
// compatible schema change: v1 rows never change, additions only append.

import {
  create,
  createRegistry,
  type DescField,
  type DescFile,
  type DescMessage,
  fromBinary,
  fromJson,
  getOption,
  hasOption,
  ScalarType,
  toBinary,
  toJson,
} from "@bufbuild/protobuf";
import * as rpc from "@pm/rpc";
import { describe, expect, it } from "vitest";

/** [name, number, type, label]; types as in the contract (`core.v1.X` = `payload.manager.core.v1.X`). */
type Field = [name: string, number: number, type: string, label: string];
/** [rpc, request, response, streaming, http verb, path template, body]. */
type Rpc = [
  name: string,
  input: string,
  output: string,
  kind: string,
  verb: string,
  path: string,
  body: string,
];
/** [rpc, request, response, streaming] for services without HTTP bindings. */
type PlainRpc = [name: string, input: string, output: string, kind: string];

// ---------------------------------------------------------------------------------------------
// v1 wire contract (seed hurdad/payload-manager at cf83ba70): 17 files, 64 messages, 10 enums,
// 45 enum values, 4 services, 26 RPCs, 193 fields.
// ---------------------------------------------------------------------------------------------

const V1_FILES: Record<string, { pkg: string; imports: string[] }> = {
  "payload/manager/core/v1/id.proto": { pkg: "payload.manager.core.v1", imports: [] },
  "payload/manager/core/v1/types.proto": { pkg: "payload.manager.core.v1", imports: [] },
  "payload/manager/core/v1/policy.proto": {
    pkg: "payload.manager.core.v1",
    imports: ["payload/manager/core/v1/types.proto"],
  },
  "payload/manager/core/v1/placement.proto": {
    pkg: "payload.manager.core.v1",
    imports: [
      "google/protobuf/timestamp.proto",
      "payload/manager/core/v1/types.proto",
      "payload/manager/core/v1/policy.proto",
      "payload/manager/core/v1/id.proto",
    ],
  },
  "payload/manager/catalog/v1/lineage.proto": {
    pkg: "payload.manager.catalog.v1",
    imports: ["payload/manager/core/v1/id.proto"],
  },
  "payload/manager/catalog/v1/metadata.proto": {
    pkg: "payload.manager.catalog.v1",
    imports: ["google/protobuf/timestamp.proto", "payload/manager/core/v1/id.proto"],
  },
  "payload/manager/catalog/v1/catalog.proto": {
    pkg: "payload.manager.catalog.v1",
    imports: [
      "google/protobuf/timestamp.proto",
      "payload/manager/core/v1/id.proto",
      "payload/manager/catalog/v1/metadata.proto",
      "payload/manager/core/v1/policy.proto",
    ],
  },
  "payload/manager/catalog/v1/archive_metadata.proto": {
    pkg: "payload.manager.catalog.v1",
    imports: [
      "google/protobuf/timestamp.proto",
      "payload/manager/core/v1/id.proto",
      "payload/manager/catalog/v1/lineage.proto",
      "payload/manager/core/v1/placement.proto",
    ],
  },
  "payload/manager/runtime/v1/lease.proto": {
    pkg: "payload.manager.runtime.v1",
    imports: [
      "google/protobuf/timestamp.proto",
      "payload/manager/core/v1/placement.proto",
      "payload/manager/core/v1/policy.proto",
      "payload/manager/core/v1/types.proto",
      "payload/manager/core/v1/id.proto",
    ],
  },
  "payload/manager/runtime/v1/lifecycle.proto": {
    pkg: "payload.manager.runtime.v1",
    imports: [
      "payload/manager/core/v1/placement.proto",
      "payload/manager/core/v1/id.proto",
      "payload/manager/core/v1/types.proto",
      "payload/manager/core/v1/policy.proto",
    ],
  },
  "payload/manager/runtime/v1/tiering.proto": {
    pkg: "payload.manager.runtime.v1",
    imports: [
      "payload/manager/core/v1/placement.proto",
      "payload/manager/core/v1/policy.proto",
      "payload/manager/core/v1/types.proto",
      "payload/manager/core/v1/id.proto",
    ],
  },
  "payload/manager/runtime/v1/stream.proto": {
    pkg: "payload.manager.runtime.v1",
    imports: ["google/protobuf/timestamp.proto", "payload/manager/core/v1/id.proto"],
  },
  "payload/manager/admin/v1/stats.proto": { pkg: "payload.manager.admin.v1", imports: [] },
  "payload/manager/services/v1/payload_admin_service.proto": {
    pkg: "payload.manager.services.v1",
    imports: ["google/api/annotations.proto", "payload/manager/admin/v1/stats.proto"],
  },
  "payload/manager/services/v1/payload_catalog_service.proto": {
    pkg: "payload.manager.services.v1",
    imports: [
      "google/api/annotations.proto",
      "google/protobuf/empty.proto",
      "payload/manager/runtime/v1/lifecycle.proto",
      "payload/manager/runtime/v1/tiering.proto",
      "payload/manager/catalog/v1/catalog.proto",
      "payload/manager/catalog/v1/lineage.proto",
    ],
  },
  "payload/manager/services/v1/payload_data_service.proto": {
    pkg: "payload.manager.services.v1",
    imports: [
      "google/api/annotations.proto",
      "google/protobuf/empty.proto",
      "payload/manager/runtime/v1/lease.proto",
    ],
  },
  "payload/manager/services/v1/payload_stream_service.proto": {
    pkg: "payload.manager.services.v1",
    imports: [
      "google/api/annotations.proto",
      "google/protobuf/empty.proto",
      "payload/manager/runtime/v1/stream.proto",
    ],
  },
};

const V1_MESSAGES: Record<string, { file: string; fields: Field[] }> = {
  "core.v1.PayloadID": {
    file: "payload/manager/core/v1/id.proto",
    fields: [["value", 1, "bytes", "singular"]],
  },
  "core.v1.LeaseID": {
    file: "payload/manager/core/v1/id.proto",
    fields: [["value", 1, "bytes", "singular"]],
  },
  "core.v1.EvictionPolicy": {
    file: "payload/manager/core/v1/policy.proto",
    fields: [
      ["priority", 1, "core.v1.EvictionPriority", "singular"],
      ["require_durable", 2, "bool", "singular"],
      ["spill_target", 3, "core.v1.Tier", "singular"],
      ["min_residency_tier", 4, "core.v1.Tier", "singular"],
    ],
  },
  "core.v1.GpuLocation": {
    file: "payload/manager/core/v1/placement.proto",
    fields: [
      ["device_id", 1, "uint32", "singular"],
      ["ipc_handle", 2, "bytes", "singular"],
      ["length_bytes", 3, "uint64", "singular"],
    ],
  },
  "core.v1.RamLocation": {
    file: "payload/manager/core/v1/placement.proto",
    fields: [
      ["shm_name", 1, "string", "singular"],
      ["slab_id", 2, "uint32", "singular"],
      ["block_index", 3, "uint64", "singular"],
      ["length_bytes", 4, "uint64", "singular"],
    ],
  },
  "core.v1.DiskLocation": {
    file: "payload/manager/core/v1/placement.proto",
    fields: [
      ["path", 1, "string", "singular"],
      ["offset_bytes", 2, "uint64", "singular"],
      ["length_bytes", 3, "uint64", "singular"],
    ],
  },
  "core.v1.PayloadDescriptor": {
    file: "payload/manager/core/v1/placement.proto",
    fields: [
      ["payload_id", 1, "core.v1.PayloadID", "singular"],
      ["tier", 2, "core.v1.Tier", "singular"],
      ["state", 3, "core.v1.PayloadState", "singular"],
      ["gpu", 4, "core.v1.GpuLocation", "oneof location"],
      ["ram", 5, "core.v1.RamLocation", "oneof location"],
      ["disk", 6, "core.v1.DiskLocation", "oneof location"],
      ["version", 7, "uint64", "singular"],
      ["created_at", 8, "google.protobuf.Timestamp", "singular"],
      ["expires_at", 9, "google.protobuf.Timestamp", "singular"],
      ["eviction_policy", 10, "core.v1.EvictionPolicy", "singular"],
    ],
  },
  "catalog.v1.LineageEdge": {
    file: "payload/manager/catalog/v1/lineage.proto",
    fields: [
      ["parent", 1, "core.v1.PayloadID", "singular"],
      ["operation", 2, "string", "singular"],
      ["role", 3, "string", "singular"],
      ["parameters", 4, "bytes", "singular"],
    ],
  },
  "catalog.v1.AddLineageRequest": {
    file: "payload/manager/catalog/v1/lineage.proto",
    fields: [
      ["child", 1, "core.v1.PayloadID", "singular"],
      ["parents", 2, "catalog.v1.LineageEdge", "repeated"],
    ],
  },
  "catalog.v1.GetLineageRequest": {
    file: "payload/manager/catalog/v1/lineage.proto",
    fields: [
      ["id", 1, "core.v1.PayloadID", "singular"],
      ["upstream", 2, "bool", "singular"],
      ["max_depth", 3, "uint32", "singular"],
    ],
  },
  "catalog.v1.GetLineageResponse": {
    file: "payload/manager/catalog/v1/lineage.proto",
    fields: [["edges", 1, "catalog.v1.LineageEdge", "repeated"]],
  },
  "catalog.v1.PayloadMetadata": {
    file: "payload/manager/catalog/v1/metadata.proto",
    fields: [
      ["id", 1, "core.v1.PayloadID", "singular"],
      ["data", 2, "bytes", "singular"],
      ["schema", 3, "string", "singular"],
    ],
  },
  "catalog.v1.PayloadMetadataEvent": {
    file: "payload/manager/catalog/v1/metadata.proto",
    fields: [
      ["id", 1, "core.v1.PayloadID", "singular"],
      ["ts", 2, "google.protobuf.Timestamp", "singular"],
      ["data", 3, "bytes", "singular"],
      ["source", 4, "string", "singular"],
      ["version", 5, "string", "singular"],
    ],
  },
  "catalog.v1.UpdatePayloadMetadataRequest": {
    file: "payload/manager/catalog/v1/catalog.proto",
    fields: [
      ["id", 1, "core.v1.PayloadID", "singular"],
      ["mode", 2, "core.v1.MetadataUpdateMode", "singular"],
      ["metadata", 3, "catalog.v1.PayloadMetadata", "singular"],
      ["actor", 4, "string", "singular"],
      ["reason", 5, "string", "singular"],
    ],
  },
  "catalog.v1.UpdatePayloadMetadataResponse": {
    file: "payload/manager/catalog/v1/catalog.proto",
    fields: [
      ["id", 1, "core.v1.PayloadID", "singular"],
      ["metadata", 2, "catalog.v1.PayloadMetadata", "singular"],
      ["updated_at", 3, "google.protobuf.Timestamp", "singular"],
    ],
  },
  "catalog.v1.AppendPayloadMetadataEventRequest": {
    file: "payload/manager/catalog/v1/catalog.proto",
    fields: [
      ["id", 1, "core.v1.PayloadID", "singular"],
      ["metadata", 2, "catalog.v1.PayloadMetadata", "singular"],
      ["source", 3, "string", "singular"],
      ["version", 4, "string", "singular"],
    ],
  },
  "catalog.v1.AppendPayloadMetadataEventResponse": {
    file: "payload/manager/catalog/v1/catalog.proto",
    fields: [
      ["id", 1, "core.v1.PayloadID", "singular"],
      ["event_time", 2, "google.protobuf.Timestamp", "singular"],
    ],
  },
  "catalog.v1.PayloadArchiveMetadata": {
    file: "payload/manager/catalog/v1/archive_metadata.proto",
    fields: [
      ["uuid", 1, "core.v1.PayloadID", "singular"],
      ["metadata_version", 2, "uint32", "singular"],
      ["created_at", 3, "google.protobuf.Timestamp", "singular"],
      ["archived_at", 4, "google.protobuf.Timestamp", "singular"],
      ["dataset", 5, "string", "singular"],
      ["producer", 6, "string", "singular"],
      ["payload_descriptor", 10, "core.v1.PayloadDescriptor", "singular"],
      ["lineage", 20, "catalog.v1.LineageEdge", "repeated"],
      ["integrity", 30, "catalog.v1.Integrity", "singular"],
      ["compression", 40, "catalog.v1.Compression", "singular"],
      ["statistics", 50, "catalog.v1.PayloadStatistics", "singular"],
      ["tags", 60, "map<string,string>", "map"],
      ["reserved_extension", 100, "bytes", "singular"],
    ],
  },
  "catalog.v1.TimeRange": {
    file: "payload/manager/catalog/v1/archive_metadata.proto",
    fields: [
      ["start", 1, "google.protobuf.Timestamp", "singular"],
      ["end", 2, "google.protobuf.Timestamp", "singular"],
    ],
  },
  "catalog.v1.Integrity": {
    file: "payload/manager/catalog/v1/archive_metadata.proto",
    fields: [
      ["algorithm", 1, "catalog.v1.HashAlgorithm", "singular"],
      ["checksum", 2, "bytes", "singular"],
      ["chunk_hashes", 3, "catalog.v1.ChunkHash", "repeated"],
    ],
  },
  "catalog.v1.ChunkHash": {
    file: "payload/manager/catalog/v1/archive_metadata.proto",
    fields: [
      ["offset", 1, "uint64", "singular"],
      ["length", 2, "uint64", "singular"],
      ["checksum", 3, "bytes", "singular"],
    ],
  },
  "catalog.v1.Compression": {
    file: "payload/manager/catalog/v1/archive_metadata.proto",
    fields: [
      ["type", 1, "catalog.v1.CompressionType", "singular"],
      ["level", 2, "uint32", "singular"],
      ["block_size", 3, "uint64", "singular"],
    ],
  },
  "catalog.v1.PayloadStatistics": {
    file: "payload/manager/catalog/v1/archive_metadata.proto",
    fields: [
      ["min_value", 1, "double", "singular"],
      ["max_value", 2, "double", "singular"],
      ["mean_value", 3, "double", "singular"],
      ["stddev", 4, "double", "singular"],
      ["sample_count", 5, "uint64", "singular"],
    ],
  },
  "runtime.v1.ResolveSnapshotRequest": {
    file: "payload/manager/runtime/v1/lease.proto",
    fields: [["id", 1, "core.v1.PayloadID", "singular"]],
  },
  "runtime.v1.ResolveSnapshotResponse": {
    file: "payload/manager/runtime/v1/lease.proto",
    fields: [["payload_descriptor", 1, "core.v1.PayloadDescriptor", "singular"]],
  },
  "runtime.v1.AcquireReadLeaseRequest": {
    file: "payload/manager/runtime/v1/lease.proto",
    fields: [
      ["id", 1, "core.v1.PayloadID", "singular"],
      ["min_tier", 2, "core.v1.Tier", "singular"],
      ["promotion_policy", 3, "core.v1.PromotionPolicy", "singular"],
      ["min_lease_duration_ms", 4, "uint64", "singular"],
      ["mode", 5, "runtime.v1.LeaseMode", "singular"],
    ],
  },
  "runtime.v1.AcquireReadLeaseResponse": {
    file: "payload/manager/runtime/v1/lease.proto",
    fields: [
      ["payload_descriptor", 1, "core.v1.PayloadDescriptor", "singular"],
      ["lease_id", 2, "core.v1.LeaseID", "singular"],
      ["lease_expires_at", 3, "google.protobuf.Timestamp", "singular"],
    ],
  },
  "runtime.v1.ReleaseLeaseRequest": {
    file: "payload/manager/runtime/v1/lease.proto",
    fields: [["lease_id", 1, "core.v1.LeaseID", "singular"]],
  },
  "runtime.v1.AllocatePayloadRequest": {
    file: "payload/manager/runtime/v1/lifecycle.proto",
    fields: [
      ["size_bytes", 1, "uint64", "singular"],
      ["preferred_tier", 2, "core.v1.Tier", "singular"],
      ["ttl_ms", 3, "uint64", "singular"],
      ["no_evict", 4, "bool", "singular"],
      ["eviction_policy", 5, "core.v1.EvictionPolicy", "singular"],
    ],
  },
  "runtime.v1.AllocatePayloadResponse": {
    file: "payload/manager/runtime/v1/lifecycle.proto",
    fields: [
      ["payload_descriptor", 1, "core.v1.PayloadDescriptor", "singular"],
      ["object_upload_path", 2, "string", "singular"],
    ],
  },
  "runtime.v1.ImportPayloadRequest": {
    file: "payload/manager/runtime/v1/lifecycle.proto",
    fields: [
      ["id", 1, "core.v1.PayloadID", "singular"],
      ["size_bytes", 2, "uint64", "singular"],
    ],
  },
  "runtime.v1.ImportPayloadResponse": { file: "payload/manager/runtime/v1/lifecycle.proto", fields: [] },
  "runtime.v1.CommitPayloadRequest": {
    file: "payload/manager/runtime/v1/lifecycle.proto",
    fields: [["id", 1, "core.v1.PayloadID", "singular"]],
  },
  "runtime.v1.CommitPayloadResponse": {
    file: "payload/manager/runtime/v1/lifecycle.proto",
    fields: [["payload_descriptor", 1, "core.v1.PayloadDescriptor", "singular"]],
  },
  "runtime.v1.DeleteRequest": {
    file: "payload/manager/runtime/v1/lifecycle.proto",
    fields: [
      ["id", 1, "core.v1.PayloadID", "singular"],
      ["force", 2, "bool", "singular"],
    ],
  },
  "runtime.v1.PayloadSummary": {
    file: "payload/manager/runtime/v1/lifecycle.proto",
    fields: [
      ["id", 1, "core.v1.PayloadID", "singular"],
      ["tier", 2, "core.v1.Tier", "singular"],
      ["state", 3, "core.v1.PayloadState", "singular"],
      ["size_bytes", 4, "uint64", "singular"],
      ["created_at_ms", 5, "uint64", "singular"],
      ["expires_at_ms", 6, "uint64", "singular"],
      ["active_leases", 7, "uint32", "singular"],
    ],
  },
  "runtime.v1.ListPayloadsRequest": {
    file: "payload/manager/runtime/v1/lifecycle.proto",
    fields: [
      ["tier_filter", 1, "core.v1.Tier", "singular"],
      ["page_size", 2, "int32", "singular"],
      ["page_token", 3, "string", "singular"],
    ],
  },
  "runtime.v1.ListPayloadsResponse": {
    file: "payload/manager/runtime/v1/lifecycle.proto",
    fields: [
      ["payloads", 1, "runtime.v1.PayloadSummary", "repeated"],
      ["next_page_token", 2, "string", "singular"],
      ["total_count", 3, "int32", "singular"],
    ],
  },
  "runtime.v1.PromoteRequest": {
    file: "payload/manager/runtime/v1/tiering.proto",
    fields: [
      ["id", 1, "core.v1.PayloadID", "singular"],
      ["target_tier", 2, "core.v1.Tier", "singular"],
      ["policy", 3, "core.v1.PromotionPolicy", "singular"],
    ],
  },
  "runtime.v1.PromoteResponse": {
    file: "payload/manager/runtime/v1/tiering.proto",
    fields: [["payload_descriptor", 1, "core.v1.PayloadDescriptor", "singular"]],
  },
  "runtime.v1.SpillRequest": {
    file: "payload/manager/runtime/v1/tiering.proto",
    fields: [
      ["ids", 1, "core.v1.PayloadID", "repeated"],
      ["policy", 2, "core.v1.SpillPolicy", "singular"],
      ["wait_for_leases", 3, "bool", "singular"],
      ["fsync", 4, "bool", "singular"],
      ["target_tier", 5, "core.v1.Tier", "singular"],
    ],
  },
  "runtime.v1.SpillResponse": {
    file: "payload/manager/runtime/v1/tiering.proto",
    fields: [["results", 1, "runtime.v1.SpillResponse.Result", "repeated"]],
  },
  "runtime.v1.SpillResponse.Result": {
    file: "payload/manager/runtime/v1/tiering.proto",
    fields: [
      ["id", 1, "core.v1.PayloadID", "singular"],
      ["ok", 2, "bool", "singular"],
      ["error_message", 3, "string", "singular"],
      ["payload_descriptor", 4, "core.v1.PayloadDescriptor", "singular"],
    ],
  },
  "runtime.v1.PrefetchRequest": {
    file: "payload/manager/runtime/v1/tiering.proto",
    fields: [
      ["id", 1, "core.v1.PayloadID", "singular"],
      ["target_tier", 2, "core.v1.Tier", "singular"],
    ],
  },
  "runtime.v1.PinRequest": {
    file: "payload/manager/runtime/v1/tiering.proto",
    fields: [
      ["id", 1, "core.v1.PayloadID", "singular"],
      ["duration_ms", 2, "uint64", "singular"],
    ],
  },
  "runtime.v1.UnpinRequest": {
    file: "payload/manager/runtime/v1/tiering.proto",
    fields: [["id", 1, "core.v1.PayloadID", "singular"]],
  },
  "runtime.v1.StreamID": {
    file: "payload/manager/runtime/v1/stream.proto",
    fields: [
      ["name", 1, "string", "singular"],
      ["namespace", 2, "string", "singular"],
    ],
  },
  "runtime.v1.StreamEntry": {
    file: "payload/manager/runtime/v1/stream.proto",
    fields: [
      ["stream", 1, "runtime.v1.StreamID", "singular"],
      ["offset", 2, "uint64", "singular"],
      ["payload_id", 3, "core.v1.PayloadID", "singular"],
      ["event_time", 4, "google.protobuf.Timestamp", "singular"],
      ["append_time", 5, "google.protobuf.Timestamp", "singular"],
      ["duration_ns", 6, "uint64", "singular"],
      ["tags", 7, "map<string,string>", "map"],
    ],
  },
  "runtime.v1.CreateStreamRequest": {
    file: "payload/manager/runtime/v1/stream.proto",
    fields: [
      ["stream", 1, "runtime.v1.StreamID", "singular"],
      ["retention_max_entries", 2, "uint64", "singular"],
      ["retention_max_age_sec", 3, "uint64", "singular"],
    ],
  },
  "runtime.v1.DeleteStreamRequest": {
    file: "payload/manager/runtime/v1/stream.proto",
    fields: [["stream", 1, "runtime.v1.StreamID", "singular"]],
  },
  "runtime.v1.AppendRequest": {
    file: "payload/manager/runtime/v1/stream.proto",
    fields: [
      ["stream", 1, "runtime.v1.StreamID", "singular"],
      ["items", 2, "runtime.v1.AppendItem", "repeated"],
    ],
  },
  "runtime.v1.AppendItem": {
    file: "payload/manager/runtime/v1/stream.proto",
    fields: [
      ["payload_id", 1, "core.v1.PayloadID", "singular"],
      ["event_time", 2, "google.protobuf.Timestamp", "singular"],
      ["duration_ns", 3, "uint64", "singular"],
      ["tags", 4, "map<string,string>", "map"],
    ],
  },
  "runtime.v1.AppendResponse": {
    file: "payload/manager/runtime/v1/stream.proto",
    fields: [
      ["first_offset", 1, "uint64", "singular"],
      ["last_offset", 2, "uint64", "singular"],
    ],
  },
  "runtime.v1.ReadRequest": {
    file: "payload/manager/runtime/v1/stream.proto",
    fields: [
      ["stream", 1, "runtime.v1.StreamID", "singular"],
      ["start_offset", 2, "uint64", "singular"],
      ["max_entries", 3, "uint64", "singular"],
      ["not_before", 4, "google.protobuf.Timestamp", "singular"],
    ],
  },
  "runtime.v1.ReadResponse": {
    file: "payload/manager/runtime/v1/stream.proto",
    fields: [["entries", 1, "runtime.v1.StreamEntry", "repeated"]],
  },
  "runtime.v1.SubscribeRequest": {
    file: "payload/manager/runtime/v1/stream.proto",
    fields: [
      ["stream", 1, "runtime.v1.StreamID", "singular"],
      ["offset", 2, "uint64", "oneof start"],
      ["from_beginning", 3, "bool", "oneof start"],
      ["from_latest", 4, "bool", "oneof start"],
      ["max_inflight", 5, "uint32", "singular"],
    ],
  },
  "runtime.v1.SubscribeResponse": {
    file: "payload/manager/runtime/v1/stream.proto",
    fields: [["entry", 1, "runtime.v1.StreamEntry", "singular"]],
  },
  "runtime.v1.CommitRequest": {
    file: "payload/manager/runtime/v1/stream.proto",
    fields: [
      ["stream", 1, "runtime.v1.StreamID", "singular"],
      ["consumer_group", 2, "string", "singular"],
      ["offset", 3, "uint64", "singular"],
    ],
  },
  "runtime.v1.GetCommittedRequest": {
    file: "payload/manager/runtime/v1/stream.proto",
    fields: [
      ["stream", 1, "runtime.v1.StreamID", "singular"],
      ["consumer_group", 2, "string", "singular"],
    ],
  },
  "runtime.v1.GetCommittedResponse": {
    file: "payload/manager/runtime/v1/stream.proto",
    fields: [["offset", 1, "uint64", "singular"]],
  },
  "runtime.v1.GetRangeRequest": {
    file: "payload/manager/runtime/v1/stream.proto",
    fields: [
      ["stream", 1, "runtime.v1.StreamID", "singular"],
      ["start_offset", 2, "uint64", "singular"],
      ["end_offset", 3, "uint64", "singular"],
    ],
  },
  "runtime.v1.GetRangeResponse": {
    file: "payload/manager/runtime/v1/stream.proto",
    fields: [["entries", 1, "runtime.v1.StreamEntry", "repeated"]],
  },
  "admin.v1.StatsRequest": { file: "payload/manager/admin/v1/stats.proto", fields: [] },
  "admin.v1.StatsResponse": {
    file: "payload/manager/admin/v1/stats.proto",
    fields: [
      ["payloads_gpu", 1, "uint64", "singular"],
      ["payloads_ram", 2, "uint64", "singular"],
      ["payloads_disk", 3, "uint64", "singular"],
      ["payloads_object", 7, "uint64", "singular"],
      ["bytes_gpu", 4, "uint64", "singular"],
      ["bytes_ram", 5, "uint64", "singular"],
      ["bytes_disk", 6, "uint64", "singular"],
      ["bytes_object", 8, "uint64", "singular"],
    ],
  },
};

const V1_ENUMS: Record<string, { file: string; values: [string, number][] }> = {
  "core.v1.Tier": {
    file: "payload/manager/core/v1/types.proto",
    values: [
      ["TIER_UNSPECIFIED", 0],
      ["TIER_GPU", 1],
      ["TIER_RAM", 2],
      ["TIER_DISK", 3],
      ["TIER_OBJECT", 4],
      ["TIER_VOID", 5],
    ],
  },
  "core.v1.PayloadState": {
    file: "payload/manager/core/v1/types.proto",
    values: [
      ["PAYLOAD_STATE_UNSPECIFIED", 0],
      ["PAYLOAD_STATE_ALLOCATED", 1],
      ["PAYLOAD_STATE_ACTIVE", 2],
      ["PAYLOAD_STATE_SPILLING", 3],
      ["PAYLOAD_STATE_DURABLE", 4],
      ["PAYLOAD_STATE_EVICTING", 5],
      ["PAYLOAD_STATE_DELETING", 6],
      ["PAYLOAD_STATE_EXPIRED", 7],
      ["PAYLOAD_STATE_DELETED", 8],
    ],
  },
  "core.v1.EvictionPriority": {
    file: "payload/manager/core/v1/types.proto",
    values: [
      ["EVICTION_PRIORITY_UNSPECIFIED", 0],
      ["EVICTION_PRIORITY_LOW", 1],
      ["EVICTION_PRIORITY_NORMAL", 2],
      ["EVICTION_PRIORITY_HIGH", 3],
      ["EVICTION_PRIORITY_NEVER", 4],
    ],
  },
  "core.v1.PromotionPolicy": {
    file: "payload/manager/core/v1/policy.proto",
    values: [
      ["PROMOTION_POLICY_UNSPECIFIED", 0],
      ["PROMOTION_POLICY_BEST_EFFORT", 1],
      ["PROMOTION_POLICY_BLOCKING", 2],
    ],
  },
  "core.v1.SpillPolicy": {
    file: "payload/manager/core/v1/policy.proto",
    values: [
      ["SPILL_POLICY_UNSPECIFIED", 0],
      ["SPILL_POLICY_BEST_EFFORT", 1],
      ["SPILL_POLICY_BLOCKING", 2],
    ],
  },
  "core.v1.MetadataUpdateMode": {
    file: "payload/manager/core/v1/policy.proto",
    values: [
      ["METADATA_UPDATE_MODE_UNSPECIFIED", 0],
      ["METADATA_UPDATE_MODE_MERGE", 1],
      ["METADATA_UPDATE_MODE_REPLACE", 2],
    ],
  },
  "catalog.v1.LineageType": {
    file: "payload/manager/catalog/v1/archive_metadata.proto",
    values: [
      ["LINEAGE_UNKNOWN", 0],
      ["LINEAGE_DERIVED", 1],
      ["LINEAGE_SPLIT", 2],
      ["LINEAGE_MERGED", 3],
      ["LINEAGE_TRANSFORMED", 4],
      ["LINEAGE_IMPORTED", 5],
    ],
  },
  "catalog.v1.HashAlgorithm": {
    file: "payload/manager/catalog/v1/archive_metadata.proto",
    values: [
      ["HASH_UNKNOWN", 0],
      ["HASH_XXH3_64", 1],
      ["HASH_XXH3_128", 2],
      ["HASH_SHA256", 3],
    ],
  },
  "catalog.v1.CompressionType": {
    file: "payload/manager/catalog/v1/archive_metadata.proto",
    values: [
      ["COMPRESSION_NONE", 0],
      ["COMPRESSION_ZSTD", 1],
      ["COMPRESSION_LZ4", 2],
      ["COMPRESSION_GZIP", 3],
    ],
  },
  "runtime.v1.LeaseMode": {
    file: "payload/manager/runtime/v1/lease.proto",
    values: [
      ["LEASE_MODE_UNSPECIFIED", 0],
      ["LEASE_MODE_READ", 1],
    ],
  },
};

const V1_SERVICES: Record<string, { file: string; rpcs: Rpc[] }> = {
  "services.v1.PayloadAdminService": {
    file: "payload/manager/services/v1/payload_admin_service.proto",
    rpcs: [
      ["Stats", "admin.v1.StatsRequest", "admin.v1.StatsResponse", "unary", "get", "/v1/admin/stats", ""],
    ],
  },
  "services.v1.PayloadCatalogService": {
    file: "payload/manager/services/v1/payload_catalog_service.proto",
    rpcs: [
      [
        "AllocatePayload",
        "runtime.v1.AllocatePayloadRequest",
        "runtime.v1.AllocatePayloadResponse",
        "unary",
        "post",
        "/v1/payloads",
        "*",
      ],
      [
        "CommitPayload",
        "runtime.v1.CommitPayloadRequest",
        "runtime.v1.CommitPayloadResponse",
        "unary",
        "post",
        "/v1/payloads/{id.value}/commit",
        "*",
      ],
      [
        "Delete",
        "runtime.v1.DeleteRequest",
        "google.protobuf.Empty",
        "unary",
        "delete",
        "/v1/payloads/{id.value}",
        "",
      ],
      [
        "Promote",
        "runtime.v1.PromoteRequest",
        "runtime.v1.PromoteResponse",
        "unary",
        "post",
        "/v1/payloads/{id.value}/promote",
        "*",
      ],
      [
        "Spill",
        "runtime.v1.SpillRequest",
        "runtime.v1.SpillResponse",
        "unary",
        "post",
        "/v1/payloads/spill",
        "*",
      ],
      [
        "Prefetch",
        "runtime.v1.PrefetchRequest",
        "google.protobuf.Empty",
        "unary",
        "post",
        "/v1/payloads/{id.value}/prefetch",
        "*",
      ],
      [
        "Pin",
        "runtime.v1.PinRequest",
        "google.protobuf.Empty",
        "unary",
        "post",
        "/v1/payloads/{id.value}/pin",
        "*",
      ],
      [
        "Unpin",
        "runtime.v1.UnpinRequest",
        "google.protobuf.Empty",
        "unary",
        "delete",
        "/v1/payloads/{id.value}/pin",
        "",
      ],
      [
        "AddLineage",
        "catalog.v1.AddLineageRequest",
        "google.protobuf.Empty",
        "unary",
        "post",
        "/v1/payloads/{child.value}/lineage",
        "*",
      ],
      [
        "GetLineage",
        "catalog.v1.GetLineageRequest",
        "catalog.v1.GetLineageResponse",
        "unary",
        "get",
        "/v1/payloads/{id.value}/lineage",
        "",
      ],
      [
        "UpdatePayloadMetadata",
        "catalog.v1.UpdatePayloadMetadataRequest",
        "catalog.v1.UpdatePayloadMetadataResponse",
        "unary",
        "put",
        "/v1/payloads/{id.value}/metadata",
        "*",
      ],
      [
        "AppendPayloadMetadataEvent",
        "catalog.v1.AppendPayloadMetadataEventRequest",
        "catalog.v1.AppendPayloadMetadataEventResponse",
        "unary",
        "post",
        "/v1/payloads/{id.value}/metadata/events",
        "*",
      ],
      [
        "ListPayloads",
        "runtime.v1.ListPayloadsRequest",
        "runtime.v1.ListPayloadsResponse",
        "unary",
        "get",
        "/v1/payloads",
        "",
      ],
      [
        "ImportPayload",
        "runtime.v1.ImportPayloadRequest",
        "runtime.v1.ImportPayloadResponse",
        "unary",
        "post",
        "/v1/payloads/{id.value}/import",
        "*",
      ],
    ],
  },
  "services.v1.PayloadDataService": {
    file: "payload/manager/services/v1/payload_data_service.proto",
    rpcs: [
      [
        "ResolveSnapshot",
        "runtime.v1.ResolveSnapshotRequest",
        "runtime.v1.ResolveSnapshotResponse",
        "unary",
        "get",
        "/v1/payloads/{id.value}/snapshot",
        "",
      ],
      [
        "AcquireReadLease",
        "runtime.v1.AcquireReadLeaseRequest",
        "runtime.v1.AcquireReadLeaseResponse",
        "unary",
        "post",
        "/v1/payloads/{id.value}/lease",
        "*",
      ],
      [
        "ReleaseLease",
        "runtime.v1.ReleaseLeaseRequest",
        "google.protobuf.Empty",
        "unary",
        "delete",
        "/v1/leases/{lease_id.value}",
        "",
      ],
    ],
  },
  "services.v1.PayloadStreamService": {
    file: "payload/manager/services/v1/payload_stream_service.proto",
    rpcs: [
      [
        "CreateStream",
        "runtime.v1.CreateStreamRequest",
        "google.protobuf.Empty",
        "unary",
        "post",
        "/v1/streams",
        "*",
      ],
      [
        "DeleteStream",
        "runtime.v1.DeleteStreamRequest",
        "google.protobuf.Empty",
        "unary",
        "delete",
        "/v1/streams/{stream.namespace}/{stream.name}",
        "",
      ],
      [
        "Append",
        "runtime.v1.AppendRequest",
        "runtime.v1.AppendResponse",
        "unary",
        "post",
        "/v1/streams/{stream.namespace}/{stream.name}/entries",
        "*",
      ],
      [
        "Read",
        "runtime.v1.ReadRequest",
        "runtime.v1.ReadResponse",
        "unary",
        "get",
        "/v1/streams/{stream.namespace}/{stream.name}/entries",
        "",
      ],
      [
        "Subscribe",
        "runtime.v1.SubscribeRequest",
        "runtime.v1.SubscribeResponse",
        "server_streaming",
        "get",
        "/v1/streams/{stream.namespace}/{stream.name}/subscribe",
        "",
      ],
      [
        "Commit",
        "runtime.v1.CommitRequest",
        "google.protobuf.Empty",
        "unary",
        "post",
        "/v1/streams/{stream.namespace}/{stream.name}/commit",
        "*",
      ],
      [
        "GetCommitted",
        "runtime.v1.GetCommittedRequest",
        "runtime.v1.GetCommittedResponse",
        "unary",
        "get",
        "/v1/streams/{stream.namespace}/{stream.name}/committed",
        "",
      ],
      [
        "GetRange",
        "runtime.v1.GetRangeRequest",
        "runtime.v1.GetRangeResponse",
        "unary",
        "get",
        "/v1/streams/{stream.namespace}/{stream.name}/range",
        "",
      ],
    ],
  },
};

// ---------------------------------------------------------------------------------------------
// payload-manager additions: new numbers, new messages and new RPCs only.
// ---------------------------------------------------------------------------------------------

const ADDED_FIELDS: Record<string, Field[]> = {
  "core.v1.PayloadDescriptor": [
    ["agent_id", 11, "string", "singular"],
    ["host", 12, "string", "singular"],
    ["object", 13, "core.v1.ObjectLocation", "oneof location"],
    ["size_bytes", 14, "uint64", "singular"],
  ],
  "catalog.v1.LineageEdge": [["child", 5, "core.v1.PayloadID", "singular"]],
  "runtime.v1.CommitPayloadRequest": [
    ["size_bytes", 2, "uint64", "singular"],
    ["checksum", 3, "string", "singular"],
  ],
  "runtime.v1.AllocatePayloadRequest": [["preferred_host", 6, "string", "singular"]],
  "runtime.v1.ListPayloadsRequest": [["state_filter", 4, "core.v1.PayloadState", "singular"]],
  "admin.v1.StatsResponse": [["agents", 9, "admin.v1.AgentStats", "repeated"]],
};

const PLACEMENT = "payload/manager/core/v1/placement.proto";
const CATALOG = "payload/manager/catalog/v1/catalog.proto";
const LEASE = "payload/manager/runtime/v1/lease.proto";
const STREAM = "payload/manager/runtime/v1/stream.proto";
const STATS = "payload/manager/admin/v1/stats.proto";
const AGENT = "payload/manager/agent/v1/agent.proto";
const TS = "google.protobuf.Timestamp";
const ID = "core.v1.PayloadID";
const TIER = "core.v1.Tier";

const ADDED_MESSAGES: Record<string, { file: string; fields: Field[] }> = {
  "core.v1.ObjectLocation": {
    file: PLACEMENT,
    fields: [
      ["bucket", 1, "string", "singular"],
      ["key", 2, "string", "singular"],
      ["url", 3, "string", "singular"],
      ["url_expires_at", 4, TS, "singular"],
      ["length_bytes", 5, "uint64", "singular"],
    ],
  },
  "catalog.v1.GetPayloadMetadataRequest": { file: CATALOG, fields: [["id", 1, ID, "singular"]] },
  "catalog.v1.GetPayloadMetadataResponse": {
    file: CATALOG,
    fields: [
      ["metadata", 1, "catalog.v1.PayloadMetadata", "singular"],
      ["updated_at", 2, TS, "singular"],
    ],
  },
  "catalog.v1.ListPayloadMetadataEventsRequest": {
    file: CATALOG,
    fields: [
      ["id", 1, ID, "singular"],
      ["page_size", 2, "int32", "singular"],
      ["page_token", 3, "string", "singular"],
      ["since", 4, TS, "singular"],
      ["until", 5, TS, "singular"],
    ],
  },
  "catalog.v1.ListPayloadMetadataEventsResponse": {
    file: CATALOG,
    fields: [
      ["events", 1, "catalog.v1.PayloadMetadataEvent", "repeated"],
      ["next_page_token", 2, "string", "singular"],
    ],
  },
  "runtime.v1.RenewLeaseRequest": {
    file: LEASE,
    fields: [
      ["lease_id", 1, "core.v1.LeaseID", "singular"],
      ["extend_ms", 2, "uint64", "singular"],
    ],
  },
  "runtime.v1.RenewLeaseResponse": {
    file: LEASE,
    fields: [
      ["lease_expires_at", 1, TS, "singular"],
      ["payload_descriptor", 2, "core.v1.PayloadDescriptor", "singular"],
    ],
  },
  "runtime.v1.ListStreamsRequest": {
    file: STREAM,
    fields: [
      ["namespace", 1, "string", "singular"],
      ["page_size", 2, "int32", "singular"],
      ["page_token", 3, "string", "singular"],
    ],
  },
  "runtime.v1.ListStreamsResponse": {
    file: STREAM,
    fields: [
      ["streams", 1, "runtime.v1.StreamInfo", "repeated"],
      ["next_page_token", 2, "string", "singular"],
    ],
  },
  "runtime.v1.StreamInfo": {
    file: STREAM,
    fields: [
      ["stream", 1, "runtime.v1.StreamID", "singular"],
      ["retention_max_entries", 2, "uint64", "singular"],
      ["retention_max_age_sec", 3, "uint64", "singular"],
      ["first_offset", 4, "uint64", "singular"],
      ["last_offset", 5, "uint64", "singular"],
      ["entry_count", 6, "uint64", "singular"],
      ["created_at", 7, TS, "singular"],
    ],
  },
  "admin.v1.AgentStats": {
    file: STATS,
    fields: [
      ["agent_id", 1, "string", "singular"],
      ["host", 2, "string", "singular"],
      ["endpoint", 3, "string", "singular"],
      ["last_heartbeat", 4, TS, "singular"],
      ["tiers", 5, "admin.v1.TierUsage", "repeated"],
      ["live", 6, "bool", "singular"],
    ],
  },
  "admin.v1.TierUsage": {
    file: STATS,
    fields: [
      ["tier", 1, TIER, "singular"],
      ["capacity_bytes", 2, "uint64", "singular"],
      ["used_bytes", 3, "uint64", "singular"],
    ],
  },
  // payload.manager.agent.v1 (ours entirely)
  "agent.v1.TierCapacity": {
    file: AGENT,
    fields: [
      ["tier", 1, TIER, "singular"],
      ["capacity_bytes", 2, "uint64", "singular"],
      ["used_bytes", 3, "uint64", "singular"],
      ["high_watermark", 4, "double", "singular"],
      ["low_watermark", 5, "double", "singular"],
    ],
  },
  "agent.v1.GpuDevice": {
    file: AGENT,
    fields: [
      ["device_id", 1, "uint32", "singular"],
      ["name", 2, "string", "singular"],
      ["total_bytes", 3, "uint64", "singular"],
    ],
  },
  "agent.v1.RegisterAgentRequest": {
    file: AGENT,
    fields: [
      ["agent_id", 1, "string", "singular"],
      ["host", 2, "string", "singular"],
      ["endpoint", 3, "string", "singular"],
      ["tiers", 4, "agent.v1.TierCapacity", "repeated"],
      ["gpus", 5, "agent.v1.GpuDevice", "repeated"],
    ],
  },
  "agent.v1.RegionRef": {
    file: AGENT,
    fields: [
      ["payload_id", 1, ID, "singular"],
      ["tier", 2, TIER, "singular"],
    ],
  },
  "agent.v1.RegisterAgentResponse": {
    file: AGENT,
    fields: [
      ["heartbeat_interval_ms", 1, "uint32", "singular"],
      ["known_regions", 2, "agent.v1.RegionRef", "repeated"],
    ],
  },
  "agent.v1.HeartbeatRequest": {
    file: AGENT,
    fields: [
      ["agent_id", 1, "string", "singular"],
      ["tiers", 2, "agent.v1.TierCapacity", "repeated"],
    ],
  },
  "agent.v1.HeartbeatResponse": { file: AGENT, fields: [["reregister", 1, "bool", "singular"]] },
  "agent.v1.Region": {
    file: AGENT,
    fields: [
      ["payload_id", 1, ID, "singular"],
      ["tier", 2, TIER, "singular"],
      ["size_bytes", 3, "uint64", "singular"],
      ["gpu", 4, "core.v1.GpuLocation", "oneof location"],
      ["ram", 5, "core.v1.RamLocation", "oneof location"],
      ["disk", 6, "core.v1.DiskLocation", "oneof location"],
      ["object", 7, "core.v1.ObjectLocation", "oneof location"],
    ],
  },
  "agent.v1.CreateRegionRequest": {
    file: AGENT,
    fields: [
      ["payload_id", 1, ID, "singular"],
      ["tier", 2, TIER, "singular"],
      ["size_bytes", 3, "uint64", "singular"],
      ["gpu_device", 4, "uint32", "singular"],
    ],
  },
  "agent.v1.FreeRegionRequest": {
    file: AGENT,
    fields: [
      ["payload_id", 1, ID, "singular"],
      ["tier", 2, TIER, "singular"],
    ],
  },
  "agent.v1.StatRegionRequest": {
    file: AGENT,
    fields: [
      ["payload_id", 1, ID, "singular"],
      ["tier", 2, TIER, "singular"],
    ],
  },
  "agent.v1.ListRegionsRequest": { file: AGENT, fields: [] },
  "agent.v1.ListRegionsResponse": { file: AGENT, fields: [["regions", 1, "agent.v1.Region", "repeated"]] },
  "agent.v1.CopyRegionRequest": {
    file: AGENT,
    fields: [
      ["payload_id", 1, ID, "singular"],
      ["from_tier", 2, TIER, "singular"],
      ["to_tier", 3, TIER, "singular"],
      ["fsync", 4, "bool", "singular"],
      ["gpu_device", 5, "uint32", "singular"],
      ["bucket", 6, "string", "singular"],
      ["key", 7, "string", "singular"],
    ],
  },
  "agent.v1.CopyRegionResponse": {
    file: AGENT,
    fields: [
      ["region", 1, "agent.v1.Region", "singular"],
      ["checksum", 2, "string", "singular"],
      ["bytes_copied", 3, "uint64", "singular"],
      ["duration_us", 4, "uint64", "singular"],
    ],
  },
  "agent.v1.ChecksumRegionRequest": {
    file: AGENT,
    fields: [
      ["payload_id", 1, ID, "singular"],
      ["tier", 2, TIER, "singular"],
      ["algorithm", 3, "string", "singular"],
    ],
  },
  "agent.v1.ChecksumRegionResponse": { file: AGENT, fields: [["checksum", 1, "string", "singular"]] },
  "agent.v1.CreateRegionsRequest": {
    file: AGENT,
    fields: [["regions", 1, "agent.v1.CreateRegionRequest", "repeated"]],
  },
  "agent.v1.CreateRegionsResponse": {
    file: AGENT,
    fields: [["results", 1, "agent.v1.CreateRegionResult", "repeated"]],
  },
  "agent.v1.CreateRegionResult": {
    file: AGENT,
    fields: [
      ["region", 1, "agent.v1.Region", "oneof result"],
      ["error", 2, "agent.v1.RegionError", "oneof result"],
    ],
  },
  "agent.v1.RegionError": {
    file: AGENT,
    fields: [
      ["code", 1, "uint32", "singular"],
      ["message", 2, "string", "singular"],
    ],
  },
};

const ADDED_RPCS: Record<string, Rpc[]> = {
  "services.v1.PayloadCatalogService": [
    [
      "GetPayloadMetadata",
      "catalog.v1.GetPayloadMetadataRequest",
      "catalog.v1.GetPayloadMetadataResponse",
      "unary",
      "get",
      "/v1/payloads/{id.value}/metadata",
      "",
    ],
    [
      "ListPayloadMetadataEvents",
      "catalog.v1.ListPayloadMetadataEventsRequest",
      "catalog.v1.ListPayloadMetadataEventsResponse",
      "unary",
      "get",
      "/v1/payloads/{id.value}/metadata/events",
      "",
    ],
  ],
  "services.v1.PayloadDataService": [
    [
      "RenewLease",
      "runtime.v1.RenewLeaseRequest",
      "runtime.v1.RenewLeaseResponse",
      "unary",
      "post",
      "/v1/leases/{lease_id.value}/renew",
      "*",
    ],
  ],
  "services.v1.PayloadStreamService": [
    [
      "ListStreams",
      "runtime.v1.ListStreamsRequest",
      "runtime.v1.ListStreamsResponse",
      "unary",
      "get",
      "/v1/streams",
      "",
    ],
  ],
  "services.v1.PayloadAdminService": [],
};

/** Agent-facing services: no google.api.http bindings (not reachable over REST). */
const AGENT_SERVICES: Record<string, PlainRpc[]> = {
  "agent.v1.AgentRegistryService": [
    ["RegisterAgent", "agent.v1.RegisterAgentRequest", "agent.v1.RegisterAgentResponse", "unary"],
    ["Heartbeat", "agent.v1.HeartbeatRequest", "agent.v1.HeartbeatResponse", "unary"],
  ],
  "agent.v1.TierAgentService": [
    ["CreateRegion", "agent.v1.CreateRegionRequest", "agent.v1.Region", "unary"],
    ["FreeRegion", "agent.v1.FreeRegionRequest", "google.protobuf.Empty", "unary"],
    ["StatRegion", "agent.v1.StatRegionRequest", "agent.v1.Region", "unary"],
    ["ListRegions", "agent.v1.ListRegionsRequest", "agent.v1.ListRegionsResponse", "unary"],
    ["CopyRegion", "agent.v1.CopyRegionRequest", "agent.v1.CopyRegionResponse", "unary"],
    ["ChecksumRegion", "agent.v1.ChecksumRegionRequest", "agent.v1.ChecksumRegionResponse", "unary"],
    ["CreateRegions", "agent.v1.CreateRegionsRequest", "agent.v1.CreateRegionsResponse", "unary"],
  ],
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** Every generated file, found through the package's public exports (`file_*`). */
const genFiles = Object.entries(rpc)
  .filter(([name]) => name.startsWith("file_"))
  .map(([, file]) => file as DescFile);
const registry = createRegistry(...genFiles);
/** Generated files and their imports (well-known types included), by proto file name. */
const filesByName = new Map<string, DescFile>();
const addFile = (file: DescFile): void => {
  if (filesByName.has(file.proto.name)) return;
  filesByName.set(file.proto.name, file);
  file.dependencies.forEach(addFile);
};
genFiles.forEach(addFile);

function full(type: string): string {
  return type.startsWith("google.") ? type : `payload.manager.${type}`;
}

function scalarName(scalar: ScalarType): string {
  return ScalarType[scalar].toLowerCase();
}

function typeOf(field: DescField): string {
  switch (field.fieldKind) {
    case "scalar":
      return scalarName(field.scalar);
    case "enum":
      return field.enum.typeName;
    case "message":
      return field.message.typeName;
    case "list":
      if (field.listKind === "scalar") return scalarName(field.scalar);
      return field.listKind === "enum" ? field.enum.typeName : field.message.typeName;
    case "map": {
      const value =
        field.mapKind === "scalar"
          ? scalarName(field.scalar)
          : field.mapKind === "enum"
            ? field.enum.typeName
            : field.message.typeName;
      return `map<${scalarName(field.mapKey)},${value}>`;
    }
  }
}

function labelOf(field: DescField): string {
  if (field.fieldKind === "list") return "repeated";
  if (field.fieldKind === "map") return "map";
  if (field.oneof) return `oneof ${field.oneof.name}`;
  // The v1 contract never uses `optional`; a field gaining it would change its presence semantics.
  return field.proto.proto3Optional ? "optional" : "singular";
}

/** Fields as [name, number, full type, label], sorted by number. */
function describeFields(message: DescMessage): Field[] {
  return message.fields
    .map((f): Field => [f.name, f.number, typeOf(f), labelOf(f)])
    .sort((a, b) => a[1] - b[1]);
}

function expandFields(fields: Field[]): Field[] {
  return fields
    .map(
      ([name, number, type, label]): Field => [
        name,
        number,
        type.startsWith("map<") ? type : /^[a-z0-9]+$/.test(type) ? type : full(type),
        label,
      ],
    )
    .sort((a, b) => a[1] - b[1]);
}

function message(short: string): DescMessage {
  const found = registry.getMessage(full(short));
  if (!found) throw new Error(`message ${full(short)} is missing from the generated code`);
  return found;
}

function lowerCamel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

/** 123e4567-e89b-42d3-a456-426614174000, the contract's example id. */
const EXAMPLE_ID = new Uint8Array([
  0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x42, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0x00,
]);

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

describe("v1 files", () => {
  it.each(Object.entries(V1_FILES))(
    "%s keeps its package, imports and (absent) options",
    (path, expected) => {
      const file = filesByName.get(path);
      expect(file, `file ${path} is missing`).toBeDefined();
      expect(file!.proto.package).toBe(expected.pkg);
      expect(file!.proto.syntax).toBe("proto3");
      // The contract has no file options at all (no go_package, java_*, ...).
      expect(file!.proto.options).toBeUndefined();
      const deps = file!.dependencies.map((d) => d.proto.name);
      expect(deps).toEqual(expect.arrayContaining(expected.imports));
    },
  );

  it("has exactly the contract's totals", () => {
    expect(Object.keys(V1_FILES)).toHaveLength(17);
    expect(Object.keys(V1_MESSAGES)).toHaveLength(64);
    expect(Object.keys(V1_ENUMS)).toHaveLength(10);
    expect(Object.values(V1_ENUMS).flatMap((e) => e.values)).toHaveLength(45);
    expect(Object.values(V1_MESSAGES).flatMap((m) => m.fields)).toHaveLength(193);
    expect(Object.values(V1_SERVICES).flatMap((s) => s.rpcs)).toHaveLength(26);
  });
});

describe("messages", () => {
  const all = Object.entries(V1_MESSAGES).map(([name, m]): [string, string, Field[]] => [
    name,
    m.file,
    [...m.fields, ...(ADDED_FIELDS[name] ?? [])],
  ]);
  const added = Object.entries(ADDED_MESSAGES).map(([name, m]): [string, string, Field[]] => [
    name,
    m.file,
    m.fields,
  ]);

  it.each([...all, ...added])("%s has exactly the expected fields (%s)", (name, file, fields) => {
    const desc = message(name);
    expect(desc.file.proto.name).toBe(file);
    expect(describeFields(desc)).toEqual(expandFields(fields));
    for (const field of desc.fields) {
      // No explicit json_name anywhere: JSON names are the default lowerCamelCase.
      expect(field.jsonName, `${name}.${field.name}`).toBe(lowerCamel(field.name));
    }
  });

  it("additions only use numbers the v1 message does not use", () => {
    for (const [name, fields] of Object.entries(ADDED_FIELDS)) {
      const v1 = V1_MESSAGES[name];
      expect(v1, name).toBeDefined();
      const v1Numbers = new Set(v1!.fields.map((f) => f[1]));
      const v1Names = new Set(v1!.fields.map((f) => f[0]));
      for (const [fieldName, number] of fields) {
        expect(v1Numbers.has(number), `${name}.${fieldName} reuses ${number}`).toBe(false);
        expect(v1Names.has(fieldName), `${name}.${fieldName} reuses a name`).toBe(false);
      }
    }
  });

  it("defines no payload.manager message beyond the contract and the listed additions", () => {
    const expected = new Set([...Object.keys(V1_MESSAGES), ...Object.keys(ADDED_MESSAGES)].map(full));
    const actual: string[] = [];
    const visit = (m: DescMessage) => {
      if (!m.proto.options?.mapEntry) actual.push(m.typeName);
      m.nestedMessages.forEach(visit);
    };
    for (const file of genFiles) {
      if (file.proto.package.startsWith("payload.manager.")) file.messages.forEach(visit);
    }
    expect(actual.sort()).toEqual([...expected].sort());
  });

  it("keeps StatsResponse's out-of-order numbers (object counters are 7 and 8)", () => {
    const stats = message("admin.v1.StatsResponse");
    expect(stats.field.payloadsObject?.number).toBe(7);
    expect(stats.field.bytesObject?.number).toBe(8);
    expect(stats.field.bytesGpu?.number).toBe(4);
    const bytes = toBinary(
      rpc.StatsResponseSchema,
      create(rpc.StatsResponseSchema, { payloadsObject: 1n, bytesObject: 2n }),
    );
    // Field 7 varint (0x38), field 8 varint (0x40).
    expect(hex(bytes)).toBe("38 01 40 02");
  });

  it("keeps PayloadDescriptor.location as gpu 4, ram 5, disk 6 (+ object 13)", () => {
    const desc = message("core.v1.PayloadDescriptor");
    const oneof = desc.oneofs.find((o) => o.name === "location");
    expect(oneof?.fields.map((f) => [f.name, f.number])).toEqual([
      ["gpu", 4],
      ["ram", 5],
      ["disk", 6],
      ["object", 13],
    ]);
  });

  it("declares the tags fields as real maps", () => {
    for (const [name, field] of [
      ["runtime.v1.StreamEntry", "tags"],
      ["runtime.v1.AppendItem", "tags"],
      ["catalog.v1.PayloadArchiveMetadata", "tags"],
    ] as const) {
      const f = message(name).fields.find((x) => x.name === field);
      expect(f?.fieldKind, `${name}.${field}`).toBe("map");
    }
    const entry = create(rpc.StreamEntrySchema, { tags: { camera: "front" } });
    expect(toJson(rpc.StreamEntrySchema, entry)).toEqual({ tags: { camera: "front" } });
  });
});

describe("enums", () => {
  it.each(Object.entries(V1_ENUMS))("%s has exactly the contract's values", (name, expected) => {
    const desc = registry.getEnum(full(name));
    expect(desc, name).toBeDefined();
    expect(desc!.file.proto.name).toBe(expected.file);
    expect(desc!.values.map((v) => [v.name, v.number])).toEqual(expected.values);
  });
});

describe("services", () => {
  const v1 = Object.entries(V1_SERVICES).map(([name, s]): [string, string, Rpc[]] => [
    name,
    s.file,
    [...s.rpcs, ...(ADDED_RPCS[name] ?? [])],
  ]);

  it.each(v1)("%s has exactly the expected RPCs, gRPC paths and HTTP rules", (name, file, rpcs) => {
    const service = registry.getService(full(name));
    expect(service, name).toBeDefined();
    expect(service!.file.proto.name).toBe(file);
    const actual = service!.methods.map((m) => {
      const rule = getOption(m, rpc.http);
      expect(rule.additionalBindings, m.name).toHaveLength(0);
      expect(rule.responseBody, m.name).toBe("");
      return [
        `/${service!.typeName}/${m.name}`,
        m.input.typeName,
        m.output.typeName,
        m.methodKind,
        rule.pattern.case,
        rule.pattern.value,
        rule.body,
      ];
    });
    const expected = rpcs.map(([rpcName, input, output, kind, verb, path, body]) => [
      `/payload.manager.${name}/${rpcName}`,
      full(input),
      full(output),
      kind,
      verb,
      path,
      body,
    ]);
    expect(actual.sort()).toEqual(expected.sort());
  });

  it.each(Object.entries(AGENT_SERVICES))(
    "%s has exactly the expected RPCs and no HTTP rules",
    (name, rpcs) => {
      const service = registry.getService(full(name));
      expect(service, name).toBeDefined();
      expect(service!.file.proto.name).toBe(AGENT);
      const actual = service!.methods.map((m) => {
        expect(hasOption(m, rpc.http), m.name).toBe(false);
        return [`/${service!.typeName}/${m.name}`, m.input.typeName, m.output.typeName, m.methodKind];
      });
      const expected = rpcs.map(([rpcName, input, output, kind]) => [
        `/payload.manager.${name}/${rpcName}`,
        full(input),
        full(output),
        kind,
      ]);
      expect(actual.sort()).toEqual(expected.sort());
    },
  );

  it("exports the service descriptors under their proto names", () => {
    expect(rpc.PayloadCatalogService.typeName).toBe("payload.manager.services.v1.PayloadCatalogService");
    expect(rpc.PayloadDataService.method.renewLease.name).toBe("RenewLease");
    expect(rpc.PayloadStreamService.method.subscribe.methodKind).toBe("server_streaming");
    expect(rpc.PayloadAdminService.method.stats.output).toBe(rpc.StatsResponseSchema);
    expect(rpc.AgentRegistryService.typeName).toBe("payload.manager.agent.v1.AgentRegistryService");
    expect(rpc.TierAgentService.method.copyRegion.input).toBe(rpc.CopyRegionRequestSchema);
  });

  it("reads a few HTTP rules through the exported option", () => {
    const commit = getOption(rpc.PayloadCatalogService.method.commitPayload, rpc.http);
    expect(commit.pattern).toEqual({ case: "post", value: "/v1/payloads/{id.value}/commit" });
    expect(commit.body).toBe("*");
    const update = getOption(rpc.PayloadCatalogService.method.updatePayloadMetadata, rpc.http);
    expect(update.pattern).toEqual({ case: "put", value: "/v1/payloads/{id.value}/metadata" });
    const release = getOption(rpc.PayloadDataService.method.releaseLease, rpc.http);
    expect(release.pattern).toEqual({ case: "delete", value: "/v1/leases/{lease_id.value}" });
    expect(release.body).toBe("");
  });
});

describe("wire and JSON encodings from the contract", () => {
  it("encodes CommitPayloadRequest for the example id as the contract's 20 bytes", () => {
    const request = create(rpc.CommitPayloadRequestSchema, { id: { value: EXAMPLE_ID } });
    const bytes = toBinary(rpc.CommitPayloadRequestSchema, request);
    expect(hex(bytes)).toBe("0a 12 0a 10 12 3e 45 67 e8 9b 42 d3 a4 56 42 66 14 17 40 00");
    const decoded = fromBinary(rpc.CommitPayloadRequestSchema, bytes);
    expect(decoded.id?.value).toEqual(EXAMPLE_ID);
    // The added fields are absent when zero, so a seed server sees the same bytes.
    expect(decoded.sizeBytes).toBe(0n);
    expect(decoded.checksum).toBe("");
  });

  it("writes an id as standard padded base64 in JSON and reads URL-safe unpadded too", () => {
    const id = create(rpc.PayloadIDSchema, { value: EXAMPLE_ID });
    expect(JSON.stringify(toJson(rpc.PayloadIDSchema, id))).toBe('{"value":"Ej5FZ+ibQtOkVkJmFBdAAA=="}');
    expect(fromJson(rpc.PayloadIDSchema, { value: "Ej5FZ-ibQtOkVkJmFBdAAA" }).value).toEqual(EXAMPLE_ID);
  });

  it("sends SubscribeRequest.offset = 0 on the wire because it is a oneof member", () => {
    const request = create(rpc.SubscribeRequestSchema, { start: { case: "offset", value: 0n } });
    expect(hex(toBinary(rpc.SubscribeRequestSchema, request))).toBe("10 00");
  });

  it("uses lowerCamelCase names and uint64 strings in JSON, and reads enum names", () => {
    const request = create(rpc.AllocatePayloadRequestSchema, { sizeBytes: 1024n, ttlMs: 5n });
    expect(toJson(rpc.AllocatePayloadRequestSchema, request)).toEqual({ sizeBytes: "1024", ttlMs: "5" });
    const parsed = fromJson(rpc.AllocatePayloadRequestSchema, {
      size_bytes: "7",
      preferredTier: "TIER_VOID",
      evictionPolicy: { minResidencyTier: "TIER_RAM" },
    });
    expect(parsed.sizeBytes).toBe(7n);
    expect(parsed.preferredTier).toBe(rpc.Tier.VOID);
    expect(parsed.evictionPolicy?.minResidencyTier).toBe(rpc.Tier.RAM);
    const stream = create(rpc.StreamIDSchema, { name: "frames", namespace: "lab" });
    expect(toJson(rpc.StreamIDSchema, stream)).toEqual({ name: "frames", namespace: "lab" });
  });

  // Also a guard on the install: newer @bufbuild/protobuf runtimes take enum JSON names from a
  // descriptor property older ones don't set, so if libs/rpc and its callers (Connect included) ever
  // load different copies again, enums silently turn into numbers on the JSON wire. Keep one copy.
  it("writes enum value names in JSON", () => {
    const request = create(rpc.AllocatePayloadRequestSchema, { preferredTier: rpc.Tier.VOID });
    expect(toJson(rpc.AllocatePayloadRequestSchema, request)).toEqual({ preferredTier: "TIER_VOID" });
  });
});
