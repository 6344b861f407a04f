/**
 * Test doubles for `@pm/native`: a pure-JS {@link NativeApi} implementation and
 * JS versions of the checksums, for tests that must run without the addon.
 */
export {
  createFakeHost,
  createFakeNativeApi,
  type FakeHost,
  type FakeNativeOptions,
} from "./fake-native-api.ts";
export { type ChecksumText, Crc32c, checksumText, createChecksum, Xxh64 } from "./js-checksums.ts";
