import { readdirSync } from "node:fs";
import { join } from "node:path";
import { tryNativeApi } from "@pm/native";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningSystem, removeDataDir, runNode, startSystem } from "../support/system.ts";

// GPU payloads between two processes through CUDA IPC. Runs where libcuda loads and a device exists
// (the GPU machine, via tests/gpu/run-on-device.sh); elsewhere it is skipped with the reason.
const native = tryNativeApi();
const cuda = native.ok
  ? native.api.cuda.availability()
  : { available: false, reason: native.error.message, deviceCount: 0 };
const reason = cuda.available && cuda.deviceCount > 0 ? "" : `no CUDA device: ${cuda.reason}`;
if (reason) console.info(`GPU e2e skipped — ${reason}`);

describe.skipIf(reason !== "")("GPU tier end to end (CUDA IPC between processes)", () => {
  let sys: RunningSystem;
  beforeAll(async () => {
    sys = await startSystem({ env: { PM_GPU_ENABLED: "true" } });
  });
  afterAll(async () => {
    await sys?.stop();
    for (const f of readdirSync("/dev/shm"))
      if (sys && f.startsWith(sys.ramPrefix)) removeDataDir(join("/dev/shm", f));
    if (sys) removeDataDir(sys.dataDir);
  });

  it("a producer writes 64 MiB into GPU memory, a separate consumer reads the same bytes", async () => {
    const p = await runNode<{ id: string; sha256: string }>("tests/e2e/fixtures/producer.ts", [
      sys.url,
      "GPU",
      String(64 << 20),
      "5",
    ]);
    const c = await runNode<{ sha256: string; size: number }>("tests/e2e/fixtures/consumer.ts", [
      sys.url,
      p.id,
      "gpu",
    ]);
    expect(c).toMatchObject({ sha256: p.sha256, size: 64 << 20 });
  });
});
