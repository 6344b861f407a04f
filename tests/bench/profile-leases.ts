// Profiles the API under the lease-pair load alone: PM_BENCH_API_NODE_ARGS="--cpu-prof
// --cpu-prof-dir=DIR" node --import tsx tests/bench/profile-leases.ts (Postgres from
// PM_TEST_DATABASE_URL). Not part of `npm run bench`; a tool for finding where a call's time goes.
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import {
  AcquireReadLeaseRequestSchema,
  AcquireReadLeaseResponseSchema,
  PayloadDataService,
  ReleaseLeaseRequestSchema,
  Tier,
} from "@pm/rpc";
import { cpuText, freshDatabase, startControlPlane, withCpu } from "./control-plane.ts";
import { leanConnect } from "./lib/lean-connect.ts";
import { closedLoop } from "./lib/stats.ts";

const db = await freshDatabase("pm_prof");
// PM_BENCH_CATALOG_PARAMS, e.g. "group_commit_lanes=1", is appended to the catalog URL.
const params = process.env.PM_BENCH_CATALOG_PARAMS;
const cp = await startControlPlane(params ? `${db.url}?${params}` : db.url);
try {
  const ids = [];
  for (let i = 0; i < 64; i++) {
    const { payloadDescriptor: d } = await cp.client.catalog.allocatePayload({
      sizeBytes: 4096n,
      preferredTier: Tier.RAM,
    });
    await cp.client.catalog.commitPayload({ id: d!.payloadId });
    ids.push(d!.payloadId!);
  }
  const unary = leanConnect(cp.url);
  const acquire = unary(
    PayloadDataService,
    "AcquireReadLease",
    AcquireReadLeaseRequestSchema,
    AcquireReadLeaseResponseSchema,
  );
  const release = unary(PayloadDataService, "ReleaseLease", ReleaseLeaseRequestSchema, EmptySchema);
  const bodies = ids.map((id) => acquire.encode({ id }));
  let n = 0;
  if (process.env.PM_PROFILE === "allocate") {
    const { result, cpu } = await withCpu(cp.pids, () =>
      closedLoop(
        async () => {
          const a = await cp.client.catalog.allocatePayload({ sizeBytes: 4096n, preferredTier: Tier.RAM });
          await cp.client.catalog.commitPayload({ id: a.payloadDescriptor!.payloadId });
        },
        16,
        Number(process.env.PM_BENCH_SECONDS ?? 8),
      ),
    );
    console.log(result, `CPU µs/pair load gen / API / agent / Postgres: ${cpuText(cpu)}`);
  } else {
    const { result: r, cpu } = await withCpu(cp.pids, () =>
      closedLoop(
        async () => {
          const l = await acquire.call(bodies[n++ % bodies.length]!);
          await release.call(release.encode({ leaseId: l.leaseId }));
        },
        16,
        Number(process.env.PM_BENCH_SECONDS ?? 8),
      ),
    );
    console.log(r, `CPU µs/pair load gen / API / agent / Postgres: ${cpuText(cpu)}`);
    const metrics = await (await fetch(`${cp.url}/metrics`)).text();
    console.log(
      metrics
        .split("\n")
        .filter(
          (l) =>
            l.startsWith("pm_catalog_group_commit_batch_size_sum") ||
            l.startsWith("pm_catalog_group_commit_batch_size_count"),
        )
        .join("\n"),
    );
  }
} finally {
  await cp.close();
  await db.drop();
}
