// `npm run bench`: every benchmark, each printing the project's figure next to a baseline measured
// in the same run. Select with PM_BENCH=control-plane,control-plane-postgres,agent-client,postgres-scale,data-plane,object-tier,jobs
// (default: all).
import { agentClientBench } from "./agent-client.ts";
import { controlPlaneBench, controlPlanePostgresBench } from "./control-plane.ts";
import { dataPlaneBench } from "./data-plane.ts";
import { jobsBench } from "./jobs.ts";
import { objectTierBench } from "./object-tier.ts";
import { postgresScaleBench } from "./postgres-scale.ts";

const only = (process.env.PM_BENCH ?? "").split(",").filter(Boolean);
const want = (name: string) => only.length === 0 || only.includes(name);

console.log(
  `payload-manager benchmarks — ${new Date().toISOString()} — node ${process.version}, ${(await import("node:os")).cpus().length} CPUs`,
);
if (want("control-plane")) await controlPlaneBench();
if (want("control-plane-postgres")) await controlPlanePostgresBench();
if (want("agent-client")) await agentClientBench();
if (want("postgres-scale")) await postgresScaleBench();
if (want("data-plane")) await dataPlaneBench();
if (want("object-tier")) await objectTierBench();
if (want("jobs")) await jobsBench();
