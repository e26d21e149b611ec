import { spawn } from "node:child_process";

/**
 * Runs one of the build scripts that cache what they build outside the repo (progress goes to
 * stderr, inherited) and returns the last line it printed: what it built (a directory, an image).
 * `env` adds to this process's environment (a script's settings, e.g. an image name).
 */
export function runBuildScript(script: string, env: Record<string, string> = {}): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const child = spawn("bash", [script], {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, ...env },
    });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk;
    });
    child.on("error", reject);
    child.on("exit", (code) => {
      const last = out.trim().split("\n").at(-1) ?? "";
      if (code === 0 && last !== "") resolve(last);
      else reject(new Error(`${script} failed with exit code ${code}`));
    });
  });
}
