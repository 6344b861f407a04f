import { execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chownSync, closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import pg from "pg";

/** The shared development server (infra/dev/services.sh); tests only create databases on it. */
export const SHARED_URL = process.env.PM_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** `url` with its database replaced. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

export interface TestDatabase {
  readonly name: string;
  readonly url: string;
  /** Disconnects everyone still connected and drops the database. */
  drop(): Promise<void>;
}

/** A fresh, empty database `<prefix>_<random>` on the server at `serverUrl`. */
export async function createDatabase(prefix: string, serverUrl = SHARED_URL): Promise<TestDatabase> {
  const name = `${prefix}_${randomBytes(5).toString("hex")}`;
  await adminQuery(serverUrl, `CREATE DATABASE ${name}`);
  return {
    name,
    url: withDatabase(serverUrl, name),
    drop: () => adminQuery(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

async function adminQuery(serverUrl: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: serverUrl });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/** Why a throwaway cluster cannot be made here, or undefined when it can. */
export function throwawayClusterUnsupported(): string | undefined {
  if (userInfo().uid !== 0) return "needs root to run initdb/pg_ctl as the postgres user";
  const probe = spawnSync("runuser", ["-u", "postgres", "--", "initdb", "--version"], { encoding: "utf8" });
  if (probe.status !== 0) return `initdb is not runnable as user postgres: ${probe.stderr || probe.error}`;
  return undefined;
}

/**
 * A Postgres cluster of its own (initdb in a temp dir, run as user postgres on `port`), for tests
 * that restart or stop the server: the shared server that other tests use is never touched.
 */
export class ThrowawayCluster {
  readonly url: string;

  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly options: string,
  ) {
    this.url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  }

  /** initdb + start; about a second. Needs root (see throwawayClusterUnsupported). */
  static async start(port: number, settings: readonly string[] = []): Promise<ThrowawayCluster> {
    const parent = mkdtempSync(join(tmpdir(), "pm-pg-"));
    const dir = join(parent, "data");
    chownSync(
      parent,
      Number(execFileSync("id", ["-u", "postgres"])),
      Number(execFileSync("id", ["-g", "postgres"])),
    );
    const options = [
      `-p ${port}`,
      "-k /tmp",
      "-c listen_addresses=127.0.0.1",
      "-c fsync=off",
      ...settings.map((s) => `-c ${s}`),
    ].join(" ");
    const cluster = new ThrowawayCluster(dir, port, options);
    await cluster.asPostgres("initdb", ["-D", dir, "-A", "trust", "-U", "postgres", "--no-sync"]);
    await cluster.start();
    return cluster;
  }

  /** `pg_ctl restart -m fast`: every connection is terminated, the server comes back. */
  restart(): Promise<void> {
    return this.asPostgres("pg_ctl", ["-D", this.dir, "-m", "fast", "-o", this.options, "-w", "restart"]);
  }

  /** `pg_ctl stop -m fast`. */
  stop(): Promise<void> {
    return this.asPostgres("pg_ctl", ["-D", this.dir, "-m", "fast", "-w", "stop"]);
  }

  /** Starts the stopped server again, with the same port and settings. */
  start(): Promise<void> {
    return this.asPostgres("pg_ctl", ["-D", this.dir, "-o", this.options, "-w", "start"]);
  }

  /** Stops the server (if running) and removes its files. */
  destroy(): void {
    spawnSync(
      "runuser",
      ["-u", "postgres", "--", "pg_ctl", "-D", this.dir, "-m", "immediate", "-w", "stop"],
      {
        stdio: "ignore",
      },
    );
    rmSync(join(this.dir, ".."), { recursive: true, force: true });
  }

  // Output goes to a log file, not a pipe: the server that pg_ctl (re)starts inherits it and would
  // hold a pipe open. Asynchronous, so the test's clients keep running while the server restarts.
  private asPostgres(cmd: string, args: readonly string[]): Promise<void> {
    const log = join(this.dir, "..", "pg_ctl.log");
    const fd = openSync(log, "a");
    return new Promise<void>((resolve, reject) => {
      const child = spawn("runuser", ["-u", "postgres", "--", cmd, ...args], {
        cwd: "/tmp",
        stdio: ["ignore", fd, fd],
      });
      child.once("error", reject);
      child.once("exit", (code) => {
        if (code === 0) resolve();
        else
          reject(
            new Error(
              `${cmd} ${args.join(" ")} failed (${code}):\n${readFileSync(log, "utf8").slice(-4000)}`,
            ),
          );
      });
    }).finally(() => closeSync(fd));
  }
}

/** A TCP port nobody listens on right now (for a throwaway cluster). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
