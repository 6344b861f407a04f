import { mkdirSync, readdirSync, statSync } from "node:fs";
import { open, stat, unlink } from "node:fs/promises";
import { join, resolve } from "node:path";
import { isUuidText, type Location, type PayloadId, type StorageTier } from "@pm/domain";
import { type RegionInfo, type TierBackend, TierError } from "./tier-backend.ts";

export interface FileTierOptions {
  readonly tier: Extract<StorageTier, "RAM" | "DISK">;
  /** Directory holding the regions: /dev/shm (RAM), a huge-page tmpfs (RAM), or the disk root. */
  readonly dir: string;
  /** File-name prefix, e.g. "pm-". Only [A-Za-z0-9._-]. */
  readonly prefix: string;
  readonly capacityBytes: number;
  /** File mode of new regions (default 0600: only the agent's user and its group via ACLs). */
  readonly mode: number;
  /**
   * Creates the file exclusively with its bytes reserved (the native addon's fallocate), so a full
   * tmpfs or disk fails here rather than with SIGBUS/ENOSPC in a writer. Without the addon the file
   * is created sparse with Node's fs.
   */
  readonly createFile: ((path: string, size: number, mode: number) => Promise<void>) | undefined;
  /** How the location is expressed: a POSIX shm name (RAM in /dev/shm) or an absolute path. */
  readonly locationOf: (name: string, path: string) => Location;
}

/**
 * A tier whose regions are files: RAM as POSIX shared memory (files in /dev/shm, or in a tmpfs
 * mounted with huge=always for huge pages) and DISK as files under the disk root. Usage is tracked
 * from the regions present, including those found at start-up.
 */
export class FileTier implements TierBackend {
  readonly tier: StorageTier;
  readonly capacityBytes: number;
  private readonly dir: string;
  private readonly sizes = new Map<string, number>();
  private used = 0;

  constructor(private readonly opts: FileTierOptions) {
    if (!/^[A-Za-z0-9._-]{0,32}$/.test(opts.prefix))
      throw new Error(`invalid region prefix ${JSON.stringify(opts.prefix)}`);
    this.tier = opts.tier;
    this.capacityBytes = opts.capacityBytes;
    this.dir = resolve(opts.dir);
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const re = new RegExp(`^${opts.prefix.replace(/[.]/g, "\\.")}([0-9a-f-]{36})\\.bin$`);
    for (const name of readdirSync(this.dir)) {
      const m = re.exec(name);
      if (!m || !isUuidText(m[1]!)) continue;
      const size = statSync(join(this.dir, name)).size;
      this.sizes.set(m[1]!, size);
      this.used += size;
    }
  }

  usedBytes(): number {
    return this.used;
  }

  private nameOf(id: PayloadId): string {
    if (!isUuidText(id))
      throw new TierError(
        "INVALID",
        `region names come only from payload ids; ${JSON.stringify(id)} is not one`,
      );
    return `${this.opts.prefix}${id.toLowerCase()}.bin`;
  }

  filePath(id: PayloadId): string {
    return join(this.dir, this.nameOf(id));
  }

  private info(id: PayloadId, sizeBytes: number): RegionInfo {
    return { payloadId: id, sizeBytes, location: this.opts.locationOf(this.nameOf(id), this.filePath(id)) };
  }

  async create(id: PayloadId, sizeBytes: number): Promise<RegionInfo> {
    const path = this.filePath(id);
    if (this.sizes.has(id)) throw new TierError("EXISTS", `a ${this.tier} region for ${id} already exists`);
    if (this.used + sizeBytes > this.capacityBytes) {
      throw new TierError(
        "FULL",
        `${this.tier} tier has ${this.capacityBytes - this.used} of ${this.capacityBytes} bytes free; ${sizeBytes} requested`,
      );
    }
    this.used += sizeBytes;
    this.sizes.set(id, sizeBytes);
    try {
      if (this.opts.createFile) {
        await this.opts.createFile(path, sizeBytes, this.opts.mode);
      } else {
        const fh = await open(path, "wx", this.opts.mode);
        try {
          await fh.chmod(this.opts.mode);
          await fh.truncate(sizeBytes);
        } finally {
          await fh.close();
        }
      }
    } catch (e) {
      this.used -= sizeBytes;
      this.sizes.delete(id);
      const code = (e as { code?: string }).code;
      if (code !== "EEXIST") await unlink(path).catch(() => undefined);
      if (code === "EEXIST") throw new TierError("EXISTS", `${path} already exists`);
      if (code === "ENOSPC")
        throw new TierError("FULL", `no space left for ${sizeBytes} bytes in ${this.dir}`);
      throw new TierError("IO", `cannot create ${path}: ${(e as Error).message}`);
    }
    return this.info(id, sizeBytes);
  }

  async free(id: PayloadId): Promise<void> {
    try {
      await unlink(this.filePath(id));
    } catch (e) {
      if ((e as { code?: string }).code !== "ENOENT")
        throw new TierError("IO", `cannot free ${id}: ${(e as Error).message}`);
    }
    this.used -= this.sizes.get(id) ?? 0;
    this.sizes.delete(id);
  }

  async stat(id: PayloadId): Promise<RegionInfo | undefined> {
    try {
      const s = await stat(this.filePath(id));
      return this.info(id, this.sizes.get(id) ?? s.size);
    } catch {
      return undefined;
    }
  }

  async list(): Promise<RegionInfo[]> {
    return [...this.sizes.entries()].map(([id, size]) => this.info(id as PayloadId, size));
  }

  async close(): Promise<void> {}
}
