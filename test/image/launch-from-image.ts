import type { Launcher } from "../e2e/harness.ts";
import { type Container, startContainer } from "./podman.ts";

/**
 * The e2e harness's Launcher for the image: each process runs in its own container, started with
 * the Dockerfile's entrypoint and the args the chart gives it, and the environment the harness
 * sets (nothing of this machine's). `containers` collects them (by harness name) for the test's
 * own checks and its teardown.
 */
export function launchFromImage(image: string, containers: Map<string, Container>): Launcher {
  return async ({ role, name, env, logFile }) => {
    const container = await startContainer({
      name: `dfw-test-${role}-${name}-${process.pid}`,
      image,
      args: [`dist/${role}/main.js`],
      env,
      logFile,
    });
    containers.set(name, container);
    return container.proc;
  };
}
