#!/usr/bin/env python3
"""A third-party gRPC client for the compatibility test (tests/compat/grpc-python.e2e.test.ts).

Speaks native gRPC (HTTP/2 with trailers) through grpcio, with message classes that protoc
generated from proto/ -- none of the project's TypeScript is involved. It calls RPCs by their
wire path, the way any stub would, runs a payload's life cycle and a few error cases, and prints
one JSON object with what it observed. It exits non-zero when something is off, naming the step.

usage: grpc_client.py HOST:PORT GENERATED_DIR
"""

import json
import os
import sys
import uuid

CATALOG = "/payload.manager.services.v1.PayloadCatalogService/"
DATA = "/payload.manager.services.v1.PayloadDataService/"
TIMEOUT_S = 10


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    target, generated = sys.argv[1], sys.argv[2]
    sys.path.insert(0, generated)

    import grpc
    from google.protobuf import empty_pb2
    from payload.manager.core.v1 import id_pb2, types_pb2
    from payload.manager.runtime.v1 import lease_pb2, lifecycle_pb2

    channel = grpc.insecure_channel(target)
    grpc.channel_ready_future(channel).result(timeout=TIMEOUT_S)

    def rpc(path, request, response_class):
        call = channel.unary_unary(
            path,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        return call(request, timeout=TIMEOUT_S)

    def status_of(path, request, response_class):
        """The status code name and error reason of a call that is expected to fail."""
        try:
            rpc(path, request, response_class)
        except grpc.RpcError as e:
            reason = dict(e.trailing_metadata() or ()).get("pm-error-reason", "")
            return {"code": e.code().name, "reason": reason, "details": e.details()}
        raise AssertionError(f"{path} succeeded but was expected to fail")

    def check(cond, what):
        if not cond:
            raise AssertionError(what)

    out = {}

    alloc = rpc(
        CATALOG + "AllocatePayload",
        lifecycle_pb2.AllocatePayloadRequest(size_bytes=4096, preferred_tier=types_pb2.TIER_DISK),
        lifecycle_pb2.AllocatePayloadResponse,
    ).payload_descriptor
    raw_id = alloc.payload_id.value
    check(len(raw_id) == 16, f"payload id is {len(raw_id)} bytes, not 16 raw bytes")
    payload_id = id_pb2.PayloadID(value=raw_id)
    check(alloc.WhichOneof("location") == "disk", f"location is {alloc.WhichOneof('location')}, not disk")
    path = alloc.disk.path
    check(os.path.isabs(path), f"disk path {path!r} is not absolute")
    out["allocate"] = {
        "id": str(uuid.UUID(bytes=raw_id)),
        "id_bytes": len(raw_id),
        "tier": types_pb2.Tier.Name(alloc.tier),
        "state": types_pb2.PayloadState.Name(alloc.state),
        "version": alloc.version,
        "size_bytes": alloc.size_bytes,
        "disk_path": path,
        "disk_length_bytes": alloc.disk.length_bytes,
        "file_size": os.stat(path).st_size,
    }

    committed = rpc(
        CATALOG + "CommitPayload",
        lifecycle_pb2.CommitPayloadRequest(id=payload_id),
        lifecycle_pb2.CommitPayloadResponse,
    ).payload_descriptor
    out["commit"] = {
        "state": types_pb2.PayloadState.Name(committed.state),
        "version": committed.version,
    }
    out["commit_again"] = status_of(
        CATALOG + "CommitPayload",
        lifecycle_pb2.CommitPayloadRequest(id=payload_id),
        lifecycle_pb2.CommitPayloadResponse,
    )
    out["commit_15_byte_id"] = status_of(
        CATALOG + "CommitPayload",
        lifecycle_pb2.CommitPayloadRequest(id=id_pb2.PayloadID(value=raw_id[:15])),
        lifecycle_pb2.CommitPayloadResponse,
    )

    lease = rpc(
        DATA + "AcquireReadLease",
        lease_pb2.AcquireReadLeaseRequest(id=payload_id, min_lease_duration_ms=5000),
        lease_pb2.AcquireReadLeaseResponse,
    )
    out["lease"] = {
        "lease_id_bytes": len(lease.lease_id.value),
        "state": types_pb2.PayloadState.Name(lease.payload_descriptor.state),
        "version": lease.payload_descriptor.version,
        "disk_path": lease.payload_descriptor.disk.path,
        "expires_at_s": lease.lease_expires_at.seconds,
    }
    out["delete_while_leased"] = status_of(
        CATALOG + "Delete", lifecycle_pb2.DeleteRequest(id=payload_id), empty_pb2.Empty
    )

    released = rpc(DATA + "ReleaseLease", lease_pb2.ReleaseLeaseRequest(lease_id=lease.lease_id), empty_pb2.Empty)
    check(isinstance(released, empty_pb2.Empty), "ReleaseLease did not return google.protobuf.Empty")
    out["release"] = "ok"

    rpc(CATALOG + "Delete", lifecycle_pb2.DeleteRequest(id=payload_id), empty_pb2.Empty)
    out["delete"] = {"file_exists_after": os.path.exists(path)}
    out["lease_after_delete"] = status_of(
        DATA + "AcquireReadLease", lease_pb2.AcquireReadLeaseRequest(id=payload_id), lease_pb2.AcquireReadLeaseResponse
    )

    channel.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
