import { Redis } from "ioredis";

/** Deletes every Redis key under `prefix:` (a test's queues), so test runs leave nothing behind. */
export async function clearRedisPrefix(redisUrl: string, prefix: string): Promise<number> {
  if (!/^[A-Za-z0-9._-]+$/.test(prefix)) throw new Error(`refusing to clear the key pattern ${prefix}:*`);
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  let deleted = 0;
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      if (keys.length > 0) deleted += await redis.del(...keys);
      cursor = next;
    } while (cursor !== "0");
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
  return deleted;
}
