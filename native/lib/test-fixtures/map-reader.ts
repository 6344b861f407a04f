/**
 * Child process for native.int.test.ts: maps a shm segment in a separate
 * process and reports what it sees as one JSON line.
 *   map-reader.ts <name> read          -> {"length", "checksum"}
 *   map-reader.ts <name> write-private -> writes through a copy-on-write mapping
 *   map-reader.ts <name> write-readonly -> writes through a read-only mapping (SIGSEGV)
 */
import { nativeApi } from "../index.ts";

const [name = "", mode = "read"] = process.argv.slice(2);
const api = nativeApi();

if (mode === "read") {
  const region = api.mapShm(name, { prefault: true });
  console.log(JSON.stringify({ length: region.bytes.length, checksum: api.checksumSync(region.bytes) }));
} else if (mode === "write-private") {
  const region = api.mapShm(name, { copyOnWrite: true });
  region.bytes.fill(0xee);
  console.log(JSON.stringify({ wrote: region.bytes.length }));
} else if (mode === "write-readonly") {
  const region = api.mapShm(name);
  region.bytes[0] = 1;
  console.log(JSON.stringify({ survived: true }));
}
