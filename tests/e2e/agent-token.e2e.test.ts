// The agent token guards both directions: agents present it to the registry, and the API (and the
// workers) present it to agents. A system started with PM_AGENT_TOKEN allocates, commits, leases
// and deletes as usual, while a call to the agent's own port without the token is refused.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { createPayloadClient } from "@pm/client";
import { ListRegionsRequestSchema, Tier, TierAgentService } from "@pm/rpc";
import { postProto } from "@pm/rpc/node/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningSystem, removeDataDir, startSystem } from "../support/system.ts";

const TOKEN = "e2e-agent-token";
let sys: RunningSystem;
beforeAll(async () => {
  sys = await startSystem({ env: { PM_AGENT_TOKEN: TOKEN } });
});
afterAll(async () => {
  await sys?.stop();
  for (const f of readdirSync("/dev/shm"))
    if (sys && f.startsWith(sys.ramPrefix)) removeDataDir(join("/dev/shm", f));
  if (sys) removeDataDir(sys.dataDir);
});

/** The agent's URL, from its "tier agent listening" log line. */
function agentUrl(): string {
  const line = sys.output.find((l) => l.includes("tier agent listening"));
  if (!line) throw new Error(`no "tier agent listening" line:\n${sys.output.join("\n")}`);
  return (JSON.parse(line) as { url: string }).url;
}

describe("agent token", () => {
  it("lets the control plane allocate, commit, lease and delete through its agent", async () => {
    const client = createPayloadClient({ baseUrl: sys.url });
    const a = await client.catalog.allocatePayload({ sizeBytes: 4096n, preferredTier: Tier.RAM });
    const id = a.payloadDescriptor!.payloadId!;
    await client.catalog.commitPayload({ id });
    const lease = await client.data.acquireReadLease({ id });
    await client.data.releaseLease({ leaseId: lease.leaseId });
    await client.catalog.delete({ id, force: true });
    const segments = () => readdirSync("/dev/shm").filter((f) => f.startsWith(sys.ramPrefix));
    // The delete freed the segment through the agent, carrying the token.
    for (let i = 0; i < 100 && segments().length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(segments()).toEqual([]);
  });

  it("refuses calls to the agent's port that do not carry the token", async () => {
    const path = `/${TierAgentService.typeName}/ListRegions`;
    const body = toBinary(ListRegionsRequestSchema, create(ListRegionsRequestSchema));
    const without = await postProto(agentUrl(), path, body);
    expect(without.status).toBe(401);
    expect(JSON.parse(without.body.toString("utf8"))).toMatchObject({ code: "unauthenticated" });
    const wrong = await postProto(agentUrl(), path, body, { authorization: "Bearer nope" });
    expect(wrong.status).toBe(401);
    const right = await postProto(agentUrl(), path, body, { authorization: `Bearer ${TOKEN}` });
    expect(right.status).toBe(200);
  });
});
