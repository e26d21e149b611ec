import type { TestProject } from "vitest/node";
import { startRedis } from "./redis.ts";
import "./provided-context.ts";

/** One Redis per test run for the integration project; tests isolate themselves by key prefix. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const redis = await startRedis();
  project.provide("redisUrl", redis.url);
  return () => redis.stop();
}
