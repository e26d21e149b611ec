import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { DEMO_WEBHOOK, type DevStack, startDevStack } from "./dev-stack.ts";
import { startRedis, type TestRedis } from "./redis.ts";

// `make dev` on the run's cluster (the mode users get with KUBECONFIG + REDIS_URL set):
// the demo journey it prints, and the commands it suggests, work.
describe("make dev's stack", () => {
  let redis: TestRedis;
  let stack: DevStack;

  beforeAll(async () => {
    redis = await startRedis(); // its own, so other suites' dispatchers never see its events
    stack = await startDevStack({
      kubeconfig: inject("kubeconfig"),
      redisUrl: redis.url,
      kubectlBin: join(inject("assetsDir"), "kubectl"),
      namespace: `demo-${randomBytes(3).toString("hex")}`,
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await redis?.stop();
  });

  it("delivers the demo event, signed, and shows it SENT in kubectl", async () => {
    const eventId = await stack.publish("appointment.completed", { appointmentId: "apt_4821" });
    await expect.poll(() => stack.receiver.deliveries.length, { timeout: 20_000 }).toBe(1);
    const [delivery] = stack.receiver.deliveries;
    expect(delivery?.verified).toBe(true);
    expect(delivery?.body).toMatchObject({ type: "appointment.completed" });
    await expect
      .poll(
        () =>
          stack
            .kubectl([
              "get",
              "webhookevents",
              "-n",
              stack.namespace,
              "-o",
              "jsonpath={.items[*].status.phase}",
            ])
            .catch(() => ""),
        { timeout: 20_000 },
      )
      .toBe("SENT");
    const table = await stack.kubectl([
      "get",
      "webhookintegrations,webhooks,webhookevents",
      "-n",
      stack.namespace,
    ]);
    expect(table).toContain(DEMO_WEBHOOK);
    expect(table).toMatch(/SENT\s+1/);

    const list = await fetch(`${stack.dispatcherUrl}/v1/deliveries?namespace=${stack.namespace}`, {
      headers: { authorization: `Bearer ${stack.adminToken}` },
    });
    expect(list.status).toBe(200);
    expect(JSON.stringify(await list.json())).toContain(eventId);

    const metrics = await (await fetch(`${stack.dispatcherUrl}/metrics`)).text();
    expect(metrics).toMatch(/^dataforce_/m);
  });

  it("runs the README's publishing and event-log commands as written", async () => {
    const readme = await readFile(join(import.meta.dirname, "..", "..", "README.md"), "utf8");
    const shellBlock = (heading: string) => {
      const section = readme.slice(readme.indexOf(heading));
      const block = section.slice(
        section.indexOf("```sh\n") + 6,
        section.indexOf("\n```", section.indexOf("```sh")),
      );
      return block
        .replace(/\\\n\s*/g, "") // continuation lines
        .split("\n")
        .map((line) => line.replace(/\s+#.*$/, "").trim())
        .filter((line) => line !== "" && !line.startsWith("#"));
    };
    const sh = async (command: string) => {
      const env = {
        ...process.env,
        KUBECONFIG: inject("kubeconfig"),
        PATH: `${inject("assetsDir")}:${process.env.PATH}`,
        DISPATCHER: stack.dispatcherUrl,
        INGEST_TOKEN: stack.ingestToken,
      };
      const { stdout } = await promisify(execFile)("bash", ["-c", command], { env });
      return stdout;
    };
    const inOurNamespace = (line: string) => line.replaceAll("acme", stack.namespace);

    const publish = shellBlock("## Publishing events");
    expect(publish).toHaveLength(1);
    expect(await sh(inOurNamespace(publish[0] ?? ""))).toContain('"id":"evt_01JD5Q1W3ZK8"');
    await expect.poll(() => stack.receiver.deliveries.length, { timeout: 20_000 }).toBe(2);

    const name = (
      await stack.kubectl(["get", "whe", "-n", stack.namespace, "-o", "jsonpath={.items[0].metadata.name}"])
    ).trim();
    const commands = shellBlock("## The event log with kubectl").map((line) =>
      inOurNamespace(line).replaceAll("d-3f9c…", name),
    );
    expect(commands.length).toBeGreaterThanOrEqual(8);
    const outputs = [];
    for (const command of commands) outputs.push(await sh(command));
    expect(outputs[0]).toContain(name);
    expect(outputs.join("\n")).toContain('"type":"appointment.completed"'); // the payload
    expect(outputs.join("\n")).toContain(`webhookevent.webhooks.dataforce.io/${name} annotated`);
  });
});
