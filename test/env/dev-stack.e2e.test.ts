import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { Webhook as StandardWebhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { type Receiver, startReceiver } from "../support/receiver.ts";
import { DEMO_WEBHOOK, type DevStack, startDevStack } from "./dev-stack.ts";
import { startRedis, type TestRedis } from "./redis.ts";

const readmePath = join(import.meta.dirname, "..", "..", "README.md");

/** The parts of the README's example objects the test changes or reads. */
interface ExampleObject {
  kind: string;
  metadata: { name: string; namespace: string };
}
interface ExampleIntegration extends ExampleObject {
  spec: { destinationPolicy: { allowPlainHTTP: boolean } };
}
interface ExampleWebhook extends ExampleObject {
  spec: {
    event: string;
    url: string;
    headers: Array<{ valueFrom: { secretKeyRef: { name: string; key: string } } }>;
  };
}

// `make dev` on the run's cluster (the mode users get with KUBECONFIG + REDIS_URL set):
// the demo journey it prints, and the commands it suggests, work.
describe("make dev's stack", () => {
  let redis: TestRedis;
  let stack: DevStack;
  const suffix = randomBytes(3).toString("hex");
  /** Where the test applies the README's `acme` example (make dev's operator watches every namespace). */
  const acme = `acme-${suffix}`;

  beforeAll(async () => {
    redis = await startRedis(); // its own, so other suites' dispatchers never see its events
    const namespace = `demo-${suffix}`;
    stack = await startDevStack({
      kubeconfig: inject("kubeconfig"),
      redisUrl: redis.url,
      kubectlBin: join(inject("assetsDir"), "kubectl"),
      namespace,
      // every namespace in `make dev`; here the cluster is shared with other suites' operators
      watchNamespaces: [namespace, acme],
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
    const readme = await readFile(readmePath, "utf8");
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

  it("reconciles and delivers the README's example applied in another namespace", async (ctx) => {
    const readme = await readFile(readmePath, "utf8");
    const api = readme.slice(readme.indexOf("## The API"));
    const yamlBlock = api.slice(api.indexOf("```yaml\n") + 8, api.indexOf("\n```", api.indexOf("```yaml")));
    const objects: ExampleObject[] = parseAllDocuments(yamlBlock).map((document) => document.toJSON());
    expect(objects.map((object) => object.kind)).toEqual(["WebhookIntegration", "Webhook"]);
    const [integration, webhook] = objects as [ExampleIntegration, ExampleWebhook];
    const receiver: Receiver = await startReceiver();
    ctx.onTestFinished(() => receiver.close());
    // What a developer changes to try it here: its namespace, and a URL that reaches a receiver
    // on this machine (plain HTTP on loopback, which the policy must allow).
    for (const object of objects) object.metadata.namespace = acme;
    integration.spec.destinationPolicy.allowPlainHTTP = true;
    webhook.spec.url = receiver.url("/hooks/dataforce");
    const { secretKeyRef } = webhook.spec.headers[0]!.valueFrom;
    const authSecret = {
      apiVersion: "v1",
      kind: "Secret",
      metadata: {
        name: secretKeyRef.name,
        namespace: acme,
        labels: { "webhooks.dataforce.io/usage": "webhook" }, // the consent the README describes
      },
      stringData: { [secretKeyRef.key]: "Bearer crm-token" },
    };
    await stack.kubectl(["create", "namespace", acme]);
    await stack.kubectl(
      ["apply", "-f", "-"],
      JSON.stringify({ apiVersion: "v1", kind: "List", items: [authSecret, ...objects] }),
    );
    await stack.kubectl([
      "wait",
      "--for=condition=Ready",
      "--timeout=60s",
      "-n",
      acme,
      `webhook/${webhook.metadata.name}`,
    ]);
    await new Promise((resolve) => setTimeout(resolve, 1_500)); // the dispatcher's routing poll

    const published = await fetch(`${stack.dispatcherUrl}/v1/events`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.ingestToken}`, "content-type": "application/json" },
      body: JSON.stringify({
        type: webhook.spec.event,
        namespace: acme,
        data: { appointmentId: "apt_1" },
      }),
    });
    expect(published.status).toBe(202);
    const [request] = await receiver.waitForRequests(1, "/hooks/dataforce", 20_000);
    expect(request!.headers.authorization).toBe("Bearer crm-token");
    // signed with the secret the operator generated for acme, read as the README says
    const secret = Buffer.from(
      await stack.kubectl([
        "get",
        "secret",
        "-n",
        acme,
        "webhook-signing-secret",
        "-o",
        "jsonpath={.data.secret}",
      ]),
      "base64",
    ).toString("utf8");
    expect(() =>
      new StandardWebhook(secret).verify(request!.body, request!.headers as Record<string, string>),
    ).not.toThrow();
    await expect
      .poll(
        () =>
          stack
            .kubectl(["get", "whe", "-n", acme, "-o", "jsonpath={.items[*].status.phase}"])
            .catch(() => ""),
        { timeout: 20_000 },
      )
      .toBe("SENT");
  });
});
