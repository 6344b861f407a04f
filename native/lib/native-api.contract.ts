/**
 * Behaviour every {@link NativeApi} implementation must have: run against the
 * addon (native.int.test.ts) and the fake (testing/fake-native-api.test.ts), so
 * the fake cannot drift from the real thing.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { NativeApi } from "./native-api.ts";

/** Runs `fn` and returns the `code` of what it threw (undefined when it did not throw). */
export function thrownCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

const VECTORS: Array<[string, string, string]> = [
  ["", "xxh64:ef46db3751d8e999", "crc32c:00000000"],
  ["abc", "xxh64:44bc2cf5ad770999", "crc32c:364b3fb7"],
  ["123456789", "xxh64:8cb841db40e6ae83", "crc32c:e3069283"],
];

export function nativeApiContract(label: string, makeApi: () => NativeApi): void {
  describe(`NativeApi contract: ${label}`, () => {
    const api = makeApi();
    const dir = mkdtempSync(join(tmpdir(), "pm-native-contract-"));
    const names: string[] = [];
    let counter = 0;
    const base = `/pm-contract-${process.pid}-${Date.now().toString(36)}`;
    const shmName = () => {
      const name = `${base}-${counter++}`;
      names.push(name);
      return name;
    };

    afterEach(() => {
      for (const name of names.splice(0)) thrownCode(() => api.unlinkShm(name));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it("creates a segment exclusively: a second create of the same name fails with EEXIST", async () => {
      const name = shmName();
      await expect(api.createShm(name, 4096)).resolves.toMatchObject({ name, size: 4096 });
      await expect(api.createShm(name, 4096)).rejects.toMatchObject({ code: "EEXIST" });
      expect(api.statShm(name)).toMatchObject({ name, size: 4096, mode: 0o600 });
    });

    it("applies the requested mode", async () => {
      const name = shmName();
      await api.createShm(name, 100, { mode: 0o640 });
      expect(api.statShm(name).mode).toBe(0o640);
    });

    it("shares writes between mappings and honours unaligned windows", async () => {
      const name = shmName();
      await api.createShm(name, 3 * 4096);
      const writer = api.mapShm(name, { writable: true });
      expect(writer.bytes.length).toBe(3 * 4096);
      for (let i = 0; i < writer.bytes.length; i++) writer.bytes[i] = i % 251;
      const reader = api.mapShm(name, { offset: 5000, length: 10 });
      expect(reader.offset).toBe(5000);
      expect([...reader.bytes]).toEqual(Array.from({ length: 10 }, (_, i) => (5000 + i) % 251));
      expect(reader.writable).toBe(false);
      writer.release();
      reader.release();
    });

    it("keeps copy-on-write writes private", async () => {
      const name = shmName();
      await api.createShm(name, 4096);
      const scratch = api.mapShm(name, { copyOnWrite: true });
      scratch.bytes.fill(9);
      const reader = api.mapShm(name);
      expect(reader.bytes[0]).toBe(0);
      scratch.release();
      reader.release();
    });

    it("refuses windows outside the region with EINVAL", async () => {
      const name = shmName();
      await api.createShm(name, 4096);
      expect(thrownCode(() => api.mapShm(name, { offset: 4096 }))).toBe("EINVAL");
      expect(thrownCode(() => api.mapShm(name, { offset: 4000, length: 200 }))).toBe("EINVAL");
      expect(thrownCode(() => api.mapShm(name, { length: 0 }))).toBe("EINVAL");
      expect(thrownCode(() => api.mapShm(name, { writable: true, copyOnWrite: true }))).toBe("EINVAL");
    });

    it("rejects malformed names and sizes with EINVAL", async () => {
      for (const bad of ["", "noslash", "/", "/a/b", "/..", "/has space", `/${"x".repeat(256)}`]) {
        expect(
          thrownCode(() => api.mapShm(bad)),
          bad,
        ).toBe("EINVAL");
        await expect(api.createShm(bad, 10), bad).rejects.toMatchObject({ code: "EINVAL" });
      }
      for (const size of [0, -1, 1.5, Number.NaN]) {
        await expect(api.createShm(shmName(), size), String(size)).rejects.toMatchObject({ code: "EINVAL" });
      }
    });

    it("reports missing segments as ENOENT", async () => {
      const name = shmName();
      expect(thrownCode(() => api.mapShm(name))).toBe("ENOENT");
      expect(thrownCode(() => api.statShm(name))).toBe("ENOENT");
      expect(thrownCode(() => api.unlinkShm(name))).toBe("ENOENT");
      await expect(api.resizeShm(name, 10)).rejects.toMatchObject({ code: "ENOENT" });
    });

    it("unlinks the name while existing mappings stay readable", async () => {
      const name = shmName();
      await api.createShm(name, 4096);
      const writer = api.mapShm(name, { writable: true });
      writer.bytes[7] = 42;
      api.unlinkShm(name);
      expect(thrownCode(() => api.statShm(name))).toBe("ENOENT");
      expect(api.listShm(name)).toEqual([]);
      expect(writer.bytes[7]).toBe(42);
      writer.release();
    });

    it("lists segments by prefix", async () => {
      const a = shmName();
      const b = shmName();
      await api.createShm(a, 10);
      await api.createShm(b, 20);
      const prefix = `${base}-`;
      const listed = api.listShm(prefix).map((s) => [s.name, s.size]);
      expect(listed).toEqual(
        expect.arrayContaining([
          [a, 10],
          [b, 20],
        ]),
      );
      expect(api.listShm(`${a}-nothing-here`)).toEqual([]);
      expect(thrownCode(() => api.listShm("no-slash"))).toBe("EINVAL");
    });

    it("grows a segment keeping its bytes and refuses to shrink unless asked", async () => {
      const name = shmName();
      await api.createShm(name, 4096);
      const m = api.mapShm(name, { writable: true });
      m.bytes[100] = 7;
      m.release();
      await expect(api.resizeShm(name, 8192)).resolves.toEqual({ name, size: 8192 });
      expect(api.mapShm(name, { offset: 100, length: 1 }).bytes[0]).toBe(7);
      await expect(api.resizeShm(name, 100)).rejects.toMatchObject({ code: "EINVAL" });
      await expect(api.resizeShm(name, 100, { allowShrink: true })).resolves.toEqual({ name, size: 100 });
    });

    it("releases a mapping early: its bytes become empty and release is idempotent", async () => {
      const name = shmName();
      await api.createShm(name, 4096);
      const m = api.mapShm(name, { writable: true });
      expect(m.released).toBe(false);
      m.release();
      expect(m.released).toBe(true);
      expect(m.bytes.length).toBe(0);
      m.release();
    });

    it("creates file regions exclusively, maps them, fsyncs and copies them", async () => {
      const path = join(dir, `region-${counter++}`);
      await expect(api.createFile(path, 10_000)).resolves.toMatchObject({ path, size: 10_000 });
      await expect(api.createFile(path, 10_000)).rejects.toMatchObject({ code: "EEXIST" });
      expect(statSync(path).mode & 0o777).toBe(0o600);
      const m = api.mapFile(path, { writable: true });
      m.bytes.write("payload-bytes", 9000);
      await api.fsync(path);
      m.release();
      expect(readFileSync(path).toString("latin1", 9000, 9013)).toBe("payload-bytes");
      const copy = join(dir, `copy-${counter++}`);
      await expect(api.copyFile(path, copy, { fsync: true })).resolves.toBe(10_000);
      expect(readFileSync(copy).equals(readFileSync(path))).toBe(true);
      await expect(api.copyFile(path, copy, { exclusive: true })).rejects.toMatchObject({ code: "EEXIST" });
      await expect(api.checksum(copy)).resolves.toBe(api.checksumSync(readFileSync(path)));
      await expect(api.copyFile(join(dir, "missing"), copy)).rejects.toMatchObject({ code: "ENOENT" });
      await expect(api.fsync(join(dir, "missing"))).rejects.toMatchObject({ code: "ENOENT" });
      expect(thrownCode(() => api.mapFile(join(dir, "missing")))).toBe("ENOENT");
    });

    it("creates many file regions in one call, each succeeding or failing on its own", async () => {
      const taken = join(dir, `taken-${counter++}`);
      await api.createFile(taken, 10);
      const fresh = [join(dir, `many-${counter++}`), join(dir, `many-${counter++}`)];
      const results = await api.createFiles([
        { path: fresh[0]!, size: 4096 },
        { path: taken, size: 20 },
        { path: fresh[1]!, size: 100_000, mode: 0o640 },
        { path: join(dir, "missing-dir", "x"), size: 1 },
      ]);
      expect(results).toHaveLength(4);
      expect(results[0]).toMatchObject({ path: fresh[0], size: 4096 });
      expect(results[1]).toBeInstanceOf(Error);
      expect(results[1]).toMatchObject({ code: "EEXIST" });
      expect(results[2]).toMatchObject({ path: fresh[1], size: 100_000 });
      expect(results[3]).toMatchObject({ code: "ENOENT" });
      expect(statSync(fresh[0]!).size).toBe(4096);
      expect(statSync(fresh[1]!).mode & 0o777).toBe(0o640);
      expect(statSync(taken).size).toBe(10); // the existing file was left alone
      // Not exclusive: an existing file is resized instead.
      const [resized] = await api.createFiles([{ path: taken, size: 30 }], { exclusive: false });
      expect(resized).toMatchObject({ path: taken, size: 30 });
      expect(statSync(taken).size).toBe(30);
      await expect(api.createFiles([])).resolves.toEqual([]);
    });

    it("maps an existing file read-only", () => {
      const path = join(dir, `plain-${counter++}`);
      writeFileSync(path, "hello mapped world");
      const m = api.mapFile(path, { offset: 6, length: 6 });
      expect(m.bytes.toString()).toBe("mapped");
      m.release();
    });

    it("describes filesystems, so the agent can tell RAM-backed and huge-page mounts", () => {
      const shm = api.statFs("/dev/shm");
      expect(shm).toMatchObject({ type: "tmpfs", pageSize: 4096 });
      expect(shm.totalBytes).toBeGreaterThan(0);
      expect(thrownCode(() => api.statFs(join(dir, "missing")))).toBe("ENOENT");
    });

    it("computes xxh64 and crc32c for the published test vectors", async () => {
      for (const [input, xxh, crc] of VECTORS) {
        expect(api.checksumSync(Buffer.from(input))).toBe(xxh);
        expect(api.checksumSync(Buffer.from(input), "crc32c")).toBe(crc);
        await expect(api.checksum(Buffer.from(input), "xxh64")).resolves.toBe(xxh);
        await expect(api.checksum(Buffer.from(input), "crc32c")).resolves.toBe(crc);
      }
      const path = join(dir, `vector-${counter++}`);
      writeFileSync(path, "123456789");
      await expect(api.checksum(path, "crc32c")).resolves.toBe("crc32c:e3069283");
      await expect(api.checksum(Buffer.from("x"), "md5" as never)).rejects.toMatchObject({ code: "EINVAL" });
    });

    it("hands out zeroed staging buffers", () => {
      const staging = api.allocAligned(10_000);
      expect(staging.bytes.length).toBe(10_000);
      expect(staging.bytes.every((b) => b === 0)).toBe(true);
      staging.release();
      expect(staging.bytes.length).toBe(0);
      expect(thrownCode(() => api.allocAligned(0))).toBe("EINVAL");
      expect(thrownCode(() => api.allocAligned(10, { alignment: 3000 }))).toBe("EINVAL");
    });

    it("reports CUDA availability as data, never by throwing", () => {
      const availability = api.cuda.availability();
      expect(typeof availability.available).toBe("boolean");
      expect(availability.reason.length).toBeGreaterThan(0);
      if (!availability.available) {
        expect(thrownCode(() => api.cuda.alloc(0, 1024))).toBe("CUDA_UNAVAILABLE");
      }
    });
  });
}
