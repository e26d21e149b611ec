import type { V1Secret } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { Webhook, WebhookIntegration } from "../api/v1alpha1/index.ts";
import type { Cache, OperatorCaches } from "../caches.ts";
import { gatherNamespaceInputs, recheckAfter, SECRET_RECHECK_MS } from "./namespace-inputs.ts";

function cache<T extends { metadata?: { name?: string; namespace?: string } }>(items: T[]): Cache<T> {
  return {
    get: (namespace, name) =>
      items.find((i) => i.metadata?.namespace === namespace && i.metadata?.name === name),
    list: (namespace) => items.filter((i) => namespace === undefined || i.metadata?.namespace === namespace),
  };
}

const GENERATED = { name: "webhook-signing-secret", key: "secret" };

function caches(integrationSpec: Record<string, unknown>, secrets: string[]): OperatorCaches {
  const hook = {
    metadata: { name: "crm", namespace: "ns" },
    spec: {
      event: "job.created",
      url: "https://x.example",
      headers: [{ name: "Authorization", valueFrom: { secretKeyRef: { name: "crm-auth", key: "token" } } }],
    },
  } as unknown as Webhook;
  return {
    integrations: cache([
      { metadata: { name: "default", namespace: "ns" }, spec: integrationSpec } as WebhookIntegration,
    ]),
    webhooks: cache([hook]),
    events: cache([]),
    secrets: cache(secrets.map((name) => ({ metadata: { name, namespace: "ns" }, data: {} }) as V1Secret)),
  };
}

describe("gatherNamespaceInputs", () => {
  it("looks up only referenced Secrets missing from the labelled cache, and reports those that exist", async () => {
    const asked: string[] = [];
    const exists = async (_ns: string, name: string) => {
      asked.push(name);
      return name === "crm-auth";
    };
    const inputs = await gatherNamespaceInputs(caches({ enabled: true }, []), "ns", GENERATED, exists);
    // the generated signing secret is the integration reconciler's to create: not looked up
    expect(asked).toEqual(["crm-auth"]);
    expect([...(inputs.unlabelledSecrets ?? [])]).toEqual(["crm-auth"]);

    asked.length = 0;
    const labelled = await gatherNamespaceInputs(
      caches({ enabled: true, signingSecretRef: { name: "mine", key: "k" } }, ["crm-auth"]),
      "ns",
      GENERATED,
      exists,
    );
    expect(asked).toEqual(["mine"]);
    expect([...(labelled.unlabelledSecrets ?? [])]).toEqual([]);
  });
});

describe("gatherNamespaceInputs for one webhook", () => {
  it("holds only that webhook, and looks up only the Secrets it and the integration read", async () => {
    const base = caches({ enabled: true, signingSecretRef: { name: "mine", key: "k" } }, ["mine"]);
    const other = {
      metadata: { name: "other", namespace: "ns" },
      spec: {
        event: "job.created",
        url: "https://y.example",
        headers: [{ name: "X", valueFrom: { secretKeyRef: { name: "other-auth", key: "k" } } }],
      },
    } as unknown as Webhook;
    const withOther: OperatorCaches = { ...base, webhooks: cache([...base.webhooks.list("ns"), other]) };
    const asked: string[] = [];
    const exists = async (_ns: string, name: string) => {
      asked.push(name);
      return false;
    };
    const inputs = await gatherNamespaceInputs(withOther, "ns", GENERATED, exists, { webhook: "crm" });
    expect(inputs.webhooks.map((w) => w.metadata.name)).toEqual(["crm"]);
    expect(asked).toEqual(["crm-auth"]);

    const gone = await gatherNamespaceInputs(withOther, "ns", GENERATED, exists, { webhook: "deleted" });
    expect(gone.webhooks).toEqual([]);
  });
});

describe("recheckAfter", () => {
  it("looks again for a Secret every SECRET_RECHECK_MS, and when a wait's grace ends if sooner", () => {
    expect(recheckAfter("Active", undefined)).toBeUndefined();
    expect(recheckAfter("SecretNotFound", undefined)).toEqual({ requeueAfter: SECRET_RECHECK_MS });
    expect(recheckAfter("SecretNotLabelled", 60_000)).toEqual({ requeueAfter: SECRET_RECHECK_MS });
    // a Secret the informer cannot see may block the generated one; its deletion wakes nothing
    expect(recheckAfter("SigningSecretPending", 60_000)).toEqual({ requeueAfter: SECRET_RECHECK_MS });
    expect(recheckAfter("SecretNotFound", 3_000)).toEqual({ requeueAfter: 3_050 });
    // nothing else wakes a webhook waiting for its integration when the grace ends
    expect(recheckAfter("IntegrationMissing", 60_000)).toEqual({ requeueAfter: 60_050 });
  });
});
