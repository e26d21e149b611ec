/**
 * The project's image under podman, for tests: build it (build-image.sh: cached base, cached
 * layers) and run a process from it the way the chart runs its pods — read-only root with an
 * emptyDir-like tmpfs at /tmp only, uid/gid 1000, every capability dropped, no privilege gain —
 * on the host's network (the processes listen on, and reach, 127.0.0.1 only).
 *
 * Each container is labelled with the test run's PID: a run killed before its teardown leaves
 * containers behind, and the next run removes those of dead owners (and no other container).
 */
import { execFile } from "node:child_process";
import { chmod, chown, copyFile, readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { runBuildScript } from "../env/build-script.ts";
import { type ManagedProcess, startProcess } from "../env/process.ts";

const run = promisify(execFile);
const BUILD_SCRIPT = join(import.meta.dirname, "build-image.sh");
const OWNER_LABEL = "io.dataforce.webhooks.test-owner";
/** The image's user (Dockerfile USER; the chart's runAsUser/runAsGroup). */
export const IMAGE_UID = 1000;
/** Where a container finds a kubeconfig handed to it (see startContainer). */
const KUBECONFIG_IN_CONTAINER = "/var/run/secrets/dataforce/kubeconfig";

export interface BuiltImage {
  readonly name: string;
  /** Wall time of build-image.sh (seconds): base and layers from cache when nothing changed. */
  readonly seconds: number;
}

/** Runs build-image.sh (progress to stderr) and returns the image it built. */
export async function buildImage(): Promise<BuiltImage> {
  const started = performance.now();
  const name = await runBuildScript(BUILD_SCRIPT);
  return { name, seconds: (performance.now() - started) / 1000 };
}

/** The image's labels (the Dockerfile's LABEL and build-image.sh's --label). */
export async function imageLabels(image: string): Promise<Record<string, string>> {
  return JSON.parse(await podman(["image", "inspect", "--format", "{{json .Labels}}", image])) as Record<
    string,
    string
  >;
}

/** The image's size as `podman image inspect` reports it (uncompressed, all layers). */
export async function imageSizeBytes(image: string): Promise<number> {
  return Number((await podman(["image", "inspect", "--format", "{{.Size}}", image])).trim());
}

export interface ContainerOptions {
  /** Container name (unique on the machine). */
  name: string;
  image: string;
  /** Arguments after the image's ENTRYPOINT (tini -- node), e.g. ["dist/operator/main.js"]. */
  args: readonly string[];
  /** The process's whole environment besides the image's own; KUBECONFIG is mounted (below). */
  env: Record<string, string>;
  /** podman's output (the process's stdout and stderr) goes here. */
  logFile: string;
}

export interface Container {
  readonly name: string;
  /** The attached `podman run` (exits with the container's exit code). */
  readonly proc: ManagedProcess;
  /**
   * `podman stop -t graceSeconds`: SIGTERM to tini (PID 1), which forwards it to node; SIGKILL when
   * the grace runs out. Resolves with the container's exit code and how long it took.
   */
  stop(graceSeconds: number): Promise<{ exitCode: number | null; seconds: number }>;
  /** `podman rm -f`: for teardown, whatever state the container is in. */
  remove(): Promise<void>;
}

/**
 * Starts a container attached (its output to the log file). A KUBECONFIG in `env` is copied to a
 * file the image's user owns and may read (the original is root's, mode 0600) and mounted
 * read-only, as a Secret volume would be.
 */
export async function startContainer(options: ContainerOptions): Promise<Container> {
  const env = { ...options.env };
  const mounts: string[] = [];
  if (env.KUBECONFIG) {
    const copy = `${options.logFile}.kubeconfig`;
    await copyFile(env.KUBECONFIG, copy);
    await chown(copy, IMAGE_UID, IMAGE_UID);
    await chmod(copy, 0o400);
    mounts.push("--volume", `${copy}:${KUBECONFIG_IN_CONTAINER}:ro`);
    env.KUBECONFIG = KUBECONFIG_IN_CONTAINER;
  }
  const args = [
    "run",
    "--rm",
    "--name",
    options.name,
    "--label",
    `${OWNER_LABEL}=${process.pid}`,
    "--pull=never",
    "--read-only",
    "--read-only-tmpfs=false",
    "--tmpfs",
    "/tmp:rw,size=64m,mode=1777",
    "--user",
    `${IMAGE_UID}:${IMAGE_UID}`,
    "--cap-drop=ALL",
    "--security-opt",
    "no-new-privileges",
    "--network",
    "host",
    ...mounts,
    ...Object.entries(env).flatMap(([key, value]) => ["--env", `${key}=${value}`]),
    options.image,
    ...options.args,
  ];
  const proc = startProcess(options.name, "podman", args, { logFile: options.logFile });
  const exited = new Promise<number | null>((resolve) => {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) resolve(proc.child.exitCode);
    else proc.child.once("exit", (code) => resolve(code));
  });
  const remove = async () => {
    await podman(["rm", "--force", "--ignore", "--time", "0", options.name]).catch(() => "");
  };
  const stop = async (graceSeconds: number) => {
    const started = performance.now();
    await podman(["stop", "--ignore", "--time", String(graceSeconds), options.name]);
    const exitCode = await exited;
    return { exitCode, seconds: (performance.now() - started) / 1000 };
  };
  return {
    name: options.name,
    // The harness stops a process with proc.stop(graceMs): here that is `podman stop`, then the rest.
    proc: {
      name: proc.name,
      child: proc.child,
      async stop(graceMs = 5_000) {
        await stop(Math.ceil(graceMs / 1000)).catch(() => undefined);
        await proc.stop(1_000);
        await remove();
      },
    },
    stop,
    remove,
  };
}

/** A process of a container, as the host's kernel sees it (/proc/PID/status). */
export interface ContainerProcess {
  args: string;
  /** Real, effective, saved and filesystem ids. */
  uids: number[];
  gids: number[];
  /** Hex capability sets: effective, permitted, bounding. */
  capEff: string;
  capPrm: string;
  capBnd: string;
  noNewPrivs: boolean;
}

export async function containerProcesses(name: string): Promise<ContainerProcess[]> {
  const out = await podman(["top", name, "hpid", "args"]);
  const [, ...rows] = out.trim().split("\n");
  return Promise.all(
    rows.map(async (row) => {
      const [hpid = "", ...args] = row.trim().split(/\s+/);
      const status = await readFile(`/proc/${hpid}/status`, "utf8");
      const field = (key: string) => status.match(new RegExp(`^${key}:\\s*(.*)$`, "m"))?.[1]?.trim() ?? "";
      const ids = (key: string) => field(key).split(/\s+/).map(Number);
      return {
        args: args.join(" "),
        uids: ids("Uid"),
        gids: ids("Gid"),
        capEff: field("CapEff"),
        capPrm: field("CapPrm"),
        capBnd: field("CapBnd"),
        noNewPrivs: field("NoNewPrivs") === "1",
      };
    }),
  );
}

/** Runs a command in a running container as the image's user; resolves with its exit code and stderr. */
export async function execIn(
  name: string,
  command: readonly string[],
): Promise<{ code: number; stderr: string }> {
  return podman(["exec", name, ...command]).then(
    () => ({ code: 0, stderr: "" }),
    (error: { code?: number; stderr?: string }) => ({ code: error.code ?? -1, stderr: error.stderr ?? "" }),
  );
}

/** `podman inspect` of a container (HostConfig and Config, as podman reports them). */
export async function inspectContainer(name: string): Promise<{
  HostConfig: { ReadonlyRootfs: boolean; CapDrop: string[]; NetworkMode: string };
  Config: { User: string };
}> {
  const [info] = JSON.parse(await podman(["container", "inspect", name])) as [
    {
      HostConfig: { ReadonlyRootfs: boolean; CapDrop: string[]; NetworkMode: string };
      Config: { User: string };
    },
  ];
  return info;
}

/** Removes containers left by earlier test runs whose process is gone (never another's). */
export async function removeStaleContainers(): Promise<void> {
  const out = await podman([
    "ps",
    "--all",
    "--filter",
    `label=${OWNER_LABEL}`,
    "--format",
    `{{.Names}} {{index .Labels "${OWNER_LABEL}"}}`,
  ]);
  for (const line of out.trim().split("\n").filter(Boolean)) {
    const [name = "", owner = ""] = line.split(" ");
    if (isAlive(Number(owner))) continue;
    await podman(["rm", "--force", "--ignore", "--time", "0", name]);
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function podman(args: readonly string[]): Promise<string> {
  return (await run("podman", [...args], { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 })).stdout;
}
