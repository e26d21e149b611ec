// Existing webhooks follow their integration's signing secret (issue 10, item 7): switched from a
// referenced Secret to a generated one, from generated to referenced, or a referenced Secret that
// appears only later, the Webhook turns Ready=True promptly and the next event is delivered, SENT.
import { Webhook as StandardWebhook } from "standardwebhooks";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { SECRET_USAGE_LABEL, SECRET_USAGE_VALUE } from "../../operator/api/v1alpha1/index.ts";
import { applyYaml, kubectl } from "../env/kubectl.ts";
import { type Receiver, startReceiver } from "../support/receiver.ts";
import { type E2eWorld, setupWorld } from "./harness.ts";
import {
  eventually,
  getIntegration,
  getJson,
  getWebhook,
  integrationYaml,
  listEvents,
  ready,
  routingLive,
  webhookYaml,
} from "./k8s.ts";

let world: E2eWorld;
let receiver: Receiver;

beforeAll(async () => {
  world = await setupWorld("signing", ["to-generated", "to-ref", "ref-later", "round-trip", "rotate"]);
  receiver = await startReceiver();
  await world.startOperator("op-signing");
});

beforeEach(({ onTestFailed }) => onTestFailed(() => world.printLogs()));

afterAll(async () => {
  await receiver?.close();
  await world?.teardown();
});

const TEAM_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/**
 * Well under the webhook's 10 s Secret re-check and the 10 min resync: a Ready that only a timer
 * brings would miss it. The reported symptom was still there 30 s later.
 */
const PROMPTLY_MS = 5_000;

/** Switches made in a row; before the fix about one in three left the webhook SigningSecretPending. */
const SWITCH_ROUNDS = 5;

function signingSecretYaml(ns: string, name: string, value: string): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace: ns, labels: { [SECRET_USAGE_LABEL]: SECRET_USAGE_VALUE } },
    stringData: { secret: value },
  });
}

function withSigningRef(ns: string, name: string): string {
  return integrationYaml(ns).replace(
    "spec:\n",
    `spec:\n  signingSecretRef:\n    name: ${name}\n    key: secret\n`,
  );
}

async function generatedSigningSecret(ns: string): Promise<string> {
  const secret = await getJson<{ data: { secret: string } }>([
    "get",
    "secret",
    "webhook-signing-secret",
    "-n",
    ns,
  ]);
  return Buffer.from(secret.data.secret, "base64").toString("utf8");
}

async function webhookActive(ns: string, name: string, timeoutMs = 20_000, what = ""): Promise<void> {
  await eventually(async () => {
    expect(ready(await getWebhook(ns, name)), what).toMatchObject({ status: "True", reason: "Active" });
  }, timeoutMs);
}

/** Publishes one event after the routing is live; returns once it was received signed with `secret` and is SENT. */
async function deliveredSignedWith(ns: string, path: string, id: string, secret: string): Promise<void> {
  const before = receiver.requests(path).length;
  await world.dispatcher.publish({ type: "job.created", namespace: ns, id, data: { id } });
  const requests = await receiver.waitForRequests(before + 1, path);
  const request = requests[before]!;
  new StandardWebhook(secret).verify(request.body, request.headers as Record<string, string>);
  await eventually(async () => {
    const event = (await listEvents(ns)).find((e) => e.spec.eventId === id);
    expect(event?.status).toMatchObject({ phase: "SENT" });
  });
}

describe("a webhook follows its integration's signing secret", () => {
  it("signingSecretRef removed: the generated secret signs, the Webhook is Ready=True promptly, the next event is SENT", async () => {
    const ns = world.namespaces["to-generated"]!;
    const path = "/to-generated/crm";
    await applyYaml(
      [
        signingSecretYaml(ns, "team-signing", TEAM_SECRET),
        withSigningRef(ns, "team-signing"),
        webhookYaml(ns, "crm", "job.created", receiver.url(path)),
      ].join("\n---\n"),
    );
    // Whether the webhook is reconciled before or after the generated Secret reaches the
    // operator's cache is a race, so the switch is made several times.
    for (let round = 1; round <= SWITCH_ROUNDS; round++) {
      await applyYaml(withSigningRef(ns, "team-signing"));
      await webhookActive(ns, "crm");
      await routingLive(world, ns, (r) => r?.signingSecrets[0] === TEAM_SECRET && r.webhooks.length === 1);
      // every round generates a new Secret, as the first switch of an integration does
      await kubectl(["delete", "secret", "webhook-signing-secret", "-n", ns, "--ignore-not-found"]);

      await applyYaml(integrationYaml(ns));
      await eventually(async () => {
        const integration = await getIntegration(ns);
        expect(ready(integration)).toMatchObject({ status: "True", reason: "Active" });
        expect(integration.status?.signingSecretName).toBe("webhook-signing-secret");
      });
      await webhookActive(ns, "crm", PROMPTLY_MS, `round ${round}`);
      const generated = await generatedSigningSecret(ns);
      await routingLive(world, ns, (r) => r?.signingSecrets[0] === generated);
      await deliveredSignedWith(ns, path, `job-${round}`, generated);
    }
  });

  it("the generated Secret deleted (to rotate it): a new one signs, the Webhook is Ready=True promptly, the next event is SENT", async () => {
    const ns = world.namespaces.rotate!;
    const path = "/rotate/crm";
    await applyYaml(
      `${integrationYaml(ns)}---\n${webhookYaml(ns, "crm", "job.created", receiver.url(path))}`,
    );
    await webhookActive(ns, "crm");
    let previous = await generatedSigningSecret(ns);
    for (let round = 1; round <= SWITCH_ROUNDS; round++) {
      await kubectl(["delete", "secret", "webhook-signing-secret", "-n", ns]);
      const generated = await eventually(async () => {
        const value = await generatedSigningSecret(ns);
        expect(value).not.toBe(previous);
        return value;
      });
      await webhookActive(ns, "crm", PROMPTLY_MS, `round ${round}`);
      await routingLive(world, ns, (r) => r?.signingSecrets[0] === generated && r.webhooks.length === 1);
      await deliveredSignedWith(ns, path, `job-${round}`, generated);
      previous = generated;
    }
  });

  it("generated → signingSecretRef to a labelled Secret: Ready=True promptly, the next event is signed with it and SENT", async () => {
    const ns = world.namespaces["to-ref"]!;
    const path = "/to-ref/crm";
    await applyYaml(
      `${integrationYaml(ns)}---\n${webhookYaml(ns, "crm", "job.created", receiver.url(path))}`,
    );
    await webhookActive(ns, "crm");
    const generated = await generatedSigningSecret(ns);
    await routingLive(world, ns, (r) => r?.signingSecrets[0] === generated && r.webhooks.length === 1);
    await deliveredSignedWith(ns, path, "job-1", generated);

    await applyYaml(
      `${signingSecretYaml(ns, "team-signing", TEAM_SECRET)}\n---\n${withSigningRef(ns, "team-signing")}`,
    );
    await eventually(async () => {
      expect((await getIntegration(ns)).status?.signingSecretName).toBe("team-signing");
    });
    await webhookActive(ns, "crm", PROMPTLY_MS);
    await routingLive(world, ns, (r) => r?.signingSecrets[0] === TEAM_SECRET);
    await deliveredSignedWith(ns, path, "job-2", TEAM_SECRET);
  });

  it("signingSecretRef to a Secret that appears only later: SecretNotFound, then Ready=True promptly once it exists, and SENT", async () => {
    const ns = world.namespaces["ref-later"]!;
    const path = "/ref-later/crm";
    await applyYaml(
      `${withSigningRef(ns, "team-signing")}---\n${webhookYaml(ns, "crm", "job.created", receiver.url(path))}`,
    );
    await eventually(async () => {
      expect(ready(await getWebhook(ns, "crm"))).toMatchObject({ status: "False", reason: "SecretNotFound" });
      expect(ready(await getIntegration(ns))).toMatchObject({ status: "False", reason: "SecretNotFound" });
    });

    await applyYaml(signingSecretYaml(ns, "team-signing", TEAM_SECRET));
    await webhookActive(ns, "crm", PROMPTLY_MS);
    await routingLive(world, ns, (r) => r?.signingSecrets[0] === TEAM_SECRET && r.webhooks.length === 1);
    await deliveredSignedWith(ns, path, "job-1", TEAM_SECRET);
  });

  it("generated → signingSecretRef to a missing Secret → generated again: the Webhook follows each step", async () => {
    const ns = world.namespaces["round-trip"]!;
    const path = "/round-trip/crm";
    await applyYaml(
      `${integrationYaml(ns)}---\n${webhookYaml(ns, "crm", "job.created", receiver.url(path))}`,
    );
    await webhookActive(ns, "crm");

    await applyYaml(withSigningRef(ns, "missing"));
    await eventually(async () => {
      expect(ready(await getWebhook(ns, "crm"))).toMatchObject({ status: "False", reason: "SecretNotFound" });
    }, PROMPTLY_MS);

    await applyYaml(integrationYaml(ns));
    await webhookActive(ns, "crm", PROMPTLY_MS);
    const generated = await generatedSigningSecret(ns);
    await routingLive(world, ns, (r) => r?.signingSecrets[0] === generated && r.webhooks.length === 1);
    await deliveredSignedWith(ns, path, "job-1", generated);
  });
});
