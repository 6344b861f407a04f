import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, posix, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { API_ENV, type ApiConfig, ApiConfigSchema, loadConfig } from "@pm/api";
import { AGENT_ENV, type AgentConfig, AgentConfigSchema, loadAgentConfig } from "@pm/tier-agent";
import { loadWorkerConfig, WORKER_ENV, type WorkerConfig, WorkerConfigSchema } from "@pm/worker";
import { afterAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { type EdgeEnv, loadEdgeConfig } from "../../apps/api/src/edge/edge-config.ts";

// Checks of the deployment files in infra/ against the code they deploy: every config.yaml section
// loads with the real loaders and the environment each container gets, every PM_* variable set is
// one its process reads, and probes, ports and URLs agree with the loaded configuration. Plus the
// static checks that the parts agree with each other (selectors, images, Secret keys, Services).

const repo = fileURLToPath(new URL("../..", import.meta.url));
const read = (path: string) => readFileSync(join(repo, path), "utf8");

// biome-ignore lint/suspicious/noExplicitAny: manifests are untyped YAML
type Obj = Record<string, any>;
type Env = Record<string, string>;

const IMAGE_REPOSITORY = "payload-manager";
const SECRET_NAME = "payload-manager-credentials";
const CONFIG_MAP_NAME = "payload-manager-config";
const LAUNCHER = ["node", "bin/payload-manager.mjs"];
const ROLES = ["all", "api", "worker", "agent", "migrate"] as const;
type Role = (typeof ROLES)[number];
/** Inside a container a listener must take every interface, or probes and peers cannot reach it. */
const WILDCARD = ["0.0.0.0", "::"];
// The tag may be a compose variable with a default: payload-manager:${PM_VERSION:-dev}.
const imageRepository = (image: string) => image.replace(/:(\$\{[^}]*\}|[\w.-]+)$/, "");

function parseYamlFile(path: string): Obj {
  // Compose files use merge keys (<<: *anchor).
  return parse(read(path), { merge: true }) as Obj;
}

const scratch = mkdtempSync(join(tmpdir(), "pm-manifests-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------
// What the apps read: the env tables the config modules export, or (where a table is private) the
// names in its source, each confirmed by loading a configuration with that variable set.
// ---------------------------------------------------------------------------------------------

/** PM_* names of the `const ENV = { ... }` table (or `interface EdgeEnv`) of a source file. */
function envNamesInSource(path: string, block: RegExp): string[] {
  const body = block.exec(read(path))?.[1];
  if (body === undefined) throw new Error(`${path}: no env table found by ${block}; update this test`);
  return [...body.matchAll(/^\s+(?:readonly\s+)?(PM_[A-Z0-9_]+)\??:/gm)].map((m) => m[1]!);
}

type Loader = (env: Env) => unknown;
const loaders: Record<"api" | "worker" | "agent" | "edge", Loader> = {
  api: (env) => loadConfig(undefined, env),
  worker: (env) => loadWorkerConfig(undefined, env),
  agent: (env) => loadAgentConfig(undefined, env),
  edge: (env) => loadEdgeConfig(env as EdgeEnv),
};

const READ_BY = {
  // The env tables the config loaders apply (API_ENV includes OBJECT_STORE_ENV).
  api: new Set(Object.keys(API_ENV)),
  worker: new Set(Object.keys(WORKER_ENV)),
  agent: new Set(Object.keys(AGENT_ENV)),
  edge: new Set(envNamesInSource("apps/api/src/edge/edge-config.ts", /interface EdgeEnv \{\n([\s\S]*?)\n\}/)),
};
/** The env table each launcher role validates (migrate reads the api: section's catalogUrl). */
const READ_BY_ROLE: Record<Role, ReadonlySet<string>> = {
  all: new Set([...READ_BY.api, ...READ_BY.worker, ...READ_BY.agent]),
  api: READ_BY.api,
  worker: READ_BY.worker,
  agent: READ_BY.agent,
  migrate: READ_BY.api,
};

/** Whether setting `name` changes what a loader returns (or makes it fail): the loader reads it. */
function isRead(load: Loader, name: string): boolean {
  const outcome = (env: Env) => {
    try {
      return JSON.stringify(load(env));
    } catch (e) {
      return `threw ${(e as Error).message}`;
    }
  };
  return outcome({ [name]: "zz-probe" }) !== outcome({});
}

describe("the env tables this test collects", () => {
  it("are names the loaders really read: setting one changes the loaded configuration", () => {
    for (const [app, names] of Object.entries(READ_BY)) {
      expect(names.size, app).toBeGreaterThan(3);
      for (const name of names)
        expect(isRead(loaders[app as keyof typeof loaders], name), `${app} ${name}`).toBe(true);
    }
    expect(READ_BY.api).toContain("PM_CATALOG_URL");
    expect(READ_BY.agent).toContain("PM_AGENT_ADVERTISE_URL");
    expect(READ_BY.edge).toContain("PM_AUTH_TOKENS");
  });

  it("the probe tells a variable nobody reads (PM_DATABASE_URL is not one of ours)", () => {
    for (const load of Object.values(loaders)) expect(isRead(load, "PM_DATABASE_URL")).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// Launcher command lines and the configuration each container ends up with.
// ---------------------------------------------------------------------------------------------

/** `node bin/payload-manager.mjs <role> [--config file]`, parsed the way bin/launcher.ts does. */
function launch(argv: readonly string[], where: string): { role: Role; configFile?: string } {
  expect(argv.slice(0, 2), `${where}: runs the launcher`).toEqual(LAUNCHER);
  let role: Role = "all";
  let configFile: string | undefined;
  const rest = argv.slice(2);
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === "--config" || a === "-c") configFile = rest[++i];
    else if (a.startsWith("--config=")) configFile = a.slice("--config=".length);
    else if ((ROLES as readonly string[]).includes(a)) role = a as Role;
    else throw new Error(`${where}: the launcher rejects argument ${JSON.stringify(a)}`);
  }
  return { role, configFile };
}

interface Effective {
  api?: ApiConfig;
  worker?: WorkerConfig;
  agent?: AgentConfig;
}

/** Loads what `role` loads at start (bin/launcher.ts), from `file` and `env`; throws like it. */
function loadRole(role: Role, file: string | undefined, env: Env): Effective {
  const out: Effective = {};
  if (role === "all" || role === "api" || role === "migrate") out.api = loadConfig(file, env);
  if (role === "all" || role === "agent") out.agent = loadAgentConfig(file, env);
  if (role === "all" || role === "worker") out.worker = loadWorkerConfig(file, env);
  return out;
}

/** Peels default/prefault/optional wrappers off a zod schema (zod 4 `def`). */
// biome-ignore lint/suspicious/noExplicitAny: walks zod internals
function unwrap(schema: any): any {
  let s = schema;
  while (s?.def && ["default", "prefault", "optional", "nullable"].includes(s.def.type)) s = s.def.innerType;
  return s;
}

/** Keys of `value` that `schema` does not have, at any depth (non-strict objects drop them silently). */
// biome-ignore lint/suspicious/noExplicitAny: walks zod internals
function unknownKeys(schema: any, value: unknown, path: string): string[] {
  const s = unwrap(schema);
  if (s?.def?.type !== "object" || value === null || typeof value !== "object" || Array.isArray(value))
    return [];
  return Object.entries(value).flatMap(([k, v]) =>
    k in s.shape ? unknownKeys(s.shape[k], v, `${path}.${k}`) : [`${path}.${k}`],
  );
}

/** Only api:, worker: and agent: are read, each by its schema; other keys would be ignored silently. */
function expectOnlyKnownKeys(doc: Obj, where: string) {
  expect(doc, where).toBeTypeOf("object");
  const schemas = { api: ApiConfigSchema, worker: WorkerConfigSchema, agent: AgentConfigSchema };
  expect(
    Object.keys(doc).filter((k) => !(k in schemas)),
    `${where}: sections nobody reads`,
  ).toEqual([]);
  for (const [section, schema] of Object.entries(schemas)) {
    expect(doc[section], `${where}: ${section}: section`).toBeTypeOf("object");
    expect(unknownKeys(schema, doc[section], section), `${where}: keys the schema does not have`).toEqual([]);
  }
}

/** What the processes agree on: one catalog, one object store, the same timeouts. */
function expectRolesAgree(loaded: { name: string; role: Role; config: Effective }[], where: string) {
  const api = loaded.find((c) => c.role === "api")?.config.api;
  const worker = loaded.find((c) => c.role === "worker")?.config.worker;
  const agent = loaded.find((c) => c.role === "agent")?.config.agent;
  expect(api && worker && agent, `${where}: api, worker and agent configurations`).toBeTruthy();
  for (const { name, config: c } of loaded) {
    // The default sqlite: catalog would be a private file per container: migrate would "succeed"
    // on it and the replicas would not share state.
    if (c.api) expect(c.api.catalogUrl, `${where} ${name}: api.catalogUrl`).toMatch(/^postgres(ql)?:\/\//);
    if (c.worker) expect(c.worker.catalogUrl, `${where} ${name}: worker.catalogUrl`).toBe(api!.catalogUrl);
    if (c.api) expect(c.api.catalogUrl, `${where} ${name}: one catalog`).toBe(api!.catalogUrl);
  }
  expect(worker!.allocationTimeoutMs, `${where}: worker.allocationTimeoutMs = api's`).toBe(
    api!.allocationTimeoutMs,
  );
  expect(worker!.agentTtlMs, `${where}: worker.agentTtlMs = api's`).toBe(api!.agentTtlMs);
  expect(worker!.objectStore, `${where}: worker.objectStore = api's`).toEqual(api!.objectStore);
  expect(api!.objectStore, `${where}: api.objectStore`).toBeDefined();
  for (const key of ["endpoint", "region", "bucket", "forcePathStyle"] as const)
    expect(agent!.objectStore?.[key], `${where}: agent.objectStore.${key} = api's`).toEqual(
      api!.objectStore![key],
    );
  expect(agent!.controlPlaneToken, `${where}: the agent presents the API's agent token`).toBe(
    api!.auth.agentToken,
  );
  expect(worker!.agentToken, `${where}: the worker sends agents the same agent token`).toBe(
    api!.auth.agentToken,
  );
  expect(WILDCARD, `${where}: api.host`).toContain(api!.host);
  expect(WILDCARD, `${where}: worker.metrics.host`).toContain(worker!.metrics.host);
  expect(WILDCARD, `${where}: agent.listenHost`).toContain(agent!.listenHost);
}

function expectKnownEnv(role: Role, env: Env, where: string) {
  for (const name of Object.keys(env).filter((n) => n.startsWith("PM_")))
    expect([...READ_BY_ROLE[role]], `${where}: ${name} is not read by \`payload-manager ${role}\``).toContain(
      name,
    );
}

// ---------------------------------------------------------------------------------------------
// Kubernetes
// ---------------------------------------------------------------------------------------------

const k8sFiles = readdirSync(join(repo, "infra/k8s"))
  .filter((f) => f.endsWith(".yaml"))
  .sort();

const k8sObjects: { file: string; obj: Obj }[] = k8sFiles.flatMap((file) =>
  parseAllDocuments(read(`infra/k8s/${file}`)).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join("; ")}`);
    return { file, obj: doc.toJS() as Obj };
  }),
);
const resources = k8sObjects.filter(({ obj }) => obj && obj.kind !== "Kustomization");
const ofKind = (kind: string) => resources.filter(({ obj }) => obj.kind === kind).map(({ obj }) => obj);
const workloads = [...ofKind("Deployment"), ...ofKind("DaemonSet"), ...ofKind("Job")];
const podOf = (w: Obj): Obj => w.spec.template.spec;
const containersOf = (w: Obj): Obj[] => podOf(w).containers;
const allContainersOf = (w: Obj): Obj[] => [...(podOf(w).initContainers ?? []), ...podOf(w).containers];
const named = (kind: string, name: string) => ofKind(kind).find((o) => o.metadata.name === name);
const secretExample = parseYamlFile("infra/k8s/secret.example.yaml");
const configMap = named("ConfigMap", CONFIG_MAP_NAME);

/** Downward-API values for the environment of a pod on a sample node. */
const FIELD_SAMPLES: Record<string, string> = {
  "spec.nodeName": "node-a.example.internal",
  "status.podIP": "10.1.2.3",
  "metadata.name": "payload-manager-pod-x",
  "metadata.namespace": "payload-manager",
};

/** The environment the kubelet gives a container: values, $(VAR) expansion, Secret, downward API. */
function k8sEnv(container: Obj, where: string): Env {
  const env: Env = {};
  for (const e of container.env ?? []) {
    if (e.value !== undefined) {
      // $(VAR) expands to an earlier variable of the same container; unknown ones stay as written.
      env[e.name] = String(e.value).replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v) => env[v] ?? m);
    } else if (e.valueFrom?.secretKeyRef) {
      const { name, key } = e.valueFrom.secretKeyRef;
      expect(name, `${where} ${e.name}`).toBe(SECRET_NAME);
      expect(
        Object.keys(secretExample.stringData),
        `${where} ${e.name}: key of the example Secret`,
      ).toContain(key);
      env[e.name] = String(secretExample.stringData[key]);
    } else if (e.valueFrom?.fieldRef) {
      const value = FIELD_SAMPLES[e.valueFrom.fieldRef.fieldPath];
      expect(value, `${where} ${e.name}: fieldRef ${e.valueFrom.fieldRef.fieldPath}`).toBeDefined();
      env[e.name] = value!;
    } else {
      throw new Error(`${where} ${e.name}: unsupported env source ${JSON.stringify(e.valueFrom)}`);
    }
  }
  return env;
}

/** The ConfigMap key a container's `--config` path names, written to a temp file for the loaders. */
function k8sConfigFile(w: Obj, container: Obj, configFile: string | undefined, where: string) {
  if (configFile === undefined) return undefined;
  const mount = (container.volumeMounts ?? []).find(
    (m: Obj) => posix.dirname(configFile) === posix.normalize(m.mountPath),
  );
  expect(mount, `${where}: a volume mounted at ${posix.dirname(configFile)}`).toBeDefined();
  const volume = podOf(w).volumes.find((v: Obj) => v.name === mount.name);
  expect(volume?.configMap?.name, `${where}: ${mount.name} is the ConfigMap`).toBe(CONFIG_MAP_NAME);
  const key = posix.basename(configFile);
  expect(Object.keys(configMap!.data), `${where}: ConfigMap key ${key}`).toContain(key);
  const file = join(scratch, "k8s", key);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, configMap!.data[key]);
  return file;
}

interface K8sContainer {
  workload: Obj;
  container: Obj;
  where: string;
  role: Role;
  env: Env;
  config: Effective;
}

const isLauncher = (c: Obj) => [...(c.command ?? []), ...(c.args ?? [])][0] === "node";

/** Every container that runs the launcher, with its environment and the configuration it loads. */
function k8sContainers(): K8sContainer[] {
  return workloads.flatMap((w) =>
    allContainersOf(w)
      .filter(isLauncher)
      .map((container) => {
        const where = `${w.kind} ${w.metadata.name}/${container.name}`;
        const { role, configFile } = launch([...(container.command ?? []), ...(container.args ?? [])], where);
        const env = k8sEnv(container, where);
        const file = k8sConfigFile(w, container, configFile, where);
        return { workload: w, container, where, role, env, config: loadRole(role, file, env) };
      }),
  );
}

/** A probe's or Service's port, by name or number, as the container's port number. */
function containerPort(container: Obj, port: string | number, where: string): number {
  if (typeof port === "number") return port;
  const p = (container.ports ?? []).find((x: Obj) => x.name === port);
  expect(p, `${where}: port ${port} is declared`).toBeDefined();
  return p.containerPort;
}

describe("kubernetes manifests", () => {
  it("parse, and every object has apiVersion, kind and metadata.name", () => {
    expect(resources.length).toBeGreaterThan(0);
    for (const { file, obj } of resources) {
      expect(obj, file).toBeTypeOf("object");
      expect(obj.apiVersion, file).toMatch(/\S/);
      expect(obj.kind, file).toMatch(/\S/);
      expect(obj.metadata?.name, `${file} ${obj.kind}`).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    }
  });

  it("kustomization lists every manifest except the example Secret, and nothing missing", () => {
    const kustomization = parseYamlFile("infra/k8s/kustomization.yaml");
    const listed = [...kustomization.resources].sort();
    const expected = k8sFiles.filter((f) => f !== "kustomization.yaml" && !f.endsWith(".example.yaml"));
    expect(listed).toEqual(expected);
  });

  it("has the API Deployment with Services and CPU HPA, the worker Deployment, the agent DaemonSet and the migrate Job", () => {
    expect(
      ofKind("Deployment")
        .map((d) => d.metadata.name)
        .sort(),
    ).toEqual(["payload-manager-api", "payload-manager-worker"]);
    expect(ofKind("DaemonSet").map((d) => d.metadata.name)).toEqual(["payload-manager-tier-agent"]);
    expect(ofKind("Job").map((d) => d.metadata.name)).toEqual(["payload-manager-migrate"]);

    const hpa = named("HorizontalPodAutoscaler", "payload-manager-api");
    expect(hpa?.spec.scaleTargetRef).toEqual({
      apiVersion: "apps/v1",
      kind: "Deployment",
      name: "payload-manager-api",
    });
    expect(hpa?.spec.metrics.map((m: Obj) => m.resource?.name)).toContain("cpu");
    expect(hpa?.spec.minReplicas).toBeGreaterThanOrEqual(2);
    // Utilisation targets need CPU requests on the scaled pods; the HPA owns the replica count.
    const api = named("Deployment", "payload-manager-api")!;
    expect(api.spec.replicas).toBeUndefined();
    for (const c of containersOf(api)) expect(c.resources?.requests?.cpu, c.name).toBeDefined();
  });

  it("workload selectors match their pod template labels", () => {
    for (const w of workloads.filter((x) => x.kind !== "Job")) {
      const selector = w.spec.selector.matchLabels as Obj;
      expect(Object.keys(selector).length, w.metadata.name).toBeGreaterThan(0);
      expect(w.spec.template.metadata.labels, w.metadata.name).toMatchObject(selector);
    }
  });

  it("every section of the ConfigMap's config.yaml loads with the real loaders, in every container", () => {
    expect(configMap).toBeDefined();
    expectOnlyKnownKeys(parse(configMap!.data["config.yaml"]) as Obj, "ConfigMap config.yaml");
    const containers = k8sContainers();
    expect(containers.map((c) => `${c.where}: ${c.role}`).sort()).toEqual([
      "DaemonSet payload-manager-tier-agent/tier-agent: agent",
      "Deployment payload-manager-api/api: api",
      "Deployment payload-manager-api/migrate: migrate",
      "Deployment payload-manager-worker/worker: worker",
      "Job payload-manager-migrate/migrate: migrate",
    ]);
    // The one container that does not run the launcher prepares the agent's disk-tier hostPath.
    const others = workloads.flatMap((w) => allContainersOf(w).filter((c) => !isLauncher(c)));
    const diskRoot = containers.find((c) => c.role === "agent")!.config.agent!.tiers.disk.root;
    expect(others.map((c) => c.command)).toEqual([["chown", "1000:1000", diskRoot]]);
    expectRolesAgree(
      containers.map((c) => ({ name: c.where, role: c.role, config: c.config })),
      "k8s",
    );
  });

  it("sets only PM_* variables the container's role reads (no PM_DATABASE_URL)", () => {
    for (const c of k8sContainers()) expectKnownEnv(c.role, c.env, c.where);
  });

  it("migrates before the API serves: the Job, and an init container on the same catalog", () => {
    const job = named("Job", "payload-manager-migrate")!;
    expect(podOf(job).restartPolicy).toMatch(/^(OnFailure|Never)$/);
    const api = named("Deployment", "payload-manager-api")!;
    const init = (podOf(api).initContainers ?? []).map((c: Obj) => launch(c.args, `api init ${c.name}`).role);
    expect(init).toEqual(["migrate"]);
  });

  it("container ports and probes are the configured ports, and listeners take every interface", () => {
    for (const { container, where, config } of k8sContainers().filter((c) => c.role !== "migrate")) {
      const declared = (container.ports ?? []).map((p: Obj) => p.containerPort).sort();
      const live = container.livenessProbe;
      const ready = container.readinessProbe;
      if (config.api) {
        expect(declared, `${where}: ports`).toEqual([config.api.httpPort, config.api.grpcPort].sort());
        expect(containerPort(container, "http", where)).toBe(config.api.httpPort);
        expect(containerPort(container, "grpc", where)).toBe(config.api.grpcPort);
        for (const [probe, path] of [
          [live, "/healthz"],
          [ready, "/readyz"],
        ] as const) {
          expect(probe?.httpGet?.path, where).toBe(path);
          expect(containerPort(container, probe.httpGet.port, where), `${where} ${path}`).toBe(
            config.api.httpPort,
          );
        }
      } else if (config.worker) {
        expect(declared, `${where}: ports`).toEqual([config.worker.metrics.port]);
        for (const [probe, path] of [
          [live, "/healthz"],
          [ready, "/readyz"],
        ] as const) {
          expect(probe?.httpGet?.path, where).toBe(path);
          expect(containerPort(container, probe.httpGet.port, where), `${where} ${path}`).toBe(
            config.worker.metrics.port,
          );
        }
      } else if (config.agent) {
        expect(declared, `${where}: ports`).toEqual([config.agent.port]);
        const hostPorts = container.ports.map((p: Obj) => p.hostPort).filter(Boolean);
        for (const hp of hostPorts) expect(hp, `${where}: hostPort`).toBe(config.agent.port);
        // The agent serves its Connect service only (no /healthz): a TCP probe on its port.
        for (const probe of [live, ready]) {
          expect(probe?.tcpSocket, where).toBeDefined();
          expect(containerPort(container, probe.tcpSocket.port, where), where).toBe(config.agent.port);
        }
      } else {
        throw new Error(`${where}: no role loaded`);
      }
    }
  });

  it("Services reach the API's configured ports; agents register through one that lists unready pods", () => {
    const [api] = k8sContainers().filter((c) => c.where === "Deployment payload-manager-api/api");
    const [agent] = k8sContainers().filter((c) => c.role === "agent");
    const apiConfig = api!.config.api!;
    const agentConfig = agent!.config.agent!;
    const apiPod = named("Deployment", "payload-manager-api")!;

    for (const service of ofKind("Service")) {
      expect(apiPod.spec.template.metadata.labels, service.metadata.name).toMatchObject(
        service.spec.selector,
      );
    }
    const service = named("Service", "payload-manager-api")!;
    expect(named("Deployment", "payload-manager-worker")!.spec.template.metadata.labels).not.toMatchObject(
      service.spec.selector,
    );
    const ports = Object.fromEntries(service.spec.ports.map((p: Obj) => [p.name, p]));
    expect(containerPort(api!.container, ports.http?.targetPort, "Service http")).toBe(apiConfig.httpPort);
    expect(containerPort(api!.container, ports.grpc?.targetPort, "Service grpc")).toBe(apiConfig.grpcPort);
    expect(ports.grpc?.appProtocol).toBe("kubernetes.io/h2c");

    // The URLs name a Service and a Service port that lead to the API's HTTP listener.
    const httpBehind = (url: string, where: string) => {
      const u = new URL(url);
      const svc = named("Service", u.hostname.split(".")[0]!);
      expect(svc, `${where}: ${u.hostname} is a Service here`).toBeDefined();
      const port = svc!.spec.ports.find((p: Obj) => String(p.port) === (u.port || "80"));
      expect(port, `${where}: Service ${svc!.metadata.name} has port ${u.port}`).toBeDefined();
      expect(containerPort(api!.container, port.targetPort, where), where).toBe(apiConfig.httpPort);
      return svc!;
    };
    const registry = httpBehind(agentConfig.controlPlaneUrl, "agent.controlPlaneUrl");
    // An API pod turns ready only once an agent has registered (/readyz checks agents).
    expect(registry.spec.publishNotReadyAddresses, "agent.controlPlaneUrl's Service").toBe(true);
    expect(httpBehind(apiConfig.publicUrl!, "api.publicUrl").metadata.name).toBe("payload-manager-api");

    // The control plane calls each agent at its pod IP.
    expect(agentConfig.advertiseUrl).toBe(`http://${FIELD_SAMPLES["status.podIP"]}:${agentConfig.port}`);
    expect(agentConfig.agentId).toBe(FIELD_SAMPLES["spec.nodeName"]);
  });

  it("the tier agent DaemonSet shares the host IPC namespace and /dev/shm; the GPU limit is opt-in", () => {
    const agent = named("DaemonSet", "payload-manager-tier-agent")!;
    const pod = podOf(agent);
    expect(pod.hostIPC).toBe(true);
    const shm = pod.volumes.find((v: Obj) => v.hostPath?.path === "/dev/shm");
    expect(shm).toBeDefined();
    const [container] = containersOf(agent);
    expect(container?.volumeMounts).toContainEqual(
      expect.objectContaining({ name: shm.name, mountPath: "/dev/shm" }),
    );
    const [effective] = k8sContainers().filter((c) => c.role === "agent");
    expect(effective!.config.agent!.tiers.ram.dir).toBe("/dev/shm");
    // The disk tier's root is the node's hostPath.
    const diskMount = container!.volumeMounts.find(
      (m: Obj) => m.mountPath === effective!.config.agent!.tiers.disk.root,
    );
    expect(diskMount, "tiers.disk.root is mounted").toBeDefined();
    expect(pod.volumes.find((v: Obj) => v.name === diskMount.name)?.hostPath).toBeDefined();
    // RAM regions are fallocated by the agent: its memory cgroup pays for the whole RAM tier.
    const ram = effective!.config.agent!.tiers.ram.capacityBytes;
    expect(quantity(container!.resources.limits.memory), "agent memory limit").toBeGreaterThan(ram);
    expect(quantity(container!.resources.requests.memory), "agent memory request").toBeGreaterThan(ram);
    // Commented out: on CPU-only nodes a GPU limit would keep the agent from scheduling.
    expect(container?.resources?.limits?.["nvidia.com/gpu"]).toBeUndefined();
    expect(read("infra/k8s/tier-agent.yaml")).toMatch(/^\s*# nvidia\.com\/gpu: 1$/m);
  });

  it("every container runs the same image, at the tag kustomization sets", () => {
    const kustomization = parseYamlFile("infra/k8s/kustomization.yaml");
    const override = kustomization.images.find((i: Obj) => i.name === IMAGE_REPOSITORY);
    const images = workloads.flatMap(allContainersOf).map((c) => c.image as string);
    expect(new Set(images)).toEqual(new Set([`${IMAGE_REPOSITORY}:${override.newTag}`]));
  });

  it("credentials come from the one Secret, whose example has every key used", () => {
    const refs = workloads
      .flatMap(allContainersOf)
      .flatMap((c) => c.env ?? [])
      .map((e: Obj) => e.valueFrom?.secretKeyRef)
      .filter(Boolean);
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) {
      expect(ref.name).toBe(SECRET_NAME);
      expect(Object.keys(secretExample.stringData)).toContain(ref.key);
    }
    expect(secretExample.metadata.name).toBe(SECRET_NAME);
  });

  it("the mounted ConfigMap exists and holds a config.yaml shaped like the compose one", () => {
    for (const w of workloads) {
      const maps = (podOf(w).volumes ?? []).filter((v: Obj) => v.configMap).map((v: Obj) => v.configMap.name);
      if (w.kind !== "Job") expect(maps, w.metadata.name).toEqual([CONFIG_MAP_NAME]);
    }
    const k8sConfig = parse(configMap!.data["config.yaml"]) as Obj;
    const composeConfig = parseYamlFile("infra/compose/config.yaml");
    expect(keyPaths(k8sConfig)).toEqual(keyPaths(composeConfig));
  });
});

/** A Kubernetes resource quantity (512Mi, 68Gi, 1.5G, 1000) in bytes. */
function quantity(q: string | number): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$/.exec(String(q));
  if (!m) throw new Error(`cannot read quantity ${q}`);
  const units: Record<string, number> = { k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15 };
  for (const [i, u] of ["Ki", "Mi", "Gi", "Ti", "Pi"].entries()) units[u] = 1024 ** (i + 1);
  return Number(m[1]) * (m[2] ? units[m[2]]! : 1);
}

function keyPaths(value: unknown, prefix = ""): string[] {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return [prefix];
  return Object.entries(value)
    .flatMap(([k, v]) => keyPaths(v, prefix ? `${prefix}.${k}` : k))
    .sort();
}

// ---------------------------------------------------------------------------------------------
// Compose
// ---------------------------------------------------------------------------------------------

/** Compose's variable interpolation: ${X}, ${X:-default}, ${X-default}, ${X:?error}, ${X?error}, $$. */
function interpolate(text: string, shell: Env, where: string): string {
  return text.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}/g,
    (m, name, colon, op, arg) => {
      if (m === "$$") return "$";
      const value = shell[name];
      const missing = value === undefined || (colon === ":" && value === "");
      if (op === "-") return missing ? arg : value!;
      if (op === "?") {
        if (missing) throw new Error(`${where}: ${name} is required (${arg})`);
        return value!;
      }
      return value ?? "";
    },
  );
}

const composeText = read("infra/compose/docker-compose.yml");
const compose = parseYamlFile("infra/compose/docker-compose.yml");
const services = compose.services as Record<string, Obj>;
/** The variables the compose file says are required (${X:?...}), with sample values. */
const REQUIRED_SHELL = Object.fromEntries(
  [...composeText.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*):?\?/g)].map((m) => [
    m[1]!,
    `sample-${m[1]!.toLowerCase()}`,
  ]),
);
const OPTIONAL_SHELL: Env = {
  PM_AUTH_TOKENS: "sample-token-1=default,sample-token-2=team-b",
  PM_AGENT_TOKEN: "agent-token-x",
};

function composeEnv(service: Obj, shell: Env, where: string): Env {
  const env = service.environment ?? {};
  expect(Array.isArray(env), `${where}: environment is a mapping`).toBe(false);
  return Object.fromEntries(
    Object.entries(env).map(([k, v]) => [k, interpolate(String(v ?? ""), shell, `${where} ${k}`)]),
  );
}

function composeConfigFile(service: Obj, configFile: string | undefined, where: string) {
  if (configFile === undefined) return undefined;
  const mount = (service.volumes ?? [])
    .map((v: string) => v.split(":"))
    .find(([, target]: string[]) => target === configFile);
  expect(mount, `${where}: ${configFile} is mounted`).toBeDefined();
  return join(repo, "infra/compose", mount[0]);
}

function composeRoles(shell: Env) {
  return Object.entries(services)
    .filter(([, s]) => imageRepository(String(s.image ?? "")) === IMAGE_REPOSITORY)
    .map(([name, s]) => {
      const where = `compose ${name}`;
      const { role, configFile } = launch(s.command, where);
      const env = composeEnv(s, shell, where);
      return {
        name,
        service: s,
        role,
        env,
        config: loadRole(role, composeConfigFile(s, configFile, where), env),
      };
    });
}

/** `fetch('http://127.0.0.1:PORT/path')` or `connect(PORT, ...)` in a node -e healthcheck. */
function healthcheckTarget(service: Obj): { port: number; path?: string } {
  const script = (service.healthcheck?.test ?? []).join(" ");
  const http = /fetch\('http:\/\/(?:127\.0\.0\.1|localhost):(\d+)(\/[^']*)'\)/.exec(script);
  if (http) return { port: Number(http[1]), path: http[2] };
  const tcp = /connect\((\d+), '127\.0\.0\.1'\)/.exec(script);
  if (tcp) return { port: Number(tcp[1]) };
  throw new Error(`no healthcheck target in ${script}`);
}

const publishedTargets = (service: Obj) =>
  (service.ports ?? [])
    .map((p: string) =>
      Number(
        String(p)
          .replace(/\s*#.*$/, "")
          .split(":")
          .pop(),
      ),
    )
    .sort();

describe("compose file", () => {
  it("defines the single-host stack", () => {
    expect(Object.keys(services).sort()).toEqual([
      "api",
      "migrate",
      "postgres",
      "redis",
      "s3",
      "tier-agent",
      "worker",
    ]);
    expect(services.api?.deploy?.replicas).toBe(2);
  });

  it("depends_on names only services that exist", () => {
    for (const [name, service] of Object.entries(services)) {
      const deps = service.depends_on ?? [];
      const depNames = Array.isArray(deps) ? deps : Object.keys(deps);
      for (const dep of depNames) {
        expect(Object.keys(services), `${name} depends on ${dep}`).toContain(dep);
        expect(dep, `${name} depends on itself`).not.toBe(name);
      }
    }
  });

  it("every config.yaml section loads with the real loaders and each service's environment", () => {
    expectOnlyKnownKeys(parseYamlFile("infra/compose/config.yaml"), "compose config.yaml");
    for (const shell of [REQUIRED_SHELL, { ...REQUIRED_SHELL, ...OPTIONAL_SHELL }]) {
      const roles = composeRoles(shell);
      expect(roles.map((r) => `${r.name}: ${r.role}`).sort()).toEqual([
        "api: api",
        "migrate: migrate",
        "tier-agent: agent",
        "worker: worker",
      ]);
      expectRolesAgree(roles, "compose");
    }
    expect(REQUIRED_SHELL).toHaveProperty("PM_DB_PASSWORD");
    for (const name of Object.keys(REQUIRED_SHELL))
      expect(composeText.split("\nname:")[0], `the header names the required ${name}`).toContain(name);
  });

  it("sets only PM_* variables the service's role reads (no PM_DATABASE_URL)", () => {
    for (const r of composeRoles({ ...REQUIRED_SHELL, ...OPTIONAL_SHELL })) {
      expectKnownEnv(r.role, r.env, `compose ${r.name}`);
      for (const key of Object.keys(r.service.environment ?? {})) expect(key, r.name).toMatch(/^PM_/);
    }
  });

  it("healthchecks and published ports are the configured ports", () => {
    const roles = Object.fromEntries(composeRoles(REQUIRED_SHELL).map((r) => [r.name, r.config]));
    const api = roles.api!.api!;
    const worker = roles.worker!.worker!;
    const agent = roles["tier-agent"]!.agent!;
    expect(healthcheckTarget(services.api!)).toEqual({ port: api.httpPort, path: "/readyz" });
    expect(healthcheckTarget(services.worker!)).toEqual({ port: worker.metrics.port, path: "/readyz" });
    expect(healthcheckTarget(services["tier-agent"]!)).toEqual({ port: agent.port });
    expect(publishedTargets(services.api!)).toEqual([api.httpPort, api.grpcPort].sort());
    expect(publishedTargets(services["tier-agent"]!)).toEqual([agent.port]);
    // Service names are the hosts on the compose network.
    expect(agent.controlPlaneUrl).toBe(`http://api:${api.httpPort}`);
    expect(agent.advertiseUrl).toBe(`http://tier-agent:${agent.port}`);
  });

  it("runs the migration once, and the API and worker only after it succeeded", () => {
    const migrate = services.migrate!;
    expect(migrate.restart).toBe("no");
    expect(launch(migrate.command, "migrate").role).toBe("migrate");
    for (const name of ["api", "worker"])
      expect(services[name]!.depends_on?.migrate?.condition, name).toBe("service_completed_successfully");
    expect(migrate.depends_on?.postgres?.condition).toBe("service_healthy");
    // The API turns healthy only once an agent registered: the agent must not wait for that.
    expect(services["tier-agent"]!.depends_on?.api?.condition).toBe("service_started");
  });

  it("runs every role from the one image, with the mounted config", () => {
    for (const name of ["api", "worker", "tier-agent", "migrate"]) {
      const service = services[name]!;
      expect(imageRepository(service.image), name).toBe(IMAGE_REPOSITORY);
      expect(service.build?.dockerfile, name).toBe("infra/compose/Dockerfile");
      if (name === "migrate") continue;
      expect(service.volumes, name).toContain("./config.yaml:/etc/payload-manager/config.yaml:ro");
      expect(service.command, name).toContain("/etc/payload-manager/config.yaml");
    }
  });

  it("gives the tier agent the host's IPC namespace and /dev/shm, and no database or Redis", () => {
    const agent = services["tier-agent"]!;
    expect(agent.ipc).toBe("host");
    expect(agent.volumes).toContain("/dev/shm:/dev/shm");
    const env = Object.keys(agent.environment);
    expect(env).not.toContain("PM_CATALOG_URL");
    expect(env).not.toContain("PM_REDIS_URL");
  });

  it("builds an image on node:20-bookworm-slim that starts bin/payload-manager.mjs", () => {
    const dockerfile = read("infra/compose/Dockerfile");
    const bases = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
    expect(new Set(bases)).toEqual(new Set(["node:20-bookworm-slim"]));
    expect(dockerfile).toMatch(/^RUN npm ci\b/m);
    // The native addon compiles during npm ci.
    expect(dockerfile).toMatch(/apt-get install[^\n]*\bpython3\b[^\n]*\bmake\b[^\n]*\bg\+\+/);
    expect(dockerfile).toMatch(/^CMD \["node", "bin\/payload-manager\.mjs"\]$/m);
    const exposed = [...dockerfile.matchAll(/^EXPOSE\s+(.+)$/gm)].flatMap((m) =>
      m[1]!.split(/\s+/).map(Number),
    );
    const defaults = {
      api: ApiConfigSchema.parse({}),
      worker: WorkerConfigSchema.parse({}),
      agent: AgentConfigSchema.parse({}),
    };
    expect(exposed.sort()).toEqual(
      [
        defaults.api.httpPort,
        defaults.api.grpcPort,
        defaults.worker.metrics.port,
        defaults.agent.port,
      ].sort(),
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Wrangler
// ---------------------------------------------------------------------------------------------

describe("wrangler config", () => {
  const toml = read("infra/wrangler/wrangler.toml");
  const value = (key: string) => toml.match(new RegExp(`^${key}\\s*=\\s*(.+)$`, "m"))?.[1];
  /** The [vars] table: `NAME = "string"` lines up to the next table. */
  const vars: Env = (() => {
    const body = /^\[vars\]$([\s\S]*?)(?=^\[|(?![\s\S]))/m.exec(toml)?.[1] ?? "";
    const out: Env = {};
    for (const line of body.split("\n")) {
      const t = line.trim();
      if (t === "" || t.startsWith("#")) continue;
      const m = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"([^"\\]*)"\s*(#.*)?$/.exec(t);
      if (!m) throw new Error(`wrangler.toml [vars]: cannot read ${JSON.stringify(t)} (string values only)`);
      out[m[1]!] = m[2]!;
    }
    return out;
  })();
  const secrets = [...toml.matchAll(/wrangler secret put (\w+)/g)].map((m) => m[1]!);

  it("points at the API's Workers entry with the pinned date and nodejs_compat", () => {
    const main = JSON.parse(value("main") ?? "null") as string;
    expect(resolve(repo, "infra/wrangler", main)).toBe(resolve(repo, "apps/api/src/worker-entry.ts"));
    expect(value("compatibility_date")).toBe('"2026-04-26"');
    expect(JSON.parse(value("compatibility_flags") ?? "[]")).toContain("nodejs_compat");
  });

  it("sets only bindings the edge configuration reads, and they load", () => {
    expect(Object.keys(vars).length).toBeGreaterThan(0);
    for (const name of [...Object.keys(vars), ...secrets])
      expect([...READ_BY.edge], `wrangler.toml ${name} is not read by loadEdgeConfig`).toContain(name);
    const secretSamples = Object.fromEntries(
      secrets.map((s) => [s, s === "PM_AUTH_TOKENS" ? "edge-token-1=default" : "x".repeat(16)]),
    );
    expect(() => loadEdgeConfig(vars as EdgeEnv)).not.toThrow();
    expect(() => loadEdgeConfig({ ...vars, ...secretSamples } as EdgeEnv)).not.toThrow();
  });

  it("keeps credentials out of vars", () => {
    expect(secrets.sort()).toEqual(["PM_AGENT_TOKEN", "PM_AUTH_TOKENS"]);
    for (const name of Object.keys(vars)) expect(secrets, name).not.toContain(name);
    expect(toml).not.toMatch(/^PM_\w*(SECRET|PASSWORD|ACCESS_KEY|TOKEN)\w*\s*=/m);
    expect(toml).not.toMatch(/^PM_\w+\s*=\s*"[a-z]+:\/\/[^"@/]*:[^"@/]*@/m);
  });
});
