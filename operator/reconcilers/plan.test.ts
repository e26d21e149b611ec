import { describe, expect, it } from "vitest";
import { tokenDigest } from "../../contract/routing-config.ts";
import { generateSigningKey } from "../../contract/signing-keys.ts";
import { API_VERSION, type Webhook, type WebhookIntegration } from "../api/v1alpha1/index.ts";
import {
  INTEGRATION_STANDING,
  type NamespaceInputs,
  planNamespace,
  standingOf,
  WEBHOOK_STANDING,
} from "./plan.ts";

const NS = "acme";
const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NEXT_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

function integration(spec: Record<string, unknown> = {}): WebhookIntegration {
  return {
    apiVersion: API_VERSION,
    kind: "WebhookIntegration",
    metadata: { name: "default", namespace: NS, uid: "int-uid", generation: 4 },
    spec: { enabled: true, ...spec } as WebhookIntegration["spec"],
  };
}

function webhook(name: string, spec: Record<string, unknown> = {}): Webhook {
  return {
    apiVersion: API_VERSION,
    kind: "Webhook",
    metadata: { name, namespace: NS, uid: `${name}-uid`, generation: 1 },
    spec: { event: "job.created", url: `https://${name}.example/hook`, ...spec } as Webhook["spec"],
  };
}

function inputs(overrides: Partial<NamespaceInputs> = {}): NamespaceInputs {
  return {
    namespace: NS,
    integration: integration(),
    webhooks: [webhook("b-hook"), webhook("a-hook", { event: "payment.received" })],
    secrets: new Map([["webhook-signing-secret", { secret: SECRET }]]),
    generatedSecret: { name: "webhook-signing-secret", key: "secret" },
    ...overrides,
  };
}

const BOTH_HOOKS = new Map([
  ["a-hook", "a-hook-uid"],
  ["b-hook", "b-hook-uid"],
]);

describe("planNamespace", () => {
  it("compiles an enabled integration with defaults applied and webhooks sorted by name", () => {
    const compiled = planNamespace(inputs());
    expect(compiled.routing).toEqual({
      action: "write",
      routing: {
        namespace: NS,
        enabled: true,
        delivery: {
          maxAttempts: 3,
          timeoutMs: 15_000,
          backoff: { initialDelayMs: 5_000, maxDelayMs: 3_600_000, multiplier: 6 },
          circuitBreaker: { consecutiveFailures: 5, cooldownMs: 30_000, maxCooldownMs: 600_000 },
        },
        signingSecrets: [SECRET],
        allowPlainHttp: false,
        ingestTokenDigests: [],
        eventLogTokenDigests: [],
        generation: 4,
        webhooks: [
          {
            name: "a-hook",
            uid: "a-hook-uid",
            event: "payment.received",
            url: "https://a-hook.example/hook",
            paused: false,
            ordering: "Unordered",
            autoPaused: false,
            headers: {},
          },
          {
            name: "b-hook",
            uid: "b-hook-uid",
            event: "job.created",
            url: "https://b-hook.example/hook",
            paused: false,
            ordering: "Unordered",
            autoPaused: false,
            headers: {},
          },
        ],
      },
    });
    expect(compiled.integration).toEqual({
      ready: { status: "True", reason: "Active", message: "delivering: 2 of 2 webhooks active" },
      activeWebhooks: 2,
      signingSecretName: "webhook-signing-secret",
      signingPublicKeys: [],
    });
    expect(compiled.webhooks.get("a-hook")).toMatchObject({ status: "True", reason: "Active" });
  });

  it("puts the digests of the namespace's own ingest and event log tokens, not the tokens, into the routing", () => {
    const tokens = ["tok-one-0123456789abcdef", "tok-two-0123456789abcdef"];
    const logToken = "log-one-0123456789abcdef";
    const compiled = planNamespace(
      inputs({
        secrets: new Map<string, Record<string, string>>([
          ["webhook-signing-secret", { secret: SECRET }],
          ["webhook-ingest-token", { token: tokens.join(" ") }],
          ["webhook-event-log-token", { token: logToken }],
        ]),
      }),
    );
    if (compiled.routing.action !== "write") throw new Error("expected a routing");
    expect(compiled.routing.routing.ingestTokenDigests).toEqual(tokens.map(tokenDigest));
    expect(compiled.routing.routing.eventLogTokenDigests).toEqual([tokenDigest(logToken)]);
    expect(JSON.stringify(compiled.routing.routing)).not.toMatch(/tok-one|log-one/);
    expect(compiled.integration).toMatchObject({
      ingestTokenSecretName: "webhook-ingest-token",
      eventLogTokenSecretName: "webhook-event-log-token",
    });
  });

  it("publishes the whpk_ of every v1a key that signs, never the key", () => {
    const pair = generateSigningKey();
    const compiled = planNamespace(
      inputs({
        secrets: new Map<string, Record<string, string>>([
          ["webhook-signing-secret", { secret: `${pair.privateKey} ${SECRET}` }],
        ]),
      }),
    );
    expect(compiled.integration?.signingPublicKeys).toEqual([pair.publicKey]);
    if (compiled.routing.action !== "write") throw new Error("expected a routing");
    expect(compiled.routing.routing.signingSecrets).toEqual([pair.privateKey, SECRET]);
    expect(JSON.stringify(compiled.integration)).not.toContain(pair.privateKey);
  });

  it("turns durations into milliseconds", () => {
    const compiled = planNamespace(
      inputs({
        integration: integration({
          delivery: {
            maxAttempts: 5,
            timeout: "1.5s",
            backoff: { initialDelay: "100ms", maxDelay: "1m", multiplier: 2 },
            circuitBreaker: { consecutiveFailures: 5, cooldown: "2s", maxCooldown: "5m" },
          },
        }),
      }),
    );
    expect(compiled.routing.action === "write" && compiled.routing.routing.delivery).toEqual({
      maxAttempts: 5,
      timeoutMs: 1_500,
      backoff: { initialDelayMs: 100, maxDelayMs: 60_000, multiplier: 2 },
      circuitBreaker: { consecutiveFailures: 5, cooldownMs: 2_000, maxCooldownMs: 300_000 },
    });
  });

  it("deletes the routing and reports IntegrationMissing without an integration", () => {
    const compiled = planNamespace(inputs({ integration: undefined }));
    expect(compiled.routing).toEqual({ action: "delete" });
    expect(compiled.integration).toBeUndefined();
    expect(compiled.webhooks.get("a-hook")).toMatchObject({ status: "False", reason: "IntegrationMissing" });
  });

  it("writes a disabled routing (webhooks kept) and reports IntegrationDisabled, a desired state: Ready", () => {
    const compiled = planNamespace(inputs({ integration: integration({ enabled: false }) }));
    expect(compiled.routing.action).toBe("write");
    if (compiled.routing.action !== "write") return;
    expect(compiled.routing.routing.enabled).toBe(false);
    expect(compiled.routing.routing.webhooks).toHaveLength(2);
    expect(compiled.integration?.ready).toMatchObject({ status: "True", reason: "IntegrationDisabled" });
    expect(compiled.integration?.activeWebhooks).toBe(0);
    expect(compiled.webhooks.get("b-hook")).toMatchObject({ status: "True", reason: "IntegrationDisabled" });
  });

  it("uses a referenced signing secret, several while rotating", () => {
    const compiled = planNamespace(
      inputs({
        integration: integration({ signingSecretRef: { name: "mine", key: "keys" } }),
        secrets: new Map([["mine", { keys: ` ${NEXT_SECRET}\n${SECRET} ` }]]),
      }),
    );
    expect(compiled.routing.action === "write" && compiled.routing.routing.signingSecrets).toEqual([
      NEXT_SECRET,
      SECRET,
    ]);
    expect(compiled.integration?.signingSecretName).toBe("mine");
  });

  it.each([
    [new Map(), "SecretNotFound", /Secret mine not found/],
    [new Map([["mine", { other: SECRET }]]), "SecretNotFound", /key keys not found/],
    [new Map([["mine", { keys: "not-a-secret" }]]), "InvalidSigningSecret", /whsec_/],
    [new Map([["mine", { keys: "" }]]), "InvalidSigningSecret", /whsec_/],
    // 3 bytes: shorter than the 24 the Standard Webhooks spec asks for
    [new Map([["mine", { keys: "whsec_Zm9v" }]]), "InvalidSigningSecret", /24 to 64 bytes/],
  ])("keeps the last routing when the signing secret is unusable (%#)", (secrets, reason, message) => {
    const compiled = planNamespace(
      inputs({ integration: integration({ signingSecretRef: { name: "mine", key: "keys" } }), secrets }),
    );
    expect(compiled.routing).toEqual({ action: "keep", retain: BOTH_HOOKS });
    expect(compiled.integration?.ready).toMatchObject({ status: "False", reason });
    expect(compiled.integration?.ready.message).toMatch(message);
    expect(compiled.webhooks.get("a-hook")).toMatchObject({ status: "False", reason: "SecretNotFound" });
  });

  it("reports Unknown while the generated signing secret does not exist yet", () => {
    const compiled = planNamespace(inputs({ secrets: new Map() }));
    expect(compiled.routing).toEqual({ action: "keep", retain: BOTH_HOOKS });
    expect(compiled.integration?.ready).toMatchObject({ status: "Unknown", reason: "SigningSecretPending" });
    expect(compiled.webhooks.get("a-hook")).toMatchObject({
      status: "Unknown",
      reason: "SigningSecretPending",
    });
  });

  it("resolves header values from Secrets and leaves out a webhook whose Secret is missing", () => {
    const withHeaders = webhook("a-hook", {
      headers: [
        { name: "Authorization", valueFrom: { secretKeyRef: { name: "crm", key: "auth" } } },
        { name: "X-Team", value: "ops" },
      ],
    });
    const missing = webhook("b-hook", {
      headers: [{ name: "Authorization", valueFrom: { secretKeyRef: { name: "nope", key: "auth" } } }],
    });
    const compiled = planNamespace(
      inputs({
        webhooks: [withHeaders, missing],
        secrets: new Map<string, Record<string, string>>([
          ["webhook-signing-secret", { secret: SECRET }],
          ["crm", { auth: "Bearer t0k3n" }],
        ]),
      }),
    );
    if (compiled.routing.action !== "write") throw new Error("expected a routing");
    expect(compiled.routing.routing.webhooks.map((w) => [w.name, w.headers])).toEqual([
      ["a-hook", { Authorization: "Bearer t0k3n", "X-Team": "ops" }],
    ]);
    expect(compiled.webhooks.get("b-hook")).toEqual({
      status: "False",
      reason: "SecretNotFound",
      message: "header Authorization: Secret nope key auth not found",
    });
    expect(compiled.integration?.activeWebhooks).toBe(1);
    expect(compiled.integration?.ready.message).toBe("delivering: 1 of 2 webhooks active");
  });

  it("never reads a Secret without the consent label: SecretNotLabelled, and no route carries its value", () => {
    const hook = webhook("a-hook", {
      headers: [{ name: "Authorization", valueFrom: { secretKeyRef: { name: "db-password", key: "pw" } } }],
    });
    const compiled = planNamespace(inputs({ webhooks: [hook], unlabelledSecrets: new Set(["db-password"]) }));
    expect(compiled.webhooks.get("a-hook")).toEqual({
      status: "False",
      reason: "SecretNotLabelled",
      message:
        "header Authorization: Secret db-password is not labelled webhooks.dataforce.io/usage=webhook, so webhooks may not read it (kubectl label secret db-password webhooks.dataforce.io/usage=webhook)",
    });
    if (compiled.routing.action !== "write") throw new Error("expected a routing");
    expect(compiled.routing.routing.webhooks).toEqual([]);

    const signing = planNamespace(
      inputs({
        integration: integration({ signingSecretRef: { name: "team-signing", key: "secret" } }),
        secrets: new Map(),
        unlabelledSecrets: new Set(["team-signing"]),
      }),
    );
    expect(signing.integration?.ready).toMatchObject({ status: "False", reason: "SecretNotLabelled" });
    expect(signing.integration?.ready.message).toContain("kubectl label secret team-signing");
  });

  it("refuses plain http unless the destination policy allows it", () => {
    const plain = webhook("a-hook", { url: "http://127.0.0.1:8080/hook" });
    const refused = planNamespace(inputs({ webhooks: [plain] }));
    expect(refused.webhooks.get("a-hook")).toMatchObject({ status: "False", reason: "InsecureURL" });
    expect(refused.routing.action === "write" && refused.routing.routing.webhooks).toEqual([]);

    const allowed = planNamespace(
      inputs({
        webhooks: [plain],
        integration: integration({ destinationPolicy: { allowPlainHTTP: true } }),
      }),
    );
    expect(allowed.webhooks.get("a-hook")).toMatchObject({ status: "True", reason: "Active" });
    expect(allowed.routing.action === "write" && allowed.routing.routing.allowPlainHttp).toBe(true);
  });

  it("routes a paused webhook as paused and reports it Ready/Paused, not delivering", () => {
    const compiled = planNamespace(inputs({ webhooks: [webhook("a-hook", { paused: true })] }));
    expect(compiled.webhooks.get("a-hook")).toMatchObject({ status: "True", reason: "Paused" });
    expect(compiled.routing.action === "write" && compiled.routing.routing.webhooks[0]?.paused).toBe(true);
    expect(compiled.integration?.activeWebhooks).toBe(0);
  });

  it("carries a webhook's ordering into its route", () => {
    const compiled = planNamespace(inputs({ webhooks: [webhook("a-hook", { ordering: "Ordered" })] }));
    expect(compiled.routing.action === "write" && compiled.routing.routing.webhooks[0]?.ordering).toBe(
      "Ordered",
    );
  });

  it("leaves out a webhook whose receiver answered 410 Gone, until its spec changes", () => {
    const reported = planNamespace(inputs({ endpointGone: new Set(["a-hook"]) }));
    expect(reported.webhooks.get("a-hook")).toMatchObject({ status: "False", reason: "EndpointGone" });
    expect(
      reported.routing.action === "write" && reported.routing.routing.webhooks.map((w) => w.name),
    ).toEqual(["b-hook"]);

    const gone = webhook("a-hook");
    gone.metadata.generation = 2;
    gone.status = {
      conditions: [
        {
          type: "Ready",
          status: "False",
          reason: "EndpointGone",
          message: "",
          observedGeneration: 2,
          lastTransitionTime: "2026-01-01T00:00:00Z",
        },
      ],
    };
    expect(planNamespace(inputs({ webhooks: [gone] })).webhooks.get("a-hook")?.reason).toBe("EndpointGone");
    gone.metadata.generation = 3; // the spec was edited since
    expect(planNamespace(inputs({ webhooks: [gone] })).webhooks.get("a-hook")?.reason).toBe("Active");
  });

  it("holds an auto-paused webhook in the routing (autoPaused) as Ready=False/EndpointUnhealthy, until resumed", () => {
    const reported = planNamespace(inputs({ autoPaused: new Set(["a-hook"]) }));
    expect(reported.webhooks.get("a-hook")).toMatchObject({ status: "False", reason: "EndpointUnhealthy" });
    expect(reported.webhooks.get("a-hook")?.message).toContain("webhooks.dataforce.io/resume=<token>");
    expect(
      reported.routing.action === "write" &&
        reported.routing.routing.webhooks.map((w) => [w.name, w.autoPaused]),
    ).toEqual([
      ["a-hook", true],
      ["b-hook", false],
    ]);
    expect(reported.integration?.activeWebhooks).toBe(1);

    // the integration reconciler learns it from the webhook's status, for the generation it has
    const paused = webhook("a-hook");
    paused.metadata.generation = 2;
    paused.status = {
      conditions: [
        {
          type: "Ready",
          status: "False",
          reason: "EndpointUnhealthy",
          message: "",
          observedGeneration: 2,
          lastTransitionTime: "2026-01-01T00:00:00Z",
        },
      ],
      lastResumeToken: "t1",
    };
    const routeOf = (w: Webhook) => {
      const plan = planNamespace(inputs({ webhooks: [w] }));
      return plan.routing.action === "write" ? plan.routing.routing.webhooks[0]?.autoPaused : undefined;
    };
    expect(routeOf(paused)).toBe(true);
    paused.metadata.annotations = { "webhooks.dataforce.io/resume": "t1" }; // handled already
    expect(routeOf(paused)).toBe(true);
    paused.metadata.annotations = { "webhooks.dataforce.io/resume": "t2" }; // a new request
    expect(routeOf(paused)).toBe(false);
    paused.metadata.annotations = {};
    paused.metadata.generation = 3; // the spec was edited since
    expect(routeOf(paused)).toBe(false);
  });

  it("reports a webhook whose spec does not validate and leaves it out", () => {
    const compiled = planNamespace(inputs({ webhooks: [webhook("a-hook", { event: "nope.nope" })] }));
    expect(compiled.webhooks.get("a-hook")).toMatchObject({ status: "False", reason: "InvalidSpec" });
    expect(compiled.routing.action === "write" && compiled.routing.routing.webhooks).toEqual([]);
  });

  it("carries a webhook's filter into its route", () => {
    const filter = "event.data.amount > 100.0";
    const compiled = planNamespace(inputs({ webhooks: [webhook("a-hook", { filter })] }));
    expect(compiled.webhooks.get("a-hook")).toMatchObject({ status: "True", reason: "Active" });
    expect(compiled.routing.action === "write" && compiled.routing.routing.webhooks).toEqual([
      expect.objectContaining({ name: "a-hook", filter }),
    ]);
  });

  it("reports a filter that does not compile with the compiler's message, and leaves the webhook out", () => {
    const compiled = planNamespace(
      inputs({
        webhooks: [
          webhook("a-hook", { filter: "event.data.amount >" }),
          webhook("b-hook", { filter: "x == 1" }),
        ],
      }),
    );
    expect(compiled.webhooks.get("a-hook")).toEqual({
      status: "False",
      reason: "InvalidFilter",
      message: expect.stringMatching(/^spec\.filter: syntax error: at 1:\d+: /),
    });
    expect(compiled.webhooks.get("b-hook")).toEqual({
      status: "False",
      reason: "InvalidFilter",
      message:
        "spec.filter: undeclared reference to 'x': a filter reads only 'event' (event.type, event.data.…)",
    });
    expect(compiled.routing.action === "write" && compiled.routing.routing.webhooks).toEqual([]);
    expect(standingOf(WEBHOOK_STANDING, "InvalidFilter")).toBe("Stalled");
  });

  it("deletes the routing of a disabled integration whose signing secret cannot be resolved", () => {
    // A kept (enabled) document would go on delivering while the webhooks say IntegrationDisabled.
    for (const secrets of [new Map(), new Map([["webhook-signing-secret", { secret: "nope" }]])]) {
      const compiled = planNamespace(inputs({ integration: integration({ enabled: false }), secrets }));
      expect(compiled.routing).toEqual({ action: "delete" });
      expect(compiled.webhooks.get("a-hook")).toMatchObject({
        status: "True",
        reason: "IntegrationDisabled",
      });
    }
  });

  it("deletes the routing of a disabled integration whose spec does not validate", () => {
    const compiled = planNamespace(
      inputs({ integration: integration({ enabled: false, delivery: { maxAttempts: 99 } }) }),
    );
    expect(compiled.routing).toEqual({ action: "delete" });
    expect(compiled.integration?.ready).toMatchObject({ status: "False", reason: "InvalidSpec" });
  });

  it("keeps an enabled routing on an invalid spec, without deleted, paused or gone webhooks", () => {
    const gone = webhook("c-hook");
    gone.status = {
      conditions: [
        {
          type: "Ready",
          status: "False",
          reason: "EndpointGone",
          message: "",
          lastTransitionTime: "2024-01-01T00:00:00Z",
          observedGeneration: 1,
        },
      ],
    } as Webhook["status"];
    const deleting = webhook("d-hook");
    deleting.metadata.deletionTimestamp = "2024-01-01T00:00:00Z";
    const compiled = planNamespace(
      inputs({
        integration: integration({ delivery: { maxAttempts: 99 } }),
        webhooks: [webhook("a-hook"), webhook("b-hook", { paused: true }), gone, deleting],
      }),
    );
    expect(compiled.routing).toEqual({ action: "keep", retain: new Map([["a-hook", "a-hook-uid"]]) });
  });
});

describe("a webhook's verdict", () => {
  // The webhook reconciler plans each webhook alone (O(1) per webhook, not O(n)): that is only
  // right while no verdict depends on another webhook of the namespace.
  it("is the same planned alone as planned with every other webhook of the namespace", () => {
    const variety = [
      webhook("active"),
      webhook("paused", { paused: true }),
      webhook("plain", { url: "http://127.0.0.1:8080/hook" }),
      webhook("invalid", { event: "nope.nope" }),
      webhook("gone"),
      webhook("with-secret", {
        headers: [{ name: "Authorization", valueFrom: { secretKeyRef: { name: "crm", key: "auth" } } }],
      }),
      webhook("missing-secret", {
        headers: [{ name: "Authorization", valueFrom: { secretKeyRef: { name: "nope", key: "auth" } } }],
      }),
      webhook("unlabelled", {
        headers: [{ name: "Authorization", valueFrom: { secretKeyRef: { name: "db", key: "pw" } } }],
      }),
      webhook("twin", { url: "https://active.example/hook" }), // the same URL and event as another
    ];
    const secrets = new Map<string, Record<string, string>>([
      ["webhook-signing-secret", { secret: SECRET }],
      ["crm", { auth: "Bearer t0k3n" }],
    ]);
    const integrations = [
      integration(),
      integration({ enabled: false }),
      integration({ destinationPolicy: { allowPlainHTTP: true } }),
      integration({ delivery: { maxAttempts: "many" } }),
      undefined,
    ];
    for (const [i, candidate] of integrations.entries()) {
      for (const signing of [secrets, new Map()]) {
        const shared = {
          integration: candidate,
          secrets: signing,
          endpointGone: new Set(["gone"]),
          unlabelledSecrets: new Set(["db"]),
        };
        const together = planNamespace(inputs({ ...shared, webhooks: variety }));
        for (const hook of variety) {
          const alone = planNamespace(inputs({ ...shared, webhooks: [hook] }));
          expect({ i, name: hook.metadata.name, verdict: alone.webhooks.get(hook.metadata.name) }).toEqual({
            i,
            name: hook.metadata.name,
            verdict: together.webhooks.get(hook.metadata.name),
          });
        }
      }
    }
  });
});

describe("the status model's standings", () => {
  it("Ready=True exactly for the Ready standing, whatever the inputs", () => {
    const cases: NamespaceInputs[] = [
      inputs(),
      inputs({ integration: integration({ enabled: false }) }),
      inputs({ integration: undefined }),
      inputs({
        webhooks: [webhook("a-hook", { paused: true }), webhook("b-hook", { url: "http://x.example/" })],
      }),
      inputs({ endpointGone: new Set(["a-hook"]) }),
      inputs({ webhooks: [webhook("a-hook", { event: "nope.nope" })] }),
      inputs({ webhooks: [webhook("a-hook", { filter: "nope(" })] }),
      inputs({ secrets: new Map() }),
      inputs({ secrets: new Map([["webhook-signing-secret", { secret: "nope" }]]) }),
      inputs({ integration: integration({ delivery: { maxAttempts: 99 } }) }),
      inputs({
        integration: integration({ signingSecretRef: { name: "mine", key: "k" } }),
        unlabelledSecrets: new Set(["mine"]),
      }),
    ];
    const seen = new Set<string>();
    for (const input of cases) {
      const plan = planNamespace(input);
      for (const verdict of plan.webhooks.values()) {
        seen.add(`Webhook/${verdict.reason}`);
        expect(verdict.status === "True", verdict.reason).toBe(
          standingOf(WEBHOOK_STANDING, verdict.reason) === "Ready",
        );
      }
      const ready = plan.integration?.ready;
      if (!ready) continue;
      seen.add(`WebhookIntegration/${ready.reason}`);
      expect(ready.status === "True", ready.reason).toBe(
        standingOf(INTEGRATION_STANDING, ready.reason) === "Ready",
      );
    }
    expect(seen.size).toBeGreaterThanOrEqual(12);
  });

  it("reads a reason it does not know as Stalled: someone has to look", () => {
    expect(standingOf(WEBHOOK_STANDING, "Paused")).toBe("Ready");
    expect(standingOf(WEBHOOK_STANDING, "SomethingNew")).toBe("Stalled");
    expect(standingOf(WEBHOOK_STANDING, "toString")).toBe("Stalled");
  });
});
