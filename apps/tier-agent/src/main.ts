import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createConnectTransport } from "@connectrpc/connect-web";
import { tryNativeApi } from "@pm/native";
import pino from "pino";
import type { AgentConfig } from "./config.ts";
import { reconcile } from "./reconcile.ts";
import { type Logger, Registration } from "./registration.ts";
import { agentRequestHandler } from "./server.ts";
import { TierAgent } from "./tier-agent.ts";
import { coalescedCreateFile } from "./tiers/coalesced-create.ts";
import { diskTier } from "./tiers/disk.ts";
import { gpuCopier, gpuTiers } from "./tiers/gpu.ts";
import { objectTier } from "./tiers/object.ts";
import { ramTier } from "./tiers/ram.ts";
import type { TierBackend } from "./tiers/tier-backend.ts";

export interface AgentHandle {
  readonly url: string;
  readonly agent: TierAgent;
  readonly registration: Registration;
  /** Resolves when start-up reconciliation has finished (after the orphan grace period). */
  readonly reconciled: Promise<unknown>;
  close(): Promise<void>;
}

/**
 * Composition root of the tier agent: builds the enabled tiers, serves the agent's Connect
 * service, registers and heartbeats with the control plane, and reconciles regions in the
 * background.
 */
export async function startAgent(
  config: AgentConfig,
  overrides: { log?: Logger } = {},
): Promise<AgentHandle> {
  const log: Logger = overrides.log ?? pino({ level: config.logLevel, name: "payload-manager-agent" });
  const native = tryNativeApi();
  if (!native.ok)
    log.warn(
      { err: native.error.message },
      "native addon unavailable: regions are created sparse and the GPU tier is off",
    );
  // Regions created together (a CreateRegions call) share one trip to the libuv pool.
  const createFile = native.ok ? coalescedCreateFile(native.api.createFiles) : undefined;
  const backends: TierBackend[] = [];
  if (config.tiers.ram.enabled) backends.push(ramTier(config.tiers.ram, createFile));
  if (config.tiers.disk.enabled) backends.push(diskTier(config.tiers.disk, createFile));
  const copiers = [];
  if (native.ok) {
    const gpu = gpuTiers(native.api, config.tiers.gpu);
    backends.push(...gpu.tiers);
    if (gpu.reason) log.info({ reason: gpu.reason }, "GPU tier off");
    copiers.push(gpuCopier(native.api));
  }
  const objects = config.objectStore
    ? objectTier({ ...config.objectStore, endpoint: config.objectStore.endpoint ?? "" }, config.agentId)
    : undefined;
  const agent = new TierAgent(backends, copiers, objects);

  const server = http.createServer(agentRequestHandler(agent, log, { token: config.controlPlaneToken }));
  server.listen(config.port, config.listenHost);
  await once(server, "listening");
  const addr = server.address() as AddressInfo;
  const url = `http://${config.listenHost}:${addr.port}`;

  const registration = new Registration(agent, {
    agentId: config.agentId,
    host: config.host,
    endpoint: config.advertiseUrl ?? url,
    token: config.controlPlaneToken,
    transport: createConnectTransport({ baseUrl: config.controlPlaneUrl }),
    log,
    watermarks: {
      RAM: { high: config.tiers.ram.highWatermark, low: config.tiers.ram.lowWatermark },
      DISK: { high: config.tiers.disk.highWatermark, low: config.tiers.disk.lowWatermark },
      GPU: { high: config.tiers.gpu.highWatermark, low: config.tiers.gpu.lowWatermark },
    },
  });
  registration.start();
  const reconciled = reconcile(agent, () => registration.register(), config.orphanGraceMs, log).catch(
    (e: unknown) =>
      log.warn({ err: (e as Error).message }, "reconciliation failed; it runs again at the next start"),
  );
  log.info(
    {
      url,
      agentId: config.agentId,
      tiers: backends.map((b) => b.tier),
      objectBucket: config.objectStore?.bucket,
    },
    "tier agent listening",
  );

  return {
    url,
    agent,
    registration,
    reconciled,
    async close() {
      registration.stop();
      server.closeIdleConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await agent.close();
    },
  };
}
