import { createReadStream } from "node:fs";
import { type FileHandle, open, stat, unlink } from "node:fs/promises";
import type { Writable } from "node:stream";
import { create } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { getStream, putStream } from "@pm/client/node";
import { CommitPayloadResponseSchema, Tier } from "@pm/rpc";
import { type Command, type CommandContext, DataPlaneError } from "../command.ts";
import { formatBytes, formatId } from "../format.ts";
import { UsageError } from "../parse-args.ts";
import { parseDurationMs, parseId, parseTier } from "../parse-values.ts";
import { progressFor } from "../progress-bar.ts";

/** Read-ahead of the input file: bounds the heap however large the payload is. */
const READ_CHUNK_BYTES = 4 * 2 ** 20;
/** Read-back granularity of `get --verify`. */
const VERIFY_CHUNK_BYTES = 8 * 2 ** 20;

/** RPC and usage errors keep their exit codes; anything else while moving bytes is a data-plane error. */
function asDataPlaneError(e: unknown, ctx: CommandContext): unknown {
  if (e instanceof ConnectError || e instanceof UsageError || e instanceof DataPlaneError) return e;
  if (ctx.signal.aborted) return e;
  return new DataPlaneError((e as Error)?.message ?? String(e), { cause: e });
}

export const put: Command = {
  name: "put",
  summary: "upload a file as a new payload and print its id (allocate, map, copy, commit)",
  description:
    "Maps the new region into this process and copies the file into it window by window, so\n" +
    "memory stays bounded for any size; the bytes never pass through the API. The xxh64 checksum of\n" +
    "the bytes is recorded at commit unless --no-checksum. A failed upload deletes the payload.\n" +
    "Shows a progress line on a terminal for payloads of 64 MiB or more.",
  positionals: [{ name: "file" }],
  flags: {
    tier: { type: "string", value: "TIER", help: "RAM (default) or DISK; GPU and OBJECT are not mappable" },
    "ttl-ms": { type: "string", value: "MS", help: "expire this long after allocation (e.g. 1h)" },
    "no-evict": { type: "boolean", help: "never evict or expire this payload automatically" },
    host: { type: "string", value: "HOST", help: "prefer a tier agent on this host" },
    "no-checksum": { type: "boolean", help: "skip computing and recording the xxh64 checksum" },
  },
  async run(ctx, args) {
    const file = args.positionals[0]!;
    const tier = parseTier(args.string("tier") ?? "RAM");
    const ttl = args.string("ttl-ms");
    const ttlMs = ttl === undefined ? 0 : Number(parseDurationMs(ttl, "--ttl-ms"));
    let size: number;
    try {
      const st = await stat(file);
      if (!st.isFile()) throw new Error("not a regular file");
      size = st.size;
    } catch (e) {
      throw new UsageError(`cannot upload ${file}: ${(e as Error).message}`);
    }
    if (size === 0) throw new UsageError(`${file} is empty; a payload holds at least 1 byte`);

    const bar = progressFor(ctx.io.stderr, ctx.io.stderrIsTTY ?? false, ctx.json, "put", size);
    const source = createReadStream(file, { highWaterMark: READ_CHUNK_BYTES, signal: ctx.signal });
    let res: Awaited<ReturnType<typeof putStream>>;
    try {
      res = await putStream(ctx.client, source, size, {
        tier,
        ttlMs,
        noEvict: args.bool("no-evict"),
        preferredHost: args.string("host") ?? "",
        checksum: !args.bool("no-checksum"),
        onProgress: (written) => bar?.update(written),
      });
    } catch (e) {
      if (bar) ctx.io.stderr.write("\n");
      throw asDataPlaneError(e, ctx);
    } finally {
      source.destroy();
    }
    bar?.finish(size);
    const out = create(CommitPayloadResponseSchema, { payloadDescriptor: res.descriptor });
    ctx.respond(CommitPayloadResponseSchema, out, () => ctx.print(res.id));
    return undefined;
  },
};

/** Where `get` writes: a file (which it can read back to verify) or stdout. */
interface Sink {
  write(bytes: Buffer): Promise<void>;
  /** Compares what was written at `at` with `expected`; false on any difference. */
  readBack?(at: number, expected: Buffer): Promise<boolean>;
  close(): Promise<void>;
}

async function writeFully(fh: FileHandle, bytes: Buffer, at: number): Promise<void> {
  let off = 0;
  while (off < bytes.length) {
    const { bytesWritten } = await fh.write(bytes, off, bytes.length - off, at + off);
    off += bytesWritten;
  }
}

async function fileSink(path: string): Promise<Sink> {
  const fh = await open(path, "w+", 0o644);
  let pos = 0;
  const scratch = Buffer.allocUnsafe(VERIFY_CHUNK_BYTES);
  return {
    async write(bytes) {
      await writeFully(fh, bytes, pos);
      pos += bytes.length;
    },
    async readBack(at, expected) {
      for (let off = 0; off < expected.length; off += scratch.length) {
        const n = Math.min(scratch.length, expected.length - off);
        const { bytesRead } = await fh.read(scratch, 0, n, at + off);
        if (bytesRead !== n || !scratch.subarray(0, n).equals(expected.subarray(off, off + n))) return false;
      }
      return true;
    },
    close: () => fh.close(),
  };
}

function streamSink(out: Writable): Sink {
  // A closed pipe (`payloadctl get … | head`) reports EPIPE through the write callback; the
  // listener keeps the same error from also being thrown as an unhandled 'error' event.
  const swallow = () => undefined;
  out.on("error", swallow);
  return {
    write: (bytes) =>
      // Each window is a mapping that is unmapped on the next iteration, so wait until the
      // stream has handed this one to the kernel rather than just until it has buffered it.
      new Promise((resolve, reject) => out.write(bytes, (err) => (err ? reject(err) : resolve()))),
    async close() {
      out.off("error", swallow);
    },
  };
}

export const get: Command = {
  name: "get",
  summary: "download a payload to a file or stdout (lease, map read-only, copy, release)",
  description:
    "Leases the payload, maps it read-only window by window and writes the windows out, then\n" +
    "checks that exactly the payload's size was written and releases the lease. --verify also\n" +
    "reads the output file back and compares it with the payload byte for byte. The API does not\n" +
    "return the checksum recorded at commit, so it cannot be compared. A failed download removes\n" +
    "the partial output file. A payload on OBJECT needs --min-tier DISK (it is promoted first).",
  positionals: [{ name: "id" }],
  flags: {
    output: { type: "string", short: "o", value: "FILE", help: "write here instead of stdout" },
    verify: { type: "boolean", help: "read the output file back and compare it with the payload" },
    "min-tier": { type: "string", value: "TIER", help: "require the bytes on this tier or faster" },
    "lease-ms": { type: "string", value: "MS", help: "lease length, renewed while copying (default 20 s)" },
  },
  async run(ctx, args) {
    const idBytes = parseId(args.positionals[0]!);
    const id = formatId(idBytes);
    const o = args.string("output");
    const output = o === "-" ? undefined : o;
    if (output === undefined && ctx.io.stdoutIsTTY)
      throw new UsageError("refusing to write payload bytes to a terminal: give -o FILE or redirect stdout");
    const minTier = args.string("min-tier");
    const leaseMs = args.string("lease-ms");

    // The committed size, to check the copy against (and an early, clear NOT_FOUND).
    const snap = await ctx.client.data.resolveSnapshot({ id: idBytes }, { signal: ctx.signal });
    const expected = Number(snap.payloadDescriptor?.sizeBytes ?? 0n);
    const bar = progressFor(ctx.io.stderr, ctx.io.stderrIsTTY ?? false, ctx.json, "get", expected);

    let sink: Sink;
    try {
      sink = output === undefined ? streamSink(ctx.io.stdout) : await fileSink(output);
    } catch (e) {
      throw new UsageError(`cannot write ${output}: ${(e as Error).message}`);
    }
    let written = 0;
    let mismatchAt = -1;
    const verify = args.bool("verify") && output !== undefined;
    try {
      try {
        for await (const window of getStream(ctx.client, id, {
          minTier: minTier === undefined ? Tier.UNSPECIFIED : parseTier(minTier, "--min-tier"),
          ...(leaseMs === undefined ? {} : { leaseMs: Number(parseDurationMs(leaseMs, "--lease-ms")) }),
        })) {
          ctx.signal.throwIfAborted();
          await sink.write(window);
          if (verify && mismatchAt < 0 && !(await sink.readBack?.(written, window))) mismatchAt = written;
          written += window.length;
          bar?.update(written);
        }
      } finally {
        await sink.close();
      }
      if (written !== expected)
        throw new DataPlaneError(`size check failed: wrote ${written} bytes, the payload holds ${expected}`);
      if (mismatchAt >= 0)
        throw new DataPlaneError(
          `verification failed: ${output} differs from the payload in the window at byte ${mismatchAt}`,
        );
      if (output !== undefined) {
        const onDisk = (await stat(output)).size;
        if (onDisk !== expected)
          throw new DataPlaneError(
            `size check failed: ${output} has ${onDisk} bytes, the payload ${expected}`,
          );
      }
    } catch (e) {
      if (bar) ctx.io.stderr.write("\n");
      if (output !== undefined) await unlink(output).catch(() => undefined);
      throw asDataPlaneError(e, ctx);
    }
    bar?.finish(written);
    if (args.bool("verify") && output === undefined)
      ctx.note("note: --verify needs -o FILE to read back; verified the size only");
    if (ctx.json && output !== undefined) {
      ctx.print(
        JSON.stringify({
          id,
          sizeBytes: String(written),
          output,
          verified: verify ? "size,bytes" : "size",
        }),
      );
    } else if (output !== undefined && ctx.io.stderrIsTTY) {
      ctx.note(`wrote ${formatBytes(written)} to ${output}${verify ? " (verified)" : ""}`);
    }
    return undefined;
  },
};
