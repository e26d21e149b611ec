import { describe, expect, it } from "vitest";
import { connectRedis, RedisConnectionSchema, sentinelRetryDelay } from "./redis-connection.ts";

describe("Redis connection settings", () => {
  it("parses Sentinel addresses, IPv6 in brackets", () => {
    const settings = RedisConnectionSchema.parse({ redisSentinels: "10.0.0.1:26379, [::1]:26380" });
    expect(settings.redisSentinels).toEqual([
      { host: "10.0.0.1", port: 26379 },
      { host: "::1", port: 26380 },
    ]);
    expect(settings.redisSentinelMaster).toBe("mymaster");
  });

  it("refuses a Sentinel address without a port, naming it", () => {
    const result = RedisConnectionSchema.safeParse({ redisSentinels: "10.0.0.1:26379,sentinel-b" });
    expect(result.error?.issues[0]?.message).toBe('expected host:port, got "sentinel-b"');
  });

  it("takes only redis:// and rediss:// URLs", () => {
    expect(RedisConnectionSchema.safeParse({ redisUrl: "http://redis:6379" }).error?.issues[0]?.message).toBe(
      "a redis:// or rediss:// URL",
    );
    expect(RedisConnectionSchema.parse({ redisUrl: "rediss://redis:6380/1" }).redisUrl).toBe(
      "rediss://redis:6380/1",
    );
  });

  it("gives the ACL user and password over the URL's, and follows Sentinel when given", () => {
    const direct = connectRedis(
      RedisConnectionSchema.parse({
        redisUrl: "redis://old:secret@redis.example:6380/2",
        redisUsername: "dataforce-dispatcher",
        redisPassword: "p",
      }),
      { lazyConnect: true },
    );
    expect(direct.options).toMatchObject({
      host: "redis.example",
      port: 6380,
      db: 2,
      username: "dataforce-dispatcher",
      password: "p",
    });
    direct.disconnect();

    const sentinel = connectRedis(
      RedisConnectionSchema.parse({ redisSentinels: "127.0.0.1:26379", redisSentinelMaster: "main" }),
      { lazyConnect: true },
    );
    expect(sentinel.options).toMatchObject({ sentinels: [{ host: "127.0.0.1", port: 26379 }], name: "main" });
    sentinel.disconnect();
  });

  it("retries a Sentinel connection at least every ~second, unless the caller says otherwise", () => {
    expect(sentinelRetryDelay(1)).toBeLessThan(150);
    for (const attempt of [6, 10, 100]) {
      expect(sentinelRetryDelay(attempt)).toBeGreaterThanOrEqual(1_000);
      expect(sentinelRetryDelay(attempt)).toBeLessThan(1_100);
    }
    const settings = RedisConnectionSchema.parse({ redisSentinels: "127.0.0.1:26379" });
    const sentinel = connectRedis(settings, { lazyConnect: true });
    expect(sentinel.options.retryStrategy).toBe(sentinelRetryDelay);
    sentinel.disconnect();
    const own = () => 5;
    const custom = connectRedis(settings, { lazyConnect: true, retryStrategy: own });
    expect(custom.options.retryStrategy).toBe(own);
    custom.disconnect();
  });
});
