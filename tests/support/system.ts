import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

export const ROOT = resolve(import.meta.dirname, "../..");

export interface RunningSystem {
  readonly url: string;
  readonly grpcUrl: string;
  readonly dataDir: string;
  readonly ramPrefix: string;
  readonly diskRoot: string;
  readonly proc: ChildProcess;
  /** Everything the process printed, for failure messages. */
  readonly output: string[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface SystemOptions {
  readonly role?: "all" | "api";
  readonly env?: Record<string, string>;
  /** Reuse the data dir of an earlier run (restart). */
  readonly dataDir?: string;
  readonly ramPrefix?: string;
}

/**
 * Starts `payload-manager` as a real child process on ephemeral ports, with its own data dir and
 * shm prefix, and resolves once the API and agent have said they are listening.
 */
export async function startSystem(opts: SystemOptions = {}): Promise<RunningSystem> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "pm-e2e-"));
  const ramPrefix = opts.ramPrefix ?? `pme2e-${process.pid}-${Math.floor(Math.random() * 1e9)}-`;
  const diskRoot = join(dataDir, "disk");
  const env = {
    ...process.env,
    PM_HTTP_PORT: "0",
    PM_GRPC_PORT: "0",
    PM_AGENT_PORT: "0",
    PM_DATA_DIR: dataDir,
    PM_CATALOG_URL: `sqlite:${join(dataDir, "catalog.db")}`,
    PM_DISK_ROOT: diskRoot,
    PM_RAM_PREFIX: ramPrefix,
    PM_LOG_LEVEL: "info",
    PM_AGENT_ORPHAN_GRACE_MS: "1000",
    ...opts.env,
  };
  const proc = spawn(process.execPath, [join(ROOT, "bin/payload-manager.mjs"), opts.role ?? "all"], {
    cwd: dataDir,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  let url = "";
  let grpcUrl = "";
  const ready = new Promise<void>((resolveReady, reject) => {
    let api = false;
    let agent = opts.role === "api";
    const onLine = (line: string) => {
      output.push(line);
      if (line.includes("payload-manager API listening")) {
        const o = JSON.parse(line) as { http: string; grpc: string };
        url = o.http;
        grpcUrl = o.grpc;
        api = true;
      }
      if (line.includes("registered with the control plane")) agent = true;
      if (api && agent) resolveReady();
    };
    createInterface({ input: proc.stdout! }).on("line", onLine);
    createInterface({ input: proc.stderr! }).on("line", onLine);
    proc.once("exit", (code) =>
      reject(new Error(`payload-manager exited with ${code}:\n${output.join("\n")}`)),
    );
    setTimeout(
      () => reject(new Error(`payload-manager did not start in 30 s:\n${output.join("\n")}`)),
      30_000,
    ).unref();
  });
  await ready;
  return {
    url,
    grpcUrl,
    dataDir,
    ramPrefix,
    diskRoot,
    proc,
    output,
    stop(signal: NodeJS.Signals = "SIGTERM") {
      if (proc.exitCode !== null) return Promise.resolve(proc.exitCode);
      return new Promise((r) => {
        proc.once("exit", (code) => r(code));
        proc.kill(signal);
      });
    },
  };
}

export function removeDataDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Runs a TypeScript fixture in a separate Node process and returns its last stdout line as JSON. */
export function runNode<T>(
  script: string,
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<T> {
  return new Promise((resolveRun, reject) => {
    const p = spawn(process.execPath, ["--import", "tsx", join(ROOT, script), ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    p.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    p.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    p.once("exit", (code) => {
      if (code !== 0) return reject(new Error(`${script} exited ${code}: ${err}${out}`));
      const last = out.trim().split("\n").pop() ?? "";
      try {
        resolveRun(JSON.parse(last) as T);
      } catch {
        reject(new Error(`${script} printed no JSON result: ${out}${err}`));
      }
    });
  });
}

/**
 * Spawns `payload-manager <role>` (an agent or worker beside a system started above) and resolves
 * once it printed `readyLine`; the caller kills it.
 */
export async function spawnRole(
  role: "agent" | "worker",
  cwd: string,
  env: Record<string, string>,
  readyLine: string,
): Promise<ChildProcess> {
  const proc = spawn(process.execPath, [join(ROOT, "bin/payload-manager.mjs"), role], {
    cwd,
    env: { ...process.env, PM_LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  await new Promise<void>((resolveReady, reject) => {
    const onLine = (line: string) => {
      output.push(line);
      if (line.includes(readyLine)) resolveReady();
    };
    createInterface({ input: proc.stdout! }).on("line", onLine);
    createInterface({ input: proc.stderr! }).on("line", onLine);
    proc.once("exit", (code) => reject(new Error(`${role} exited with ${code}:\n${output.join("\n")}`)));
    setTimeout(
      () => reject(new Error(`${role} did not start in 30 s:\n${output.join("\n")}`)),
      30_000,
    ).unref();
  });
  proc.removeAllListeners("exit");
  return proc;
}
