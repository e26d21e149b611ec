// Runs the chart's Argo CD health check (charts/dataforce-webhooks/files/argocd-health.lua) on a
// real Lua 5.1 interpreter (Debian's lua5.1; Argo CD embeds gopher-lua, which implements Lua 5.1)
// as Argo CD does: the object in the global `obj`, only the libraries Argo CD opens, the
// returned table's status and message (test/chart/argocd-health-harness.lua).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chartDir } from "./helm.ts";

export const healthScriptFile = join(chartDir, "files", "argocd-health.lua");
const harness = join(import.meta.dirname, "argocd-health-harness.lua");
/** `lua5.1` from Debian (`make deps` installs it); LUA51_BIN overrides. */
const lua51 = process.env.LUA51_BIN ?? "lua5.1";

export interface Health {
  status: string;
  message: string;
}

/** The health Argo CD would show for `obj` (as read from the API server). */
export function argoHealth(obj: unknown): Health {
  return runHealthScript(healthScriptFile, obj);
}

/** Runs a health script given as text (for tests of the harness itself). */
export function runHealthScriptText(script: string, obj: unknown): Health {
  const dir = mkdtempSync(join(tmpdir(), "argocd-health-"));
  try {
    writeFileSync(join(dir, "health.lua"), script);
    return runHealthScript(join(dir, "health.lua"), obj);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function runHealthScript(scriptFile: string, obj: unknown): Health {
  let output: string;
  try {
    output = execFileSync(lua51, [harness, scriptFile], {
      input: `return ${luaLiteral(obj)}\n`,
      encoding: "utf8",
      stdio: ["pipe", "pipe", "pipe"],
      timeout: 10_000,
    });
  } catch (error) {
    const e = error as { code?: string; stderr?: string; message: string };
    if (e.code === "ENOENT") throw new Error(`${lua51} not found: install Debian's lua5.1 (make deps)`);
    throw new Error(`the health script failed: ${e.stderr?.trim() || e.message}`);
  }
  const separator = output.indexOf("\0");
  if (separator < 0) throw new Error(`unexpected harness output: ${JSON.stringify(output)}`);
  return { status: output.slice(0, separator), message: output.slice(separator + 1) };
}

/**
 * A Lua 5.1 table constructor for a JSON value, built as Argo CD's decodeValue builds the table:
 * objects keyed by string, arrays from 1, every number a float (Lua 5.1 has no integers), null nil.
 */
export function luaLiteral(value: unknown): string {
  if (value === null || value === undefined) return "nil";
  if (typeof value === "boolean") return String(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new Error(`not a JSON number: ${value}`);
    return String(value);
  }
  if (typeof value === "string") return luaString(value);
  if (Array.isArray(value)) return `{${value.map((item, i) => `[${i + 1}]=${luaLiteral(item)}`).join(",")}}`;
  if (typeof value === "object") {
    const fields = Object.entries(value as Record<string, unknown>).map(
      ([key, item]) => `[${luaString(key)}]=${luaLiteral(item)}`,
    );
    return `{${fields.join(",")}}`;
  }
  throw new Error(`not a JSON value: ${typeof value}`);
}

/** A quoted Lua string of the UTF-8 bytes of `text`: printable ASCII as is, every other byte `\ddd`. */
function luaString(text: string): string {
  let out = '"';
  for (const byte of Buffer.from(text, "utf8")) {
    if (byte === 0x22 || byte === 0x5c) out += `\\${String.fromCharCode(byte)}`;
    else if (byte >= 0x20 && byte < 0x7f) out += String.fromCharCode(byte);
    else out += `\\${byte.toString().padStart(3, "0")}`;
  }
  return `${out}"`;
}
