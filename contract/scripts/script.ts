import { createHash } from "node:crypto";
import type { ChainableCommander, Redis } from "ioredis";
import { assembleLua } from "./fragments.ts";

/**
 * A named Lua script. Scripts run with EVALSHA and fall back to EVAL (which also caches them on
 * the server) when Redis answers NOSCRIPT, e.g. after a restart: callers need nothing but a client.
 */
export interface LuaScript {
  readonly name: string;
  readonly lua: string;
  readonly sha: string;
}

/** A script from its source; `--- @include "<fragment>"` lines are expanded first (fragments.ts). */
export function defineScript(name: string, source: string): LuaScript {
  const lua = assembleLua(source);
  return { name, lua, sha: createHash("sha1").update(lua).digest("hex") };
}

export type ScriptArg = string | number;

export async function runScript(
  redis: Redis,
  script: LuaScript,
  keys: readonly string[],
  args: readonly ScriptArg[],
): Promise<unknown> {
  try {
    return await redis.evalsha(script.sha, keys.length, ...keys, ...args);
  } catch (error) {
    if (!isNoScript(error)) throw error;
    return await redis.eval(script.lua, keys.length, ...keys, ...args);
  }
}

/** Queues a script call on a pipeline; call `loadScripts` first (pipelines cannot fall back). */
export function queueScript(
  pipeline: ChainableCommander,
  script: LuaScript,
  keys: readonly string[],
  args: readonly ScriptArg[],
): ChainableCommander {
  return pipeline.evalsha(script.sha, keys.length, ...keys, ...args);
}

export async function loadScripts(redis: Redis, scripts: readonly LuaScript[]): Promise<void> {
  await Promise.all(scripts.map((script) => redis.script("LOAD", script.lua)));
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith("NOSCRIPT");
}
