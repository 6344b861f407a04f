// `npm run demo`: starts payload-manager (API + tier agent) on free ports in a temp dir, writes a
// payload through shared memory from one process, reads it from another, verifies it, and prints
// sizes and timings. Nothing here carries the bytes over the network: only descriptors travel.
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { runNode, startSystem } from "../tests/support/system.ts";

const size = Number(process.env.PM_DEMO_BYTES ?? 256 * 1024 * 1024);
const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;

console.log(`starting payload-manager (API + tier agent) …`);
const sys = await startSystem({ env: { PM_RAM_CAPACITY_BYTES: String(size * 2) } });
try {
  console.log(`  API ${sys.url} (gRPC ${sys.grpcUrl}), data in ${sys.dataDir}`);
  const p = await runNode<{ id: string; sha256: string; ms: number; peakRssMb: number }>(
    "tests/e2e/fixtures/producer.ts",
    [sys.url, "RAM", String(size), "42"],
  );
  console.log(
    `producer process: wrote ${mib(size)} into /dev/shm/${sys.ramPrefix}${p.id}.bin and committed in ${p.ms.toFixed(1)} ms`,
  );
  const c = await runNode<{ sha256: string; size: number; firstReadMs: number; peakRssMb: number }>(
    "tests/e2e/fixtures/consumer.ts",
    [sys.url, p.id],
  );
  const gbps = size / 1e9 / (c.firstReadMs / 1000);
  console.log(
    `consumer process: leased, mapped and hashed ${mib(c.size)} in ${c.firstReadMs.toFixed(1)} ms (${gbps.toFixed(2)} GB/s incl. sha256), peak RSS ${c.peakRssMb.toFixed(0)} MiB`,
  );
  if (c.sha256 !== p.sha256) throw new Error("the consumer read different bytes than the producer wrote");
  console.log(`verified: sha256 ${c.sha256.slice(0, 16)}… matches`);
} finally {
  await sys.stop();
  for (const f of readdirSync("/dev/shm"))
    if (f.startsWith(sys.ramPrefix)) rmSync(join("/dev/shm", f), { force: true });
  rmSync(sys.dataDir, { recursive: true, force: true });
}
