// The status model (README "Status model") against the real tools. Every row of the README's table
// is reached by a real object on the run's API server, and what kstatus concludes (the Go library
// Flux runs, via test/kstatus), what the chart's Argo CD Lua concludes and what `kubectl wait` does
// must be what the row says. Then: no GitOps drift after reconcile.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { SECRET_USAGE_LABEL, SECRET_USAGE_VALUE } from "../../operator/api/v1alpha1/index.ts";
import { argoHealth } from "../chart/argocd-lua.ts";
import { applyYaml, createTestNamespace, kubectl, type TestNamespace } from "../env/kubectl.ts";
import { kstatus } from "../support/kstatus.ts";
import { type Receiver, startReceiver } from "../support/receiver.ts";
import { type E2eWorld, repo, setupWorld } from "./harness.ts";
import { eventually, getJson, integrationYaml, listEvents, routingLive, webhookYaml } from "./k8s.ts";

/** OPERATOR_DEPENDENCY_GRACE_MS of this file's operator: long enough to see Reconciling, short to wait for Stalled. */
const GRACE_MS = 8_000;

type Kind = "Webhook" | "WebhookIntegration" | "WebhookEvent" | "WebhookReplay";
const RESOURCE: Record<Kind, string> = {
  Webhook: "webhook",
  WebhookIntegration: "webhookintegration",
  WebhookEvent: "webhookevent",
  WebhookReplay: "webhookreplay",
};

/** One row of the README's status model table. */
interface Row {
  key: string;
  kind: Kind;
  state: string;
  /** The Ready condition: absent, or its status and the reasons the row allows. */
  ready?: { status: string; reasons: string[] };
  reconciling: boolean;
  stalled: boolean;
  kstatus: string;
  argo: string;
  waitReturns: boolean;
  /** Rows marked † are not reachable here (unit-tested). */
  e2e: boolean;
}

async function readStatusModel(): Promise<Map<string, Row>> {
  const readme = await readFile(join(repo, "README.md"), "utf8");
  const start = readme.indexOf("### Status model");
  const section = readme.slice(start, readme.indexOf("\n## ", start));
  const rows = new Map<string, Row>();
  for (const line of section.split("\n")) {
    if (!/^\| Webhook/.test(line)) continue;
    const cells = line
      .split("|")
      .slice(1, -1)
      .map((cell) => cell.trim());
    const [kind, rawState, ready, reconciling, stalled, kstatusCell, argo, wait] = cells as [
      Kind,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const ticks = [...ready.matchAll(/`([^`]*)`/g)].map((m) => m[1] ?? "");
    const state = rawState.replace(/\s*†$/, "");
    rows.set(`${kind}: ${state}`, {
      key: `${kind}: ${state}`,
      kind,
      state,
      ...(ready.startsWith("–") ? {} : { ready: { status: ticks[0] ?? "", reasons: ticks.slice(1) } }),
      reconciling: reconciling === "`True`",
      stalled: stalled === "`True`",
      kstatus: kstatusCell,
      argo,
      waitReturns: wait.startsWith("returns"),
      e2e: !rawState.endsWith("†"),
    });
  }
  return rows;
}

interface StatusObject {
  kind: string;
  metadata: { name: string; generation?: number };
  status?: {
    observedGeneration?: number;
    conditions?: Array<{ type: string; status: string; reason: string; observedGeneration?: number }>;
  };
}

let world: E2eWorld;
let receiver: Receiver;
let unwatched: TestNamespace;
let table: Map<string, Row>;
/** `<row key>/<Ready reason>` of every row (and reason) asserted on a live object. */
const asserted = new Set<string>();

beforeAll(async () => {
  table = await readStatusModel();
  world = await setupWorld("status-model", [
    "states",
    "disabled",
    "lonely",
    "squat",
    "signing",
    "queued",
    "replays",
    "unhealthy",
  ]);
  // Not among the operator's namespaces: what an object looks like before the operator sees it.
  unwatched = await createTestNamespace("status-model-unwatched");
  receiver = await startReceiver();
  receiver.on("/failing", { kind: "respond", status: 500, body: "down" });
  receiver.on("/queued", { kind: "respond", status: 500, body: "down" });
  receiver.on("/gone", { kind: "respond", status: 410, body: "gone" });
  receiver.on("/replay-down", { kind: "respond", status: 500, body: "down" });
  receiver.on("/unhealthy", { kind: "respond", status: 503, body: "down" });
  // One operator, no lease to lose: this file tests status, not failover (a loaded machine's slow
  // lease renewals would stop the controllers mid-walk).
  await world.startOperator("op-status", {
    OPERATOR_DEPENDENCY_GRACE_MS: String(GRACE_MS),
    OPERATOR_LEADER_ELECTION: "false",
    // endpoint health read every 500 ms (auto-pause within seconds of autoPause.after)
    OPERATOR_HEALTH_POLL_MS: "500",
  });
});

beforeEach(({ onTestFailed }) => onTestFailed(() => world.printLogs()));

afterAll(async () => {
  await receiver?.close();
  await unwatched?.delete();
  await world?.teardown();
});

/** The object's conditions say what `row` says (throws until they do). */
function expectConditions(object: StatusObject, row: Row, reason: string | undefined): void {
  const conditions = object.status?.conditions ?? [];
  const find = (type: string) => conditions.find((c) => c.type === type);
  const generation = object.metadata.generation ?? 1;
  if (row.state.includes("not yet")) expect(object.status?.observedGeneration ?? 0).toBeLessThan(generation);
  else expect(object.status?.observedGeneration).toBe(generation);
  const ready = find("Ready");
  if (!row.ready) expect(ready).toBeUndefined();
  else {
    expect(ready?.status).toBe(row.ready.status);
    expect(row.ready.reasons).toContain(ready?.reason);
    if (reason) expect(ready?.reason).toBe(reason);
  }
  for (const [type, holds] of [
    ["Reconciling", row.reconciling],
    ["Stalled", row.stalled],
  ] as const) {
    if (holds) expect(find(type)).toMatchObject({ status: "True", reason: ready?.reason });
    else expect(find(type)?.status).not.toBe("True");
  }
}

/**
 * Waits until the object is in the row's state, then asserts kstatus's verdict, the Argo CD
 * health check's, `kubectl wait` and the READY / REASON columns of `kubectl get`.
 */
async function expectRow(
  key: string,
  ns: string,
  name: string,
  options: { reason?: string; timeoutMs?: number } = {},
): Promise<StatusObject> {
  const row = table.get(key);
  if (!row) throw new Error(`the README's status model has no row "${key}"`);
  const resource = RESOURCE[row.kind];
  const object = await eventually(
    async () => {
      const object = await getJson<StatusObject>(["get", resource, name, "-n", ns]);
      expectConditions(object, row, options.reason);
      return object;
    },
    options.timeoutMs ?? 30_000,
    400,
  );
  const [verdict] = await kstatus(object);
  expect(verdict?.status, `kstatus on ${key}: ${verdict?.message}`).toBe(row.kstatus);
  expect(argoHealth(object).status, `Argo CD on ${key}`).toBe(row.argo);

  const wait = await kubectl(
    [
      "wait",
      "--for=condition=Ready",
      `${resource}/${name}`,
      "-n",
      ns,
      `--timeout=${row.waitReturns ? 10 : 1}s`,
    ],
    { allowFailure: true },
  );
  expect(wait.code === 0, `kubectl wait --for=condition=Ready on ${key}: ${wait.stderr}`).toBe(
    row.waitReturns,
  );
  if (row.stalled) {
    const stalled = await kubectl(
      ["wait", "--for=condition=Stalled", `${resource}/${name}`, "-n", ns, "--timeout=10s"],
      { allowFailure: true },
    );
    expect(stalled.code, `kubectl wait --for=condition=Stalled on ${key}: ${stalled.stderr}`).toBe(0);
  }
  const ready = object.status?.conditions?.find((c) => c.type === "Ready");
  if (row.kind !== "WebhookEvent" && ready) {
    // What a person sees: READY and REASON still tell paused from broken.
    const table = (await kubectl(["get", resource, name, "-n", ns])).stdout;
    expect(table).toMatch(new RegExp(`\\s${ready.status}\\s+${ready.reason}\\s`));
  }
  asserted.add(`${key}/${ready?.reason ?? ""}`);
  return object;
}

/** The "states" namespace as a team would keep it in Git (applied with plain `kubectl apply -f`). */
function statesManifest(ns: string): string {
  const secretHeader = {
    headers: [{ name: "Authorization", valueFrom: { secretKeyRef: { name: "late-auth", key: "token" } } }],
  };
  return [
    integrationYaml(ns, { maxAttempts: 1 }),
    webhookYaml(ns, "active", "job.created", receiver.url("/active")),
    webhookYaml(ns, "paused", "appointment.completed", receiver.url("/paused"), { paused: true }),
    webhookYaml(ns, "failing", "job.updated", receiver.url("/failing")),
    webhookYaml(ns, "gone", "payment.received", receiver.url("/gone")),
    webhookYaml(ns, "secret", "payment.refunded", receiver.url("/secret"), secretHeader),
    // The API server's URL check (CEL) takes any port; the operator's (WHATWG URL) refuses one
    // past 65535: the one spec that reaches the operator and is invalid there.
    webhookYaml(ns, "invalid", "submission_batch.created", "https://receiver.example:99999/hook"),
    // a filter the API server stores (it is a string) and the operator's CEL compiler refuses
    webhookYaml(ns, "badfilter", "submission_batch.deleted", receiver.url("/badfilter"), {
      filter: "event.data.count >",
    }),
  ].join("---\n");
}

function secretYaml(ns: string, name: string, data: Record<string, string>, labelled: boolean): string {
  return stringify({
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name,
      namespace: ns,
      ...(labelled ? { labels: { [SECRET_USAGE_LABEL]: SECRET_USAGE_VALUE } } : {}),
    },
    stringData: data,
  });
}

const label = (ns: string, secret: string) =>
  kubectl(["label", "secret", secret, "-n", ns, `${SECRET_USAGE_LABEL}=${SECRET_USAGE_VALUE}`]);

/** The WebhookEvent of the only delivery to `webhook` (waits for it). */
async function deliveryOf(ns: string, webhook: string): Promise<string> {
  return eventually(
    async () => {
      const [event] = await listEvents(ns, `webhooks.dataforce.io/webhook=${webhook}`);
      expect(event).toBeDefined();
      return event?.metadata.name ?? "";
    },
    30_000,
    300,
  );
}

describe("test/kstatus (kstatus's verdicts from the Go library)", () => {
  it("reads one object or a kubectl list, answers in order, and refuses what is not JSON", async () => {
    const webhook = (name: string, status?: Record<string, unknown>) => ({
      apiVersion: "webhooks.dataforce.io/v1alpha1",
      kind: "Webhook",
      metadata: { name, namespace: "acme", generation: 2 },
      ...(status ? { status } : {}),
    });
    const stalled = {
      observedGeneration: 2,
      conditions: [{ type: "Stalled", status: "True", reason: "InvalidSpec", message: "bad url" }],
    };
    expect(await kstatus(webhook("a", stalled))).toEqual([
      expect.objectContaining({
        kind: "Webhook",
        namespace: "acme",
        name: "a",
        status: "Failed",
        message: "bad url",
      }),
    ]);
    const verdicts = await kstatus({
      apiVersion: "v1",
      kind: "List",
      items: [webhook("behind", { observedGeneration: 1 }), webhook("bare")],
    });
    expect(verdicts.map((v) => [v.name, v.status])).toEqual([
      ["behind", "InProgress"],
      ["bare", "Current"], // why the CRDs default status.observedGeneration to 0
    ]);
    await expect(kstatus("not an object")).rejects.toThrow(/kstatus exited with 1/);
  });
});

describe("the status model", () => {
  it("every state reads the same to kstatus, Argo CD and kubectl wait as the README's table says", async () => {
    const states = world.namespaces.states!;

    const webhookStates = () =>
      Promise.all([
        expectRow("WebhookIntegration: enabled", states, "default"),
        expectRow("Webhook: delivering", states, "active"),
        expectRow("Webhook: paused", states, "paused"),
        expectRow("Webhook: invalid spec", states, "invalid"),
        expectRow("Webhook: invalid filter (does not compile)", states, "badfilter"),
      ]);

    const deliveries = async () => {
      await routingLive(world, states, (r) =>
        ["active", "failing", "gone"].every((name) => r?.webhooks.some((w) => w.name === name)),
      );
      for (const [type, id] of [
        ["job.created", "sm-sent"],
        ["job.updated", "sm-failed"],
        ["payment.received", "sm-gone"],
      ] as const) {
        await world.dispatcher.publish({ type, namespace: states, id, data: { id } });
      }
      await Promise.all([
        expectRow("WebhookEvent: SENT", states, await deliveryOf(states, "active")),
        expectRow("WebhookEvent: FAILED", states, await deliveryOf(states, "failing")),
        expectRow("Webhook: endpoint gone (410)", states, "gone"),
      ]);
    };

    // A header Secret: missing, then created without the consent label, then labelled.
    const headerSecret = async () => {
      const waiting = "Webhook: waiting for a Secret or its label";
      const stalled = "Webhook: Secret or label still missing after the grace period";
      await expectRow(waiting, states, "secret", { reason: "SecretNotFound" });
      await expectRow(stalled, states, "secret", { reason: "SecretNotFound" });
      await applyYaml(secretYaml(states, "late-auth", { token: "Bearer late" }, false));
      // nothing wakes on an unlabelled Secret: the webhook's re-check (10 s) finds it
      await expectRow(waiting, states, "secret", { reason: "SecretNotLabelled", timeoutMs: 30_000 });
      await expectRow(stalled, states, "secret", { reason: "SecretNotLabelled" });
      await label(states, "late-auth");
      await expectRow("Webhook: delivering", states, "secret");
    };

    const disabled = async () => {
      const ns = world.namespaces.disabled!;
      await applyYaml(
        `${integrationYaml(ns, { enabled: false })}---\n${webhookYaml(ns, "idle", "job.created", receiver.url("/idle"))}`,
      );
      await Promise.all([
        expectRow("WebhookIntegration: disabled", ns, "default"),
        expectRow("Webhook: integration disabled", ns, "idle"),
      ]);
    };

    // No integration yet, then one that refuses plain http.
    const lonely = async () => {
      const ns = world.namespaces.lonely!;
      await applyYaml(webhookYaml(ns, "plain", "job.created", receiver.url("/plain")));
      await expectRow("Webhook: waiting for its integration", ns, "plain");
      await expectRow("Webhook: integration still missing after the grace period", ns, "plain");
      await applyYaml(
        stringify({
          apiVersion: "webhooks.dataforce.io/v1alpha1",
          kind: "WebhookIntegration",
          metadata: { name: "default", namespace: ns },
          spec: { enabled: true, destinationPolicy: { allowPlainHTTP: false } },
        }),
      );
      await expectRow("Webhook: insecure URL", ns, "plain");
    };

    // A Secret the operator did not create squats the generated signing secret's name.
    const squat = async () => {
      const ns = world.namespaces.squat!;
      await applyYaml(secretYaml(ns, "webhook-signing-secret", { secret: "mine" }, false));
      await applyYaml(
        `${integrationYaml(ns)}---\n${webhookYaml(ns, "crm", "job.created", receiver.url("/squat"))}`,
      );
      await Promise.all([
        expectRow("WebhookIntegration: waiting for the generated signing secret", ns, "default"),
        expectRow("Webhook: waiting for the generated signing secret", ns, "crm"),
      ]);
      await Promise.all([
        expectRow(
          "WebhookIntegration: generated signing secret still missing after the grace period",
          ns,
          "default",
        ),
        expectRow("Webhook: generated signing secret still missing after the grace period", ns, "crm"),
      ]);
      await kubectl(["delete", "secret", "webhook-signing-secret", "-n", ns]);
      await expectRow("WebhookIntegration: enabled", ns, "default", { timeoutMs: 40_000 });
      await expectRow("Webhook: delivering", ns, "crm", { timeoutMs: 40_000 });
    };

    // A referenced signing Secret: missing, unlabelled, then labelled but not a signing key.
    const signing = async () => {
      const ns = world.namespaces.signing!;
      await applyYaml(
        stringify({
          apiVersion: "webhooks.dataforce.io/v1alpha1",
          kind: "WebhookIntegration",
          metadata: { name: "default", namespace: ns },
          spec: { enabled: true, signingSecretRef: { name: "team-signing", key: "secret" } },
        }),
      );
      const waiting = "WebhookIntegration: waiting for its signing Secret or its label";
      const stalled = "WebhookIntegration: signing Secret or label still missing after the grace period";
      await expectRow(waiting, ns, "default", { reason: "SecretNotFound" });
      await expectRow(stalled, ns, "default", { reason: "SecretNotFound" });
      await applyYaml(secretYaml(ns, "team-signing", { secret: "not-a-signing-key" }, false));
      await expectRow(waiting, ns, "default", { reason: "SecretNotLabelled", timeoutMs: 30_000 });
      await expectRow(stalled, ns, "default", { reason: "SecretNotLabelled" });
      await label(ns, "team-signing");
      await expectRow("WebhookIntegration: invalid signing secret", ns, "default");
    };

    // A delivery that waits an hour for its second attempt.
    const queued = async () => {
      const ns = world.namespaces.queued!;
      await applyYaml(
        `${stringify({
          apiVersion: "webhooks.dataforce.io/v1alpha1",
          kind: "WebhookIntegration",
          metadata: { name: "default", namespace: ns },
          spec: {
            enabled: true,
            delivery: { maxAttempts: 3, timeout: "2s", backoff: { initialDelay: "1h", maxDelay: "1h" } },
            destinationPolicy: { allowPlainHTTP: true },
          },
        })}---\n${webhookYaml(ns, "slow", "job.created", receiver.url("/queued"))}`,
      );
      await routingLive(world, ns, (r) => r?.webhooks.length === 1);
      await world.dispatcher.publish({ type: "job.created", namespace: ns, id: "sm-queued", data: {} });
      await receiver.waitForRequests(1, "/queued");
      await expectRow(
        "WebhookEvent: QUEUED (attempts under way, or retried)",
        ns,
        await deliveryOf(ns, "slow"),
      );
    };

    // A replay of ten FAILED deliveries at one a second: Replaying for about ten seconds, then Complete.
    const replays = async () => {
      const ns = world.namespaces.replays!;
      await applyYaml(
        // ten FAILED deliveries in a row: the circuit breaker (on by default) would hold them QUEUED
        `${integrationYaml(ns, { maxAttempts: 1, mirror: "None", circuitBreaker: { consecutiveFailures: 0 } })}---\n${webhookYaml(ns, "down", "job.created", receiver.url("/replay-down"))}`,
      );
      await routingLive(world, ns, (r) => r?.webhooks.length === 1);
      for (let i = 0; i < 10; i++) {
        await world.dispatcher.publish({
          type: "job.created",
          namespace: ns,
          id: `sm-replay-${i}`,
          data: {},
        });
      }
      await receiver.waitForRequests(10, "/replay-down");
      await new Promise((resolve) => setTimeout(resolve, 500)); // the FAILED outcomes recorded
      await applyYaml(
        stringify({
          apiVersion: "webhooks.dataforce.io/v1alpha1",
          kind: "WebhookReplay",
          metadata: { name: "slow", namespace: ns },
          spec: { from: new Date(Date.now() - 3_600_000).toISOString(), maxPerSecond: 1 },
        }),
      );
      await expectRow("WebhookReplay: replaying", ns, "slow");
      await expectRow("WebhookReplay: complete", ns, "slow", { timeoutMs: 40_000 });
      // to a webhook that does not exist: it waits for it
      await applyYaml(
        stringify({
          apiVersion: "webhooks.dataforce.io/v1alpha1",
          kind: "WebhookReplay",
          metadata: { name: "to-nowhere", namespace: ns },
          spec: { from: new Date(Date.now() - 3_600_000).toISOString(), targetWebhook: "not-there" },
        }),
      );
      await expectRow("WebhookReplay: waiting for its target webhook", ns, "to-nowhere");
    };

    // An endpoint that fails for longer than the integration's autoPause.after (2 s here).
    const unhealthy = async () => {
      const ns = world.namespaces.unhealthy!;
      await applyYaml(
        `${integrationYaml(ns, { autoPauseAfter: "2s", circuitBreaker: { consecutiveFailures: 2, cooldown: "500ms", maxCooldown: "1s" } })}---\n${webhookYaml(ns, "dead", "job.created", receiver.url("/unhealthy"))}`,
      );
      await routingLive(world, ns, (r) => r?.webhooks.length === 1);
      for (const id of ["sm-dead-1", "sm-dead-2", "sm-dead-3"]) {
        await world.dispatcher.publish({ type: "job.created", namespace: ns, id, data: {} });
      }
      await expectRow("Webhook: auto-paused (endpoint unhealthy)", ns, "dead", { timeoutMs: 60_000 });
    };

    // Before the operator has seen an object, and after a spec change it has not seen yet.
    const notObserved = async () => {
      const ns = unwatched.name;
      await applyYaml(
        `${integrationYaml(ns)}---\n${webhookYaml(ns, "crm", "job.created", "https://crm.example/a")}`,
      );
      await expectRow("WebhookIntegration: created, not yet seen by the operator", ns, "default");
      await expectRow("Webhook: created, not yet seen by the operator", ns, "crm");
      await applyYaml(
        stringify({
          apiVersion: "webhooks.dataforce.io/v1alpha1",
          kind: "WebhookReplay",
          metadata: { name: "unseen", namespace: ns },
          spec: { from: "2026-01-01T00:00:00Z" },
        }),
      );
      await expectRow("WebhookReplay: created, not yet seen by the operator", ns, "unseen");
      // what an operator would have written for generation 1…
      const status = {
        observedGeneration: 1,
        conditions: [
          {
            type: "Ready",
            status: "True",
            reason: "Active",
            message: "delivering job.created events",
            observedGeneration: 1,
            lastTransitionTime: "2026-01-01T00:00:00Z",
          },
        ],
      };
      await kubectl([
        "patch",
        "webhook",
        "crm",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        JSON.stringify({ status }),
      ]);
      await expectRow("Webhook: delivering", ns, "crm"); // (kstatus and Argo CD agree on it too)
      // …and a new URL it has not looked at yet
      await applyYaml(webhookYaml(ns, "crm", "job.created", "https://crm.example/b"));
      await expectRow("Webhook: spec changed, not yet observed", ns, "crm");
    };

    await applyYaml(statesManifest(states), { serverSide: false });
    await Promise.all([
      webhookStates(),
      // the replay's deliveries after the others': no extra load while those must be SENT in time
      deliveries().then(replays),
      headerSecret(),
      disabled(),
      lonely(),
      squat(),
      signing(),
      queued(),
      unhealthy(),
      notObserved(),
    ]);
  }, 240_000);

  it("walked every row of the README's table, and every reason a row names", () => {
    expect(table.size).toBeGreaterThanOrEqual(30);
    const expected = [...table.values()]
      .filter((row) => row.e2e)
      .flatMap((row) => (row.ready ? row.ready.reasons : [""]).map((reason) => `${row.key}/${reason}`));
    expect(expected.filter((key) => !asserted.has(key))).toEqual([]);
  });

  it("no drift: after reconcile kubectl diff shows nothing, and a GitOps field manager's server-side apply never conflicts", async () => {
    const ns = world.namespaces.states!;
    const manifest = statesManifest(ns);
    const diff = await kubectl(["diff", "-f", "-"], { input: manifest, allowFailure: true });
    expect(diff.code, `kubectl diff: ${diff.stdout}${diff.stderr}`).toBe(0);
    expect(diff.stdout).toBe("");

    // Flux applies server-side as its own field manager, without forcing conflicts.
    const generations = async () =>
      (
        await getJson<{ items: Array<{ metadata: { name: string; generation: number } }> }>([
          "get",
          "webhookintegrations,webhooks",
          "-n",
          ns,
        ])
      ).items.map((o) => `${o.metadata.name}@${o.metadata.generation}`);
    const before = await generations();
    const flux = ["--server-side", "--field-manager=flux"];
    const applied = await kubectl(["apply", ...flux, "-f", "-"], { input: manifest, allowFailure: true });
    expect(applied.code, applied.stderr).toBe(0);
    expect(await generations()).toEqual(before); // the same spec: nothing changed
    const ssaDiff = await kubectl(["diff", ...flux, "-f", "-"], { input: manifest, allowFailure: true });
    expect(ssaDiff.code, `kubectl diff --server-side: ${ssaDiff.stdout}${ssaDiff.stderr}`).toBe(0);

    // The operator's own writes are status only: no field of the spec or metadata is its.
    const objects = (
      await getJson<{
        items: Array<{
          kind: string;
          metadata: {
            name: string;
            managedFields?: Array<{ manager: string; operation: string; subresource?: string }>;
          };
        }>;
      }>(["get", "webhookintegrations,webhooks", "-n", ns, "--show-managed-fields"])
    ).items;
    expect(objects).toHaveLength(8);
    for (const object of objects) {
      const managers = object.metadata.managedFields ?? [];
      // kubectl hands client-side apply's fields over to the server-side manager
      const mainResource = managers.filter((m) => m.subresource !== "status").map((m) => m.manager);
      expect(mainResource, `${object.kind}/${object.metadata.name}`).toContain("flux");
      expect(
        mainResource.filter((m) => m !== "flux" && m !== "kubectl-client-side-apply"),
        `${object.kind}/${object.metadata.name}`,
      ).toEqual([]);
      expect(managers.some((m) => m.subresource === "status")).toBe(true);
    }
  });
});
