import { randomBytes } from "node:crypto";
import { join } from "node:path";
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
});
