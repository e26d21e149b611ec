import { createHash } from "node:crypto";
import type { ChainableCommander } from "ioredis";
import { primaries, type RedisClient } from "../redis-client.ts";
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
  redis: RedisClient,
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

/** Loads the scripts on the server, or on every master of a Cluster (a pipeline may go to any). */
export async function loadScripts(redis: RedisClient, scripts: readonly LuaScript[]): Promise<void> {
  await Promise.all(
    primaries(redis).flatMap((server) => scripts.map((script) => server.script("LOAD", script.lua))),
  );
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith("NOSCRIPT");
}

/**
 * Whether a script call failed on what it was given — a Lua runtime error, or a command the
 * script called refusing its arguments — rather than on the state of Redis. The same input then
 * fails the same way again; an outage, LOADING, OOM, READONLY, BUSY, a wrong key type, an ACL
 * refusal or a killed script pass, or fail every input alike, and must never be blamed on one.
 */
export function isScriptInputError(error: unknown): boolean {
  if (!(error instanceof Error) || error.name !== "ReplyError") return false;
  const { message } = error;
  return message.startsWith("ERR ") && RAISED_IN_SCRIPT.test(message) && !NOT_THE_INPUT.test(message);
}

// Redis 7 appends "script: <sha>, on @user_script:<line>." to an error raised in a script;
// Redis 6.2 wraps it as "ERR Error running script (call to f_<sha>): @user_script:<line>: …",
// with the error code of a refused command inside.
const RAISED_IN_SCRIPT =
  /script: [0-9a-f]{40}, on @user_script:\d+\.$|^ERR Error running script \(call to f_[0-9a-f]{40}\)/;
// Cluster: a script that reads a key of a slot being migrated, which has left for the other node,
// fails with "Script attempted to access a non local key in a cluster node": a state of Redis.
const NOT_THE_INPUT =
  /\b(OOM|READONLY|LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|NOREPLICAS|MISCONF|NOPERM|WRONGTYPE|CROSSSLOT|MOVED|ASK)\b|can't run this command|no permissions|Script killed|non local key|do not hash to the same slot/;
