import { isUuidText, type PayloadId } from "@pm/domain";

/** Default key prefix of payload objects in the bucket. */
export const DEFAULT_KEY_PREFIX = "payloads/";

const PREFIX = /^(?:[A-Za-z0-9._-]+\/)*$/;

/**
 * Checks a key prefix: empty, or path segments of [A-Za-z0-9._-] each ending in "/", none of them
 * "." or ".." (harmless to S3, but tools that map keys to paths would climb out).
 */
export function isValidKeyPrefix(prefix: string): boolean {
  if (prefix.length > 256 || !PREFIX.test(prefix)) return false;
  return prefix.split("/").every((s) => s !== "." && s !== "..");
}

/** The object key of a payload: `<prefix><uuid>` (lower-case canonical UUID text). */
export function objectKeyOf(prefix: string, id: PayloadId): string {
  if (!isValidKeyPrefix(prefix)) throw new Error(`invalid object key prefix ${JSON.stringify(prefix)}`);
  if (!isUuidText(id)) throw new Error(`${JSON.stringify(id)} is not a payload id`);
  return `${prefix}${id.toLowerCase()}`;
}

/**
 * True when `key` names the object of payload `id`: a valid prefix followed by the id. Agents
 * accept only such keys, so a caller cannot make them read or overwrite arbitrary objects.
 */
export function isKeyOfPayload(key: string, id: PayloadId): boolean {
  const name = id.toLowerCase();
  if (!isUuidText(id) || !key.endsWith(name)) return false;
  return isValidKeyPrefix(key.slice(0, key.length - name.length));
}

/**
 * The metadata sidecar next to an object: `<key>.meta.json`, a `PayloadArchiveMetadata` record in
 * protobuf JSON (wire contract, observation 12).
 */
export function sidecarKeyOf(key: string): string {
  return `${key}.meta.json`;
}
