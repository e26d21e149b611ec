import type { KubernetesObject, V1Secret } from "@kubernetes/client-node";
import type { Redis } from "ioredis";
import { pino } from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { keyspace } from "../../contract/keys.ts";
import { TEST_SECRET_BOX } from "../../test/support/fixtures.ts";
import type { Condition } from "../api/v1alpha1/index.ts";
import { SECRET_USAGE_LABEL, SECRET_USAGE_VALUE } from "../api/v1alpha1/index.ts";
import type { ApiWrites, Target } from "../api-writes.ts";
import { cacheOf, type OperatorCaches } from "../caches.ts";
import { Controller, type ControllerOptions } from "../controller/controller.ts";
import type { InformerHandlers } from "../controller/informer.ts";
import { objectKey, type ResourceType } from "../controller/kube.ts";
import type { OperatorInformers, SharedInformer } from "../watch-scope.ts";
import { addIntegrationController } from "./integration-controller.ts";
import { EVENT_LOG_TOKEN_SECRET, INGEST_TOKEN_SECRET } from "./namespace-inputs.ts";
import { LastDeliveries } from "./webhook.ts";
import { addWebhookController } from "./webhook-controller.ts";

// The controllers' wiring against a cache that lags the API server, as an informer does: a
// reconciler that compares what it wants with the cached status must look again once its own
// last status write reaches the cache, or a quick A → B → A of its verdict leaves B written.

const NS = "ns";
const GENERATED = { name: "webhook-signing-secret", key: "secret" };
const TEAM_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const GENERATED_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const SINCE = "2026-01-01T00:00:00Z";

/** An informer stand-in: a change reaches it (and its handlers) only when the test says so. */
class LaggingInformer implements SharedInformer {
  private readonly objects = new Map<string, KubernetesObject>();
  private readonly handlers = new Set<InformerHandlers<KubernetesObject>>();
  private resourceVersion = 0;

  on(handlers: InformerHandlers<KubernetesObject>): () => void {
    this.handlers.add(handlers);
    return () => this.handlers.delete(handlers);
  }
  start(): void {}
  async waitForSync(): Promise<void> {}
  hasSynced(): boolean {
    return true;
  }
  get(name: string, namespace?: string): KubernetesObject | undefined {
    return this.objects.get(`${namespace}/${name}`);
  }
  list(namespace?: string): KubernetesObject[] {
    return [...this.objects.values()].filter(
      (o) => namespace === undefined || o.metadata?.namespace === namespace,
    );
  }
  /** The watch delivers `object` (a new resourceVersion). */
  put(object: KubernetesObject): void {
    const key = objectKey(object);
    const old = this.objects.get(key);
    const next = structuredClone(object);
    next.metadata = { ...next.metadata, resourceVersion: String(++this.resourceVersion) };
    this.objects.set(key, next);
    for (const h of this.handlers) old ? h.update?.(next, old) : h.add?.(next);
  }
  remove(object: KubernetesObject): void {
    const key = objectKey(object);
    const old = this.objects.get(key);
    this.objects.delete(key);
    if (old) for (const h of this.handlers) h.delete?.(old);
  }
}

/** RFC 7386, as the API server applies a status merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== "object" || patch === null || Array.isArray(patch)) return patch;
  const result: Record<string, unknown> =
    typeof target === "object" && target !== null && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

/** The API server's copy of every object, and the informers that lag it. */
function world(objects: { integration: KubernetesObject; webhook: KubernetesObject; secrets: V1Secret[] }) {
  const informers = {
    integrations: new LaggingInformer(),
    webhooks: new LaggingInformer(),
    events: new LaggingInformer(),
    secrets: new LaggingInformer(),
  } satisfies OperatorInformers;
  const server = new Map<string, KubernetesObject>();
  const byPlural = { webhookintegrations: informers.integrations, webhooks: informers.webhooks } as const;
  const serverKey = (plural: string, target: Target) => `${plural}/${target.namespace}/${target.name}`;
  const put = (plural: keyof typeof byPlural, object: KubernetesObject) => {
    server.set(serverKey(plural, { namespace: NS, name: object.metadata?.name ?? "" }), object);
    byPlural[plural].put(object);
  };
  put("webhookintegrations", objects.integration);
  put("webhooks", objects.webhook);
  for (const secret of objects.secrets) informers.secrets.put(secret);

  const statusWrites: Array<{ plural: string; name: string; status: Record<string, unknown> }> = [];
  const writes = {
    // The API server takes the write at once; the informer sees it when the test calls `sync`.
    patchStatus: async (type: ResourceType, target: Target, status: Record<string, unknown>) => {
      const key = serverKey(type.plural, target);
      const current = server.get(key) as (KubernetesObject & { status?: unknown }) | undefined;
      if (!current) throw new Error(`no ${key}`);
      server.set(key, { ...current, status: mergePatch(current.status, status) } as KubernetesObject);
      statusWrites.push({ plural: type.plural, name: target.name, status });
    },
    createSecret: async () => {
      throw new Error("no Secret is created here");
    },
  } as unknown as ApiWrites;
  const caches: OperatorCaches = {
    integrations: cacheOf(informers.integrations),
    webhooks: cacheOf(informers.webhooks),
    events: cacheOf(informers.events),
    secrets: cacheOf(informers.secrets),
  };

  // Reconciles are counted as they end, so a step can wait for the one it caused.
  let waiting: Array<() => void> = [];
  const controllers: Controller[] = [];
  const manager = {
    controller<T extends KubernetesObject>(options: Omit<ControllerOptions<T>, "registry" | "logger">) {
      const controller = new Controller<T>({
        ...options,
        reconcile: async (request, signal) => {
          try {
            return await options.reconcile(request, signal);
          } finally {
            for (const resolve of waiting.splice(0)) resolve();
          }
        },
      });
      controllers.push(controller as unknown as Controller);
      return controller;
    },
  };

  return {
    informers,
    caches,
    writes,
    manager,
    statusWrites,
    put,
    /** The API server's Ready condition of an object. */
    ready(plural: keyof typeof byPlural, name: string): Condition | undefined {
      const object = server.get(serverKey(plural, { namespace: NS, name })) as {
        status?: { conditions?: Condition[] };
      };
      return object.status?.conditions?.find((c) => c.type === "Ready");
    },
    /** The watch catches up: the informer gets the API server's current copy of the object. */
    sync(plural: keyof typeof byPlural, name: string): void {
      const object = server.get(serverKey(plural, { namespace: NS, name }));
      if (object) byPlural[plural].put(object);
    },
    /** Resolves when the next reconcile (of any controller) has ended. */
    reconciled(): Promise<void> {
      return new Promise((resolve) => waiting.push(resolve));
    },
    async start(): Promise<void> {
      for (const controller of controllers) await controller.start();
    },
    async stop(): Promise<void> {
      waiting = [];
      for (const controller of controllers) await controller.stop();
    },
  };
}

type World = ReturnType<typeof world>;
let current: World | undefined;
afterEach(async () => {
  await current?.stop();
  current = undefined;
});

function secret(name: string, data: Record<string, string>): V1Secret {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace: NS, labels: { [SECRET_USAGE_LABEL]: SECRET_USAGE_VALUE } },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString("base64")])),
  };
}

function integration(generation: number, spec: Record<string, unknown>, status?: Record<string, unknown>) {
  return {
    apiVersion: "webhooks.dataforce.io/v1alpha1",
    kind: "WebhookIntegration",
    metadata: { name: "default", namespace: NS, uid: "integration-uid", generation },
    spec: { enabled: true, ...spec },
    ...(status ? { status } : {}),
  };
}

function webhook(uid: string, status?: Record<string, unknown>) {
  return {
    apiVersion: "webhooks.dataforce.io/v1alpha1",
    kind: "Webhook",
    metadata: { name: "crm", namespace: NS, uid, generation: 1 },
    spec: { event: "job.created", url: "https://crm.example/hooks" },
    ...(status ? { status } : {}),
  };
}

function readyCondition(status: string, reason: string, message: string, observedGeneration: number) {
  return { type: "Ready", status, reason, message, observedGeneration, lastTransitionTime: SINCE };
}

describe("a Webhook's Ready follows its integration's signing secret, whatever the cache lag", () => {
  it("signingSecretRef removed: Pending while the generated Secret is missing, Active once it exists — even when the cache had not seen the Pending write yet", async () => {
    const active = {
      observedGeneration: 1,
      conditions: [readyCondition("True", "Active", "delivering job.created events", 1)],
    };
    const w = world({
      integration: integration(1, { signingSecretRef: { name: "team-signing", key: "secret" } }),
      webhook: webhook("crm-uid", active),
      secrets: [secret("team-signing", { secret: TEAM_SECRET })],
    });
    current = w;
    addWebhookController(
      w.manager,
      w.informers,
      {
        caches: w.caches,
        writes: w.writes,
        generatedSecret: GENERATED,
        lastDeliveries: new LastDeliveries(),
        secretExists: async () => false,
        recordEvent: () => undefined,
        logger: pino({ enabled: false }),
      },
      2,
    );
    let reconciled = w.reconciled();
    await w.start();
    await reconciled;
    expect(w.statusWrites).toEqual([]); // the fixture is what the reconciler would write

    // The switch: the webhook is reconciled before the integration reconciler has generated the Secret.
    reconciled = w.reconciled();
    w.put("webhookintegrations", integration(2, {}));
    await reconciled;
    expect(w.ready("webhooks", "crm")).toMatchObject({ status: "Unknown", reason: "SigningSecretPending" });

    // The generated Secret arrives before the informer has seen that write: the cached webhook
    // still says Active, which is what the reconciler wants, so it writes nothing.
    reconciled = w.reconciled();
    w.informers.secrets.put(secret(GENERATED.name, { [GENERATED.key]: GENERATED_SECRET }));
    await reconciled;
    expect(w.ready("webhooks", "crm")).toMatchObject({ reason: "SigningSecretPending" });

    // The watch catches up with the Pending write: the webhook must not stay there.
    w.sync("webhooks", "crm");
    await vi.waitFor(() =>
      expect(w.ready("webhooks", "crm")).toMatchObject({ status: "True", reason: "Active" }),
    );
  });
});

describe("a WebhookIntegration's status follows its webhooks, whatever the cache lag", () => {
  it("a webhook replaced (deleted and created again): activeWebhooks goes back to 1", async () => {
    const active = {
      observedGeneration: 1,
      conditions: [readyCondition("True", "Active", "delivering: 1 of 1 webhooks active", 1)],
      activeWebhooks: 1,
      signingSecretName: GENERATED.name,
      ingestTokenSecretName: INGEST_TOKEN_SECRET.name,
      eventLogTokenSecretName: EVENT_LOG_TOKEN_SECRET.name,
    };
    const w = world({
      integration: integration(1, {}, active),
      webhook: webhook("crm-uid-1"),
      secrets: [
        secret(GENERATED.name, { [GENERATED.key]: GENERATED_SECRET }),
        secret(INGEST_TOKEN_SECRET.name, { [INGEST_TOKEN_SECRET.key]: "ingest-token-0123456789abcdef" }),
        secret(EVENT_LOG_TOKEN_SECRET.name, {
          [EVENT_LOG_TOKEN_SECRET.key]: "event-log-token-0123456789abcdef",
        }),
      ],
    });
    current = w;
    addIntegrationController(
      w.manager,
      w.informers,
      {
        caches: w.caches,
        redis: { hget: async () => null, evalsha: async () => 1 } as unknown as Redis,
        keys: keyspace("t-controllers"),
        box: TEST_SECRET_BOX,
        writes: w.writes,
        generatedSecret: GENERATED,
        secretExists: async () => false,
        recordEvent: () => undefined,
        logger: pino({ enabled: false }),
      },
      2,
    );
    let reconciled = w.reconciled();
    await w.start();
    await reconciled;
    expect(w.statusWrites).toEqual([]);

    // `kubectl replace --force`: the webhook is deleted ...
    reconciled = w.reconciled();
    w.informers.webhooks.remove(webhook("crm-uid-1"));
    await reconciled;
    expect(w.ready("webhookintegrations", "default")).toMatchObject({
      message: "delivering: 0 of 0 webhooks active",
    });

    // ... and created again before the informer has seen that status write.
    reconciled = w.reconciled();
    w.put("webhooks", webhook("crm-uid-2"));
    await reconciled;

    w.sync("webhookintegrations", "default");
    await vi.waitFor(() =>
      expect(w.ready("webhookintegrations", "default")).toMatchObject({
        status: "True",
        message: "delivering: 1 of 1 webhooks active",
      }),
    );
  });
});
