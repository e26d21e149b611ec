/**
 * What kstatus (sigs.k8s.io/cli-utils kstatus/status.Compute, the library Flux's health checks run)
 * concludes about objects, from test/kstatus: a tiny Go program built once with the machine's Go
 * from the module proxy and cached by test/env/build-kstatus.sh (`make test` builds it first;
 * KSTATUS_BIN overrides).
 */
import { execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const repo = join(import.meta.dirname, "..", "..");

export type KstatusStatus = "InProgress" | "Failed" | "Current" | "Terminating" | "NotFound" | "Unknown";

export interface KstatusVerdict {
  kind: string;
  namespace?: string;
  name: string;
  status: KstatusStatus;
  message: string;
  conditions?: Array<{ type: string; status: string; reason: string; message: string }>;
}

let binary: Promise<string> | undefined;

/** Path of the kstatus binary; builds it on first use when it is not cached (about a minute). */
export function kstatusBin(): Promise<string> {
  binary ??= run("bash", [join(repo, "test", "env", "build-kstatus.sh")], { timeout: 600_000 }).then(
    ({ stdout }) => stdout.trim(),
  );
  return binary;
}

/** kstatus's verdict on each object (or on each item of a `kubectl get -o json` list), in order. */
export async function kstatus(objects: unknown): Promise<KstatusVerdict[]> {
  const bin = await kstatusBin();
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [], { stdio: ["pipe", "pipe", "pipe"], timeout: 30_000 });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0) resolve(JSON.parse(stdout) as KstatusVerdict[]);
      else reject(new Error(`kstatus exited with ${code}: ${stderr.trim()}`));
    });
    child.stdin.end(JSON.stringify(objects));
  });
}
