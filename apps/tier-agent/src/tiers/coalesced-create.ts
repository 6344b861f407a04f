import type { NativeApi } from "@pm/native";

/** Creates a region's file: the FileTier's `createFile`. */
export type CreateFile = (path: string, size: number, mode: number) => Promise<void>;

interface Pending {
  readonly path: string;
  readonly size: number;
  readonly mode: number;
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * A FileTier `createFile` whose calls made in one tick go to the addon together, as one
 * createFiles: one task on the libuv pool (one thread wake-up and one completion) for the regions
 * of a CreateRegions call instead of one each. Every call still settles on its own, with the
 * error (and `code`) the single createFile would have given.
 */
export function coalescedCreateFile(createFiles: NativeApi["createFiles"]): CreateFile {
  let pending: Pending[] = [];
  const flush = () => {
    const batch = pending;
    pending = [];
    createFiles(
      batch.map((p) => ({ path: p.path, size: p.size, mode: p.mode })),
      { exclusive: true },
    ).then(
      (results) =>
        batch.forEach((p, i) => {
          const r = results[i];
          if (r instanceof Error) p.reject(r);
          else if (r === undefined)
            p.reject(new Error(`createFiles answered ${results.length} of ${batch.length}`));
          else p.resolve();
        }),
      (err: unknown) => {
        for (const p of batch) p.reject(err);
      },
    );
  };
  return (path, size, mode) =>
    new Promise<void>((resolve, reject) => {
      if (pending.length === 0) queueMicrotask(flush);
      pending.push({ path, size, mode, resolve, reject });
    });
}
