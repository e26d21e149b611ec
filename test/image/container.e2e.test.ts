// The image as shipped: built with podman from the unchanged Dockerfile (build-image.sh), both
// entrypoints run from it the way the chart runs its pods (read-only root, uid 1000, every
// capability dropped) against the run's kube-apiserver and Redis, the product journey once through
// them, and SIGTERM → exit 0 within the chart's grace.
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { Webhook as StandardWebhook } from "standardwebhooks";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { type E2eWorld, type OperatorProcess, repo, setupWorld } from "../e2e/harness.ts";
import {
  eventually,
  getJson,
  getWebhook,
  integrationYaml,
  listEvents,
  ready,
  routingLive,
  webhookYaml,
} from "../e2e/k8s.ts";
import { applyYaml } from "../env/kubectl.ts";
import { type Receiver, startReceiver } from "../support/receiver.ts";
import { launchFromImage } from "./launch-from-image.ts";
import {
  type BuiltImage,
  buildImage,
  type Container,
  containerProcesses,
  execIn,
  IMAGE_UID,
  imageLabels,
  imageSizeBytes,
  inspectContainer,
  removeStaleContainers,
} from "./podman.ts";

/** A cold build (no base, no layers) takes minutes; with both cached, seconds. */
const BUILD_BUDGET_MS = 20 * 60_000;
const OPERATOR = "op-image";

let image: BuiltImage;
let world: E2eWorld;
let receiver: Receiver;
let operator: OperatorProcess;
const containers = new Map<string, Container>();

beforeAll(async () => {
  await removeStaleContainers();
  image = await buildImage();
  const megabytes = Math.round((await imageSizeBytes(image.name)) / 1e6);
  console.log(`image: ${image.name} ${megabytes} MB, build-image.sh ${image.seconds.toFixed(1)}s`);
  world = await setupWorld("image", ["image"], { launch: launchFromImage(image.name, containers) });
  receiver = await startReceiver();
  operator = await world.startOperator(OPERATOR);
}, BUILD_BUDGET_MS);

beforeEach(({ onTestFailed }) => onTestFailed(() => world.printLogs()));

afterAll(async () => {
  await receiver?.close();
  await world?.teardown();
  await Promise.all([...containers.values()].map((container) => container.remove()));
});

/** terminationGracePeriodSeconds of each Deployment, from the chart's defaults. */
async function chartGraceSeconds(): Promise<{ dispatcher: number; operator: number }> {
  const values = parse(
    await readFile(join(repo, "charts", "dataforce-webhooks", "values.yaml"), "utf8"),
  ) as Record<"dispatcher" | "operator", { terminationGracePeriodSeconds: number }>;
  return {
    dispatcher: values.dispatcher.terminationGracePeriodSeconds,
    operator: values.operator.terminationGracePeriodSeconds,
  };
}

describe("the image under podman", () => {
  it("is labelled with the commit it was built from, though its layers come from the cache", async () => {
    const { stdout } = await promisify(execFile)("git", ["-C", repo, "rev-parse", "HEAD"]);
    expect(await imageLabels(image.name)).toMatchObject({
      "org.opencontainers.image.title": "dataforce-webhooks",
      "org.opencontainers.image.revision": stdout.trim(),
    });
  });

  it("runs both entrypoints read-only as uid 1000 with no capabilities, serving /healthz, /readyz and /metrics", async () => {
    const bases = {
      dispatcher: world.dispatcher.url,
      [OPERATOR]: `http://127.0.0.1:${operator.port}`,
    };
    for (const [name, base] of Object.entries(bases)) {
      const container = containers.get(name)!;
      const inspected = await inspectContainer(container.name);
      expect(inspected.HostConfig.ReadonlyRootfs, name).toBe(true);
      expect(inspected.Config.User, name).toBe(`${IMAGE_UID}:${IMAGE_UID}`);
      // tini (PID 1) and node, as the host's kernel sees them: the image's user, no capability at all
      const processes = await containerProcesses(container.name);
      expect(processes.map((p) => p.args).join(" | "), name).toMatch(/tini -- node dist\/.*node dist\//);
      for (const running of processes) {
        const none = "0000000000000000";
        expect(running, name).toMatchObject({
          uids: [IMAGE_UID, IMAGE_UID, IMAGE_UID, IMAGE_UID],
          gids: [IMAGE_UID, IMAGE_UID, IMAGE_UID, IMAGE_UID],
          capEff: none,
          capPrm: none,
          capBnd: none,
          noNewPrivs: true,
        });
      }
      // the user's own home would be writable on a writable root: refused for being read-only;
      // /tmp (the chart's emptyDir) is the one writable path
      const write = await execIn(container.name, ["sh", "-c", "echo x > /home/node/probe"]);
      expect(write.code, name).not.toBe(0);
      expect(write.stderr, name).toMatch(/Read-only file system/);
      expect((await execIn(container.name, ["sh", "-c", "echo x > /tmp/probe"])).code, name).toBe(0);

      expect((await fetch(`${base}/healthz`)).status, `${name} /healthz`).toBe(200);
      await eventually(async () =>
        expect((await fetch(`${base}/readyz`)).status, `${name} /readyz`).toBe(200),
      );
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics, `${name} /metrics`).toMatch(/^process_resident_memory_bytes \d+/m);
    }
  });

  it("the product journey with both processes in containers: apply, publish, a verifiable signed notification, the WebhookEvent SENT", async () => {
    const ns = world.namespaces.image!;
    const url = receiver.url("/image/crm");
    await applyYaml(`${integrationYaml(ns)}---\n${webhookYaml(ns, "crm", "appointment.completed", url)}`);
    await eventually(async () => {
      expect(ready(await getWebhook(ns, "crm"))).toMatchObject({ status: "True", reason: "Active" });
    });
    const secret = await getJson<{ data: Record<string, string> }>([
      "get",
      "secret",
      "webhook-signing-secret",
      "-n",
      ns,
    ]);
    const signingSecret = Buffer.from(secret.data.secret!, "base64").toString("utf8");

    await routingLive(world, ns, (r) => r?.webhooks.some((w) => w.name === "crm") ?? false);
    await world.dispatcher.publish({
      type: "appointment.completed",
      namespace: ns,
      id: "apt-image-1",
      data: { appointmentId: "apt_1", status: "completed" },
    });
    const [request] = await receiver.waitForRequests(1, "/image/crm");
    const verified = new StandardWebhook(signingSecret).verify(
      request!.body,
      request!.headers as Record<string, string>,
    ) as { type: string; data: { appointmentId: string } };
    expect(verified).toMatchObject({ type: "appointment.completed", data: { appointmentId: "apt_1" } });
    expect(String(request!.headers["user-agent"])).toMatch(/dataforce/i);

    await eventually(async () => {
      const [event] = await listEvents(ns);
      expect(event?.status).toMatchObject({ phase: "SENT", attempts: 1 });
      expect(event?.spec).toMatchObject({ eventId: "apt-image-1", webhook: "crm", payload: request!.body });
    });
  });

  it("SIGTERM (podman stop): both exit 0 well within the chart's terminationGracePeriodSeconds", async () => {
    const grace = await chartGraceSeconds();
    for (const [name, seconds] of [
      [OPERATOR, grace.operator],
      ["dispatcher", grace.dispatcher],
    ] as const) {
      const stopped = await containers.get(name)!.stop(seconds);
      console.log(
        `image: ${name} stopped with exit code ${stopped.exitCode} in ${stopped.seconds.toFixed(1)}s`,
      );
      expect(stopped.exitCode, name).toBe(0);
      // podman SIGKILLs at the grace: exiting well before it is the graceful path
      expect(stopped.seconds, name).toBeLessThan(seconds - 5);
    }
  });
});
