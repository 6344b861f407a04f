import type { NativeApi } from "@pm/native";
import { describe, expect, it } from "vitest";
import { coalescedCreateFile } from "./coalesced-create.ts";

type Files = Parameters<NativeApi["createFiles"]>[0];

/** A createFiles that records each call and fails the paths containing "bad". */
function recording(fail?: Error) {
  const calls: Files[] = [];
  const createFiles: NativeApi["createFiles"] = async (files) => {
    calls.push(files);
    if (fail) throw fail;
    return files.map((f) =>
      f.path.includes("bad")
        ? Object.assign(new Error(`open ${f.path} failed: File exists (EEXIST)`), { code: "EEXIST" })
        : { path: f.path, size: f.size, preallocated: true },
    );
  };
  return { calls, createFiles };
}

describe("coalescedCreateFile", () => {
  it("sends the files asked for in one tick as one createFiles, and settles each on its own", async () => {
    const { calls, createFiles } = recording();
    const create = coalescedCreateFile(createFiles);
    const results = await Promise.allSettled([
      create("/r/a", 10, 0o600),
      create("/r/bad", 20, 0o600),
      create("/d/c", 30, 0o640),
    ]);
    expect(calls).toEqual([
      [
        { path: "/r/a", size: 10, mode: 0o600 },
        { path: "/r/bad", size: 20, mode: 0o600 },
        { path: "/d/c", size: 30, mode: 0o640 },
      ],
    ]);
    expect(results[0]).toEqual({ status: "fulfilled", value: undefined });
    expect(results[1]).toMatchObject({ status: "rejected", reason: { code: "EEXIST" } });
    expect(results[2]).toEqual({ status: "fulfilled", value: undefined });
  });

  it("starts a new batch for files asked for later", async () => {
    const { calls, createFiles } = recording();
    const create = coalescedCreateFile(createFiles);
    await create("/r/1", 1, 0o600);
    await Promise.all([create("/r/2", 1, 0o600), create("/r/3", 1, 0o600)]);
    expect(calls.map((c) => c.map((f) => f.path))).toEqual([["/r/1"], ["/r/2", "/r/3"]]);
  });

  it("fails every file of a batch when the whole call fails", async () => {
    const { createFiles } = recording(Object.assign(new Error("bad list"), { code: "EINVAL" }));
    const create = coalescedCreateFile(createFiles);
    const results = await Promise.allSettled([create("/r/a", 1, 0o600), create("/r/b", 1, 0o600)]);
    for (const r of results) expect(r).toMatchObject({ status: "rejected", reason: { code: "EINVAL" } });
  });
});
