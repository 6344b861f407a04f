import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";

// Static checks of the deployment files in infra/: they parse, and the parts that must agree
// with each other (selectors, probes, ports, images, references) do.

const repo = fileURLToPath(new URL("../..", import.meta.url));
const read = (path: string) => readFileSync(join(repo, path), "utf8");

// biome-ignore lint/suspicious/noExplicitAny: manifests are untyped YAML
type Obj = Record<string, any>;

const IMAGE_REPOSITORY = "payload-manager";
const SECRET_NAME = "payload-manager-credentials";
const CONFIG_MAP_NAME = "payload-manager-config";
// The tag may be a compose variable with a default: payload-manager:${PM_VERSION:-dev}.
const imageRepository = (image: string) => image.replace(/:(\$\{[^}]*\}|[\w.-]+)$/, "");

function parseYamlFile(path: string): Obj {
  // Compose files use merge keys (<<: *anchor).
  return parse(read(path), { merge: true }) as Obj;
}

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
const workloads = [...ofKind("Deployment"), ...ofKind("DaemonSet")];
const containersOf = (w: Obj): Obj[] => w.spec.template.spec.containers;
const named = (kind: string, name: string) => ofKind(kind).find((o) => o.metadata.name === name);

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

  it("has the API Deployment with Service and CPU HPA, the worker Deployment and the agent DaemonSet", () => {
    expect(
      ofKind("Deployment")
        .map((d) => d.metadata.name)
        .sort(),
    ).toEqual(["payload-manager-api", "payload-manager-worker"]);
    expect(ofKind("DaemonSet").map((d) => d.metadata.name)).toEqual(["payload-manager-tier-agent"]);

    const hpa = named("HorizontalPodAutoscaler", "payload-manager-api");
    expect(hpa?.spec.scaleTargetRef).toEqual({
      apiVersion: "apps/v1",
      kind: "Deployment",
      name: "payload-manager-api",
    });
    expect(hpa?.spec.metrics.map((m: Obj) => m.resource?.name)).toContain("cpu");
    // Utilisation targets need CPU requests on the scaled pods.
    const api = named("Deployment", "payload-manager-api")!;
    for (const c of containersOf(api)) expect(c.resources?.requests?.cpu, c.name).toBeDefined();
  });

  it("workload selectors match their pod template labels", () => {
    for (const w of workloads) {
      const selector = w.spec.selector.matchLabels as Obj;
      expect(Object.keys(selector).length, w.metadata.name).toBeGreaterThan(0);
      expect(w.spec.template.metadata.labels, w.metadata.name).toMatchObject(selector);
    }
  });

  it("the API Service selects the API pods and exposes HTTP 8080 and gRPC h2c 50051", () => {
    const service = named("Service", "payload-manager-api")!;
    const api = named("Deployment", "payload-manager-api")!;
    expect(api.spec.template.metadata.labels).toMatchObject(service.spec.selector);
    expect(named("Deployment", "payload-manager-worker")!.spec.template.metadata.labels).not.toMatchObject(
      service.spec.selector,
    );
    const ports = Object.fromEntries(service.spec.ports.map((p: Obj) => [p.name, p]));
    expect(ports.http?.port).toBe(8080);
    expect(ports.grpc?.port).toBe(50051);
    expect(ports.grpc?.appProtocol).toBe("kubernetes.io/h2c");
    const containerPorts = containersOf(api).flatMap((c) => c.ports.map((p: Obj) => p.name));
    for (const p of service.spec.ports) expect(containerPorts).toContain(p.targetPort);
  });

  it("the tier agent DaemonSet shares the host IPC namespace and /dev/shm and asks for a GPU", () => {
    const agent = named("DaemonSet", "payload-manager-tier-agent")!;
    const pod = agent.spec.template.spec;
    expect(pod.hostIPC).toBe(true);
    const shm = pod.volumes.find((v: Obj) => v.hostPath?.path === "/dev/shm");
    expect(shm).toBeDefined();
    const [container] = containersOf(agent);
    expect(container?.volumeMounts).toContainEqual(
      expect.objectContaining({ name: shm.name, mountPath: "/dev/shm" }),
    );
    expect(container?.resources.limits["nvidia.com/gpu"]).toBeGreaterThanOrEqual(1);
    expect(container?.ports.map((p: Obj) => p.containerPort)).toContain(7070);
  });

  it("liveness probes GET /healthz and readiness probes GET /readyz on a declared port", () => {
    for (const w of workloads) {
      for (const c of containersOf(w)) {
        const where = `${w.metadata.name}/${c.name}`;
        expect(c.livenessProbe?.httpGet?.path, where).toBe("/healthz");
        expect(c.readinessProbe?.httpGet?.path, where).toBe("/readyz");
        const declared = c.ports.flatMap((p: Obj) => [p.name, p.containerPort]);
        expect(declared, where).toContain(c.livenessProbe.httpGet.port);
        expect(declared, where).toContain(c.readinessProbe.httpGet.port);
      }
    }
  });

  it("every container runs the same image, at the tag kustomization sets", () => {
    const kustomization = parseYamlFile("infra/k8s/kustomization.yaml");
    const override = kustomization.images.find((i: Obj) => i.name === IMAGE_REPOSITORY);
    const images = workloads.flatMap(containersOf).map((c) => c.image as string);
    expect(new Set(images)).toEqual(new Set([`${IMAGE_REPOSITORY}:${override.newTag}`]));
  });

  it("credentials come from the one Secret, whose example has every key used", () => {
    const example = parseYamlFile("infra/k8s/secret.example.yaml");
    expect(example.metadata.name).toBe(SECRET_NAME);
    const refs = workloads
      .flatMap(containersOf)
      .flatMap((c) => c.env ?? [])
      .map((e: Obj) => e.valueFrom?.secretKeyRef)
      .filter(Boolean);
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) {
      expect(ref.name).toBe(SECRET_NAME);
      expect(Object.keys(example.stringData)).toContain(ref.key);
    }
  });

  it("the mounted ConfigMap exists and holds a config.yaml shaped like the compose one", () => {
    for (const w of workloads) {
      const maps = w.spec.template.spec.volumes
        .filter((v: Obj) => v.configMap)
        .map((v: Obj) => v.configMap.name);
      expect(maps, w.metadata.name).toEqual([CONFIG_MAP_NAME]);
    }
    const configMap = named("ConfigMap", CONFIG_MAP_NAME)!;
    const k8sConfig = parse(configMap.data["config.yaml"]) as Obj;
    const composeConfig = parseYamlFile("infra/compose/config.yaml");
    expect(keyPaths(k8sConfig)).toEqual(keyPaths(composeConfig));
  });
});

function keyPaths(value: unknown, prefix = ""): string[] {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return [prefix];
  return Object.entries(value)
    .flatMap(([k, v]) => keyPaths(v, prefix ? `${prefix}.${k}` : k))
    .sort();
}

describe("compose file", () => {
  const compose = parseYamlFile("infra/compose/docker-compose.yml");
  const services = compose.services as Record<string, Obj>;

  it("defines the single-host stack", () => {
    expect(Object.keys(services).sort()).toEqual(["api", "postgres", "redis", "s3", "tier-agent", "worker"]);
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

  it("runs every role from the one image, with the mounted config", () => {
    for (const name of ["api", "worker", "tier-agent"]) {
      const service = services[name]!;
      expect(imageRepository(service.image), name).toBe(IMAGE_REPOSITORY);
      expect(service.build?.dockerfile, name).toBe("infra/compose/Dockerfile");
      expect(service.volumes, name).toContain("./config.yaml:/etc/payload-manager/config.yaml:ro");
      expect(service.command, name).toContain("/etc/payload-manager/config.yaml");
      const env = Object.keys(service.environment ?? {});
      expect(env.length, name).toBeGreaterThan(0);
      for (const key of env) expect(key, name).toMatch(/^PM_/);
    }
  });

  it("gives the tier agent the host's IPC namespace and /dev/shm", () => {
    const agent = services["tier-agent"]!;
    expect(agent.ipc).toBe("host");
    expect(agent.volumes).toContain("/dev/shm:/dev/shm");
    // It talks to the API and S3 only.
    expect(Object.keys(agent.environment)).not.toContain("PM_DATABASE_URL");
  });

  it("builds an image on node:20-bookworm-slim that starts bin/payload-manager.mjs", () => {
    const dockerfile = read("infra/compose/Dockerfile");
    const bases = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
    expect(new Set(bases)).toEqual(new Set(["node:20-bookworm-slim"]));
    expect(dockerfile).toMatch(/^RUN npm ci\b/m);
    expect(dockerfile).toMatch(/^CMD \["node", "bin\/payload-manager\.mjs"\]$/m);
  });
});

describe("wrangler config", () => {
  const toml = read("infra/wrangler/wrangler.toml");
  const value = (key: string) => toml.match(new RegExp(`^${key}\\s*=\\s*(.+)$`, "m"))?.[1];

  it("points at the API's Workers entry with the pinned date and nodejs_compat", () => {
    const main = JSON.parse(value("main") ?? "null") as string;
    expect(resolve(repo, "infra/wrangler", main)).toBe(resolve(repo, "apps/api/src/worker-entry.ts"));
    expect(value("compatibility_date")).toBe('"2026-04-26"');
    expect(JSON.parse(value("compatibility_flags") ?? "[]")).toContain("nodejs_compat");
    expect(toml).toMatch(/^\[vars\]$[\s\S]*^PM_CATALOG_URL\s*=/m);
  });

  it("keeps credentials out of vars", () => {
    expect(toml).not.toMatch(/^PM_\w*(SECRET|PASSWORD|ACCESS_KEY)\w*\s*=/m);
    expect(toml).not.toMatch(/^PM_\w+\s*=\s*"[a-z]+:\/\/[^"@/]*:[^"@/]*@/m);
  });
});
