// The Helm chart against the run's real kube-apiserver: lint, render with default and "full"
// values, server-side dry-run of every rendered object (strict field validation, restricted
// Pod Security warnings on), the values schema, the security settings, and the RBAC rules.
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { keyspace } from "../../contract/keys.ts";
import { redisAclRules } from "../../contract/redis-acl.ts";
import { applyYaml, createTestNamespace, kubectl } from "../env/kubectl.ts";
import { startRedis } from "../env/redis.ts";
import {
  chartDir,
  fullValuesFile,
  helm,
  helmBin,
  type K8sObject,
  parseManifests,
  podSpecOf,
  renderChart,
  renderChartText,
  repoRoot,
  templateArgs,
} from "./helm.ts";

/** Stands for a CloudNativePG `<cluster>-app` Secret's `uri`. */
const SAMPLE_POSTGRES_URL = "postgresql://app:secret@dfw-log-rw.dataforce-system:5432/app";

/** Stands for the chart's generated encryption key Secret. */
const SAMPLE_ENCRYPTION_KEY = "k1:dGVzdC1lbmNyeXB0aW9uLWtleS1vZi0zMi1ieXRlcyE=";

import { operatorRbacManifests, operatorRbacRules } from "./operator-rbac.ts";

const VARIANTS = [
  { name: "default values", valuesFiles: [] as string[] },
  { name: "full values (every optional feature on)", valuesFiles: [fullValuesFile] },
] as const;

const CRD_NAMES = [
  "webhookintegrations.webhooks.dataforce.io",
  "webhooks.webhooks.dataforce.io",
  "webhookevents.webhooks.dataforce.io",
  "servicemonitors.monitoring.coreos.com",
  "prometheusrules.monitoring.coreos.com",
];

/** A namespace where the API server warns about anything the restricted Pod Security level forbids. */
async function restrictedNamespace(prefix: string) {
  const ns = await createTestNamespace(prefix);
  await kubectl([
    "label",
    "namespace",
    ns.name,
    "pod-security.kubernetes.io/enforce=restricted",
    "pod-security.kubernetes.io/warn=restricted",
  ]);
  return ns;
}

/**
 * `kubectl apply --server-side --dry-run=server --validate=strict` of a manifest stream (YAML or
 * JSON): unknown or misplaced fields are errors. Server-side apply, as Helm 4 installs; forcing
 * conflicts because other tests of the run apply the same cluster-wide admission policy.
 */
function dryRun(manifests: string, namespace: string) {
  return kubectl(
    [
      "apply",
      "--server-side",
      "--force-conflicts",
      "--field-manager=helm",
      "--dry-run=server",
      "--validate=strict",
      "-n",
      namespace,
      "-f",
      "-",
    ],
    { input: manifests, allowFailure: true },
  );
}

beforeAll(async () => {
  await helmBin(); // built once per machine (minutes) when `make helm` has not run
  await kubectl(["apply", "--server-side", "-f", join(chartDir, "crds")]);
  await kubectl([
    "apply",
    "--server-side",
    "-f",
    join(import.meta.dirname, "fixtures", "monitoring-crds.yaml"),
  ]);
  await kubectl([
    "wait",
    "--for=condition=Established",
    "--timeout=60s",
    ...CRD_NAMES.map((n) => `crd/${n}`),
  ]);
}, 900_000);

describe("helm lint", () => {
  it.each(VARIANTS)("passes with $name", async ({ valuesFiles }) => {
    const args = ["lint", chartDir, "--strict", ...valuesFiles.flatMap((f) => ["--values", f])];
    const result = await helm(args);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain("1 chart(s) linted, 0 chart(s) failed");
  });
});

describe("the API server's own check of restricted Pod Security", () => {
  it("is live: a privileged Deployment draws a warning", async () => {
    const ns = await restrictedNamespace("chart-pss-probe");
    const bad: K8sObject = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "privileged" },
      spec: {
        selector: { matchLabels: { app: "x" } },
        template: {
          metadata: { labels: { app: "x" } },
          spec: { containers: [{ name: "x", image: "x", securityContext: { privileged: true } }] },
        },
      },
    };
    const result = await dryRun(JSON.stringify(bad), ns.name);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/would violate PodSecurity "restricted/);
    await ns.delete();
  });
});

describe("strict server-side validation", () => {
  it("is live: a misplaced field is refused", async () => {
    const ns = await createTestNamespace("chart-strict-probe");
    const typo = { apiVersion: "v1", kind: "Service", metadata: { name: "typo" }, spec: { port: [] } };
    const result = await dryRun(JSON.stringify(typo), ns.name);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/unknown field "spec\.port"|\.spec\.port: field not declared in schema/);
    await ns.delete();
  });
});

describe.each(VARIANTS)("the chart rendered with $name", ({ valuesFiles }) => {
  let ns: { name: string; delete(): Promise<void> };
  let objects: K8sObject[];
  let rendered: string;
  const ofKind = (kind: string) => objects.filter((o) => o.kind === kind);
  const one = (kind: string, nameSuffix = "") => {
    const found = ofKind(kind).filter((o) => o.metadata.name.endsWith(nameSuffix));
    expect(found, `${kind} *${nameSuffix}`).toHaveLength(1);
    return found[0] as K8sObject;
  };

  beforeAll(async () => {
    ns = await restrictedNamespace("chart");
    ({ text: rendered, objects } = await renderChartText({ namespace: ns.name, valuesFiles }));
    return () => ns.delete();
  });

  it("is accepted object by object by the API server (server-side dry-run, strict fields, no warnings)", async () => {
    // helm's output as is (what `helm install` sends), but for the admission policy: it is
    // cluster-wide with a fixed name, and other tests of the run apply it too (a server-side
    // apply would merge their field values), so it is checked below under a name of its own.
    const isPolicy = (doc: string) => /^kind: ValidatingAdmissionPolicy(Binding)?$/m.test(doc);
    // RoleBindings in the watched namespaces (full values) are checked in the test namespace:
    // those namespaces do not exist in this API server
    const intoTestNamespace = (doc: string) =>
      /^kind: RoleBinding$/m.test(doc) ? doc.replace(/^ {2}namespace: .*$/m, `  namespace: ${ns.name}`) : doc;
    const docs = rendered
      .split(/^---$/m)
      .filter((doc) => doc.trim() !== "")
      .map(intoTestNamespace);
    const result = await dryRun(docs.filter((doc) => !isPolicy(doc)).join("---"), ns.name);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr.trim(), "warnings (Pod Security, deprecations, unknown fields)").toBe("");
    const accepted = result.stdout.trim().split("\n");
    const policies = objects.filter((o) => o.kind.startsWith("ValidatingAdmissionPolicy"));
    expect(accepted).toHaveLength(objects.length - policies.length);
    for (const line of accepted) expect(line).toMatch(/ \(server dry run\)$/);

    expect(policies.map((o) => o.kind).sort()).toEqual([
      "ValidatingAdmissionPolicy",
      "ValidatingAdmissionPolicyBinding",
    ]);
    const name = `${ns.name}-destination-policy`;
    for (const policy of policies) {
      policy.metadata.name = name;
      if (policy.kind === "ValidatingAdmissionPolicyBinding") policy.spec.policyName = name;
    }
    const policyResult = await dryRun(
      JSON.stringify({ apiVersion: "v1", kind: "List", items: policies }),
      ns.name,
    );
    expect(policyResult.code, policyResult.stderr).toBe(0);
    expect(policyResult.stderr.trim()).toBe("");
    expect(policyResult.stdout.trim().split("\n")).toHaveLength(2);
  });

  it("runs every container under the restricted Pod Security settings", () => {
    const workloads = objects.filter((o) => podSpecOf(o) !== undefined);
    expect(workloads.length).toBeGreaterThanOrEqual(2);
    for (const workload of workloads) {
      const pod = podSpecOf(workload);
      const where = `${workload.kind}/${workload.metadata.name}`;
      expect(pod.securityContext, where).toMatchObject({
        runAsNonRoot: true,
        seccompProfile: { type: "RuntimeDefault" },
      });
      const containers = [...(pod.initContainers ?? []), ...pod.containers];
      for (const container of containers) {
        expect(container.securityContext, `${where} ${container.name}`).toMatchObject({
          runAsNonRoot: true,
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ["ALL"] },
          seccompProfile: { type: "RuntimeDefault" },
        });
        expect(container.securityContext.privileged ?? false).toBe(false);
        expect(container.resources?.requests, `${where} ${container.name} requests`).toBeDefined();
        expect(container.resources?.limits?.memory, `${where} ${container.name} memory limit`).toBeDefined();
      }
    }
  });

  it("probes /healthz and /readyz on the operator and the dispatcher", () => {
    for (const name of ["-operator", "-dispatcher"]) {
      const [container] = one("Deployment", name).spec.template.spec.containers;
      expect(container.livenessProbe.httpGet.path).toBe("/healthz");
      expect(container.readinessProbe.httpGet.path).toBe("/readyz");
      expect(container.startupProbe.httpGet.path).toBe("/healthz");
    }
  });

  it("grants the operator exactly the rules of files/operator-rbac-rules.yaml", () => {
    const rules = operatorRbacRules();
    expect(one("ClusterRole").rules).toEqual(rules.clusterRole);
    expect(one("Role").rules).toEqual(rules.leaderElectionRole);
    const operatorSa = one("Deployment", "-operator").spec.template.spec.serviceAccountName;
    for (const binding of [...ofKind("ClusterRoleBinding"), ...ofKind("RoleBinding")]) {
      expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: operatorSa, namespace: ns.name }]);
    }
    // cluster-wide, or (watchNamespaces) bound in exactly the watched namespaces
    const watched = (
      one("Deployment", "-operator").spec.template.spec.containers[0].env as Array<{
        name: string;
        value?: string;
      }>
    ).find((e) => e.name === "OPERATOR_WATCH_NAMESPACES")?.value;
    const namespacedBindings = ofKind("RoleBinding").filter((b) => b.roleRef.kind === "ClusterRole");
    if (watched) {
      expect(ofKind("ClusterRoleBinding")).toEqual([]);
      expect(namespacedBindings.map((b) => b.metadata.namespace).sort()).toEqual(watched.split(",").sort());
    } else {
      expect(ofKind("ClusterRoleBinding")).toHaveLength(1);
      expect(namespacedBindings).toEqual([]);
    }
    expect(one("Role").metadata.namespace).toBe(ns.name);
    // The data plane needs no Kubernetes API access at all.
    const dispatcherPod = one("Deployment", "-dispatcher").spec.template.spec;
    expect(dispatcherPod.automountServiceAccountToken).toBe(false);
    expect(dispatcherPod.serviceAccountName).not.toBe(operatorSa);
  });

  it("runs the operator with leader election and the dispatcher behind a PodDisruptionBudget", () => {
    const operator = one("Deployment", "-operator");
    expect(operator.spec.replicas).toBeGreaterThanOrEqual(2);
    const env = Object.fromEntries(
      operator.spec.template.spec.containers[0].env.map((e: { name: string; value?: string }) => [
        e.name,
        e.value,
      ]),
    );
    expect(env.OPERATOR_LEADER_ELECTION).toBe("true");
    expect(env.OPERATOR_LEASE_NAMESPACE).toBe(ns.name);
    const pdb = one("PodDisruptionBudget", "-dispatcher");
    expect(pdb.spec.selector.matchLabels).toEqual(one("Deployment", "-dispatcher").spec.selector.matchLabels);
  });

  it("gives operator and dispatcher the same Redis URL and key tag", () => {
    const envOf = (suffix: string) =>
      one("Deployment", suffix).spec.template.spec.containers[0].env as Array<{
        name: string;
        value?: string;
        valueFrom?: unknown;
      }>;
    const pick = (suffix: string, prefix: string) => {
      const env = envOf(suffix);
      return {
        url: env.find((e) => e.name === `${prefix}_REDIS_URL`)?.valueFrom,
        tag: env.find((e) => e.name === `${prefix}_KEY_TAG`)?.value,
      };
    };
    const dispatcher = pick("-dispatcher", "DISPATCHER");
    expect(dispatcher.url).toBeDefined();
    expect(dispatcher.tag).toBeDefined();
    expect(pick("-operator", "OPERATOR")).toEqual(dispatcher);
  });

  it("configures the dispatcher with settings its own loader accepts", async (ctx) => {
    const configModule = join(repoRoot, "dispatcher", "config.ts");
    if (!existsSync(configModule)) ctx.skip("dispatcher/config.ts does not exist yet");
    const { ENVIRONMENT, loadSettings } = (await import(pathToFileURL(configModule).href)) as {
      ENVIRONMENT: Record<string, string>;
      loadSettings(env: Record<string, string>): Record<string, unknown>;
    };
    const known = new Set(Object.values(ENVIRONMENT));
    const container = one("Deployment", "-dispatcher").spec.template.spec.containers[0];
    const env: Record<string, string> = {};
    for (const entry of container.env as Array<{ name: string; value?: string; valueFrom?: unknown }>) {
      expect(known, `the chart sets ${entry.name}, which dispatcher/config.ts does not read`).toContain(
        entry.name,
      );
      // Secret references stand for 48-character tokens, the Redis and Postgres URLs and an encryption key.
      env[entry.name] =
        entry.value ??
        (entry.name.endsWith("_REDIS_URL")
          ? "redis://redis.example:6379/0"
          : entry.name.endsWith("_POSTGRES_URL")
            ? SAMPLE_POSTGRES_URL
            : entry.name.endsWith("_ENCRYPTION_KEYS")
              ? SAMPLE_ENCRYPTION_KEY
              : "t".repeat(48));
    }
    const settings = loadSettings(env);
    expect(settings.port).toBe(container.ports[0].containerPort);
    // the durable log store only when its Secret is named (the full values do: 2 h, 30 days)
    expect(settings.postgresUrl).toBe(valuesFiles.length > 0 ? SAMPLE_POSTGRES_URL : undefined);
    if (valuesFiles.length > 0)
      expect(settings).toMatchObject({ archiveHotWindowMs: 7_200_000, archiveRetentionDays: 30 });
    // a cluster-wide ingest token only when asked for (the full values do)
    expect(settings.ingestTokens).toEqual(valuesFiles.length > 0 ? ["t".repeat(48)] : []);
    // The dispatcher gives up in-flight work before the kubelet's SIGKILL.
    const grace = one("Deployment", "-dispatcher").spec.template.spec.terminationGracePeriodSeconds;
    expect(settings.shutdownGraceMs as number).toBeLessThan(grace * 1000);
  });

  it("configures the operator with settings its own loader accepts", async (ctx) => {
    const configModule = join(repoRoot, "operator", "config.ts");
    if (!existsSync(configModule)) ctx.skip("operator/config.ts does not exist yet");
    const { ENVIRONMENT, loadSettings } = (await import(pathToFileURL(configModule).href)) as {
      ENVIRONMENT: Record<string, string>;
      loadSettings(env: Record<string, string>): Record<string, unknown>;
    };
    const known = new Set(Object.values(ENVIRONMENT));
    const deployment = one("Deployment", "-operator");
    const container = deployment.spec.template.spec.containers[0];
    const env: Record<string, string> = {};
    type EnvVar = { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } };
    for (const entry of container.env as EnvVar[]) {
      if (entry.name === "NODE_OPTIONS") continue; // extraEnv of the full values
      expect(known, `the chart sets ${entry.name}, which operator/config.ts does not read`).toContain(
        entry.name,
      );
      const field = entry.valueFrom?.fieldRef?.fieldPath;
      env[entry.name] =
        entry.value ??
        (entry.name.endsWith("_ENCRYPTION_KEYS")
          ? SAMPLE_ENCRYPTION_KEY
          : field === "metadata.name"
            ? "dfw-operator-7d9f-abcde"
            : field === "metadata.namespace"
              ? ns.name
              : "redis://redis.example:6379/0");
    }
    const settings = loadSettings(env);
    expect(settings.port).toBe(container.ports[0].containerPort);
    expect(settings.identity).toBe("dfw-operator-7d9f-abcde"); // the Lease holder: the Pod
    expect(settings.leaseNamespace).toBe(ns.name);
    expect(settings.leaderElection).toBe(true);
    expect(settings.shutdownGraceMs as number).toBeLessThan(
      deployment.spec.template.spec.terminationGracePeriodSeconds * 1000,
    );
  });
});

describe("values.schema.json", () => {
  it.each([
    { set: "operator.replicas=two", error: "/operator/replicas" },
    { set: "dispatcher.port=70000", error: "/dispatcher/port" },
    { set: "image.pullPolicy=Sometimes", error: "/image/pullPolicy" },
    { set: "dispatcher.replica=3", error: "replica" },
    { set: "redis.url=http://redis:6379", error: "/redis/url" },
    { set: "dispatcher.logLevel=verbose", error: "/dispatcher/logLevel" },
    { set: "dispatcher.terminationGracePeriodSeconds=5", error: "/dispatcher/terminationGracePeriodSeconds" },
    { set: "admissionPolicy.validationActions={Block}", error: "/admissionPolicy/validationActions" },
    { set: "admissionPolicy.validationActions={Deny,Warn}", error: "/admissionPolicy/validationActions" },
    { set: "redis.sentinel.hosts={sentinel-0}", error: "/redis/sentinel/hosts/0" },
  ])("refuses $set", async ({ set }) => {
    const result = await helm([...templateArgs({ namespace: "x" }), "--set", set]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/values don't meet the specifications of the schema|schema/i);
  });

  it("names the offending value in the error", async () => {
    const result = await helm([...templateArgs({ namespace: "x" }), "--set", "operator.replicas=two"]);
    expect(result.stderr).toContain("/operator/replicas");
    expect(result.stderr).toMatch(/want integer/);
  });
});

describe("secrets", () => {
  it("generates the API tokens unless an existing Secret is named; a cluster-wide ingest token only when asked", async () => {
    const tokensOf = async (set: Record<string, string>) =>
      (await renderChart({ namespace: "x", set })).find(
        (o) => o.kind === "Secret" && o.metadata.name.endsWith("-api-tokens"),
      );
    expect(Object.keys((await tokensOf({}))?.data ?? {})).toEqual(["admin-token"]);
    const secret = await tokensOf({ "apiTokens.clusterIngestToken": "true" });
    expect(Object.keys(secret?.data ?? {}).sort()).toEqual(["admin-token", "ingest-token"]);
    for (const value of Object.values(secret?.data as Record<string, string>)) {
      expect(Buffer.from(value, "base64").toString()).toMatch(/^[A-Za-z0-9]{48}$/);
    }
    const existing = await renderChart({
      namespace: "x",
      set: { "apiTokens.existingSecret": "mine", "apiTokens.clusterIngestToken": "true" },
    });
    expect(
      existing.find((o) => o.kind === "Secret" && o.metadata.name.endsWith("-api-tokens")),
    ).toBeUndefined();
    const dispatcher = existing.find(
      (o) => o.kind === "Deployment" && o.metadata.name.endsWith("-dispatcher"),
    );
    const refs = dispatcher?.spec.template.spec.containers[0].env
      .filter((e: { valueFrom?: { secretKeyRef?: unknown } }) => e.valueFrom?.secretKeyRef)
      .map((e: { valueFrom: { secretKeyRef: { name: string } } }) => e.valueFrom.secretKeyRef.name);
    expect(refs).toContain("mine");
  });

  it("takes the Redis URL from an existing Secret, the embedded Redis, or redis.url, in that order", async () => {
    const urlOf = (objects: K8sObject[]) =>
      objects.find((o) => o.kind === "Secret" && o.metadata.name.endsWith("-redis-url"))?.stringData?.url;
    expect(urlOf(await renderChart({ namespace: "x", set: { "redis.url": "rediss://u:p@r:6380/1" } }))).toBe(
      "rediss://u:p@r:6380/1",
    );
    expect(urlOf(await renderChart({ namespace: "x", set: { "redis.embedded.enabled": "true" } }))).toBe(
      "redis://dfw-dataforce-webhooks-redis.x.svc:6379/0",
    );
    const fromSecret = await renderChart({ namespace: "x", set: { "redis.existingSecret": "redis-creds" } });
    expect(urlOf(fromSecret)).toBeUndefined();
    expect(JSON.stringify(fromSecret)).toContain('"name":"redis-creds"');
  });
});

describe("Redis users", () => {
  const tag = "chart-acl";
  const envOf = (objects: K8sObject[], component: string) => {
    const deployment = objects.find(
      (o) => o.kind === "Deployment" && o.metadata.name.endsWith(`-${component}`),
    );
    const env = deployment?.spec.template.spec.containers[0].env as Array<{
      name: string;
      value?: string;
      valueFrom?: unknown;
    }>;
    return Object.fromEntries(env.map((e) => [e.name, e.value ?? e.valueFrom]));
  };

  it("gives the embedded Redis one ACL user per process with the contract's rules, and those users work", async () => {
    const objects = await renderChart({
      namespace: "x",
      set: { "redis.embedded.enabled": "true", "redis.keyTag": tag },
    });
    const secret = objects.find((o) => o.kind === "Secret" && o.metadata.name.endsWith("-redis-auth"));
    const data = Object.fromEntries(
      Object.entries(secret?.data as Record<string, string>).map(([k, v]) => [
        k,
        Buffer.from(v, "base64").toString(),
      ]),
    );
    const lines = data["users.acl"]!.trim().split("\n");
    expect(lines[0]).toBe("user default off");
    for (const [role, line] of [
      ["operator", lines[1]],
      ["dispatcher", lines[2]],
    ] as const) {
      const hash = createHash("sha256").update(data[`${role}-password`]!).digest("hex");
      expect(line).toBe(`user dataforce-${role} on #${hash} ${redisAclRules(role, tag).join(" ")}`);
      expect(envOf(objects, role)[`${role.toUpperCase()}_REDIS_USERNAME`]).toBe(`dataforce-${role}`);
      expect(envOf(objects, role)[`${role.toUpperCase()}_REDIS_PASSWORD`]).toEqual({
        secretKeyRef: { name: secret?.metadata.name, key: `${role}-password` },
      });
    }

    // the rendered ACL file, loaded by a real redis-server (the test keeps a default user of its own)
    const redis = await startRedis({ aclUsers: lines.slice(1) });
    const as = (role: "operator" | "dispatcher") =>
      redis.connect({
        username: `dataforce-${role}`,
        password: data[`${role}-password`],
        maxRetriesPerRequest: 0,
      });
    const [operator, dispatcher] = [as("operator"), as("dispatcher")];
    try {
      const keys = keyspace(tag);
      await operator.hset(keys.routing, "team-a", "{}");
      await expect(dispatcher.hget(keys.routing, "team-a")).resolves.toBe("{}");
      await expect(dispatcher.hset(keys.routing, "team-a", "{}")).rejects.toThrow(/NOPERM/);
      await dispatcher.xadd(keys.events, "*", "type", "job.created");
      await expect(dispatcher.flushall()).rejects.toThrow(/NOPERM/);
    } finally {
      operator.disconnect();
      dispatcher.disconnect();
      await redis.stop();
    }
  });

  it("takes the passwords from redis.auth.existingSecret for an external Redis, and mounts its CA", async () => {
    const objects = await renderChart({
      namespace: "x",
      set: { "redis.auth.existingSecret": "redis-users", "redis.tls.caSecret": "redis-ca" },
    });
    expect(
      objects.find((o) => o.kind === "Secret" && o.metadata.name.endsWith("-redis-auth")),
    ).toBeUndefined();
    for (const role of ["operator", "dispatcher"] as const) {
      const env = envOf(objects, role);
      const prefix = role.toUpperCase();
      expect(env[`${prefix}_REDIS_PASSWORD`]).toEqual({
        secretKeyRef: { name: "redis-users", key: `${role}-password` },
      });
      expect(env[`${prefix}_REDIS_TLS_CA_FILE`]).toBe("/etc/dataforce/redis-ca/ca.crt");
    }
    const plain = await renderChart({ namespace: "x", set: { "redis.url": "redis://r:6379" } });
    expect(Object.keys(envOf(plain, "dispatcher"))).not.toContain("DISPATCHER_REDIS_PASSWORD");
  });
});

describe("Redis Sentinel", () => {
  const sentinelValues = {
    "redis.sentinel.hosts": "{redis-sentinel-0.redis-sentinel:26379,[fd00::10]:26380}",
    "redis.sentinel.masterName": "primary",
    "redis.sentinel.passwordSecret": "sentinel-auth",
  };
  type EnvVar = { name: string; value?: string; valueFrom?: { secretKeyRef?: unknown; fieldRef?: unknown } };
  const containerOf = (objects: K8sObject[], component: string) =>
    objects.find((o) => o.kind === "Deployment" && o.metadata.name.endsWith(`-${component}`))?.spec.template
      .spec.containers[0];

  it("gives both processes the Sentinels, the primary's name and the Sentinels' password, as their loaders read them", async () => {
    const objects = await renderChart({ namespace: "x", set: sentinelValues });
    for (const component of ["dispatcher", "operator"] as const) {
      const prefix = component.toUpperCase();
      const env = containerOf(objects, component).env as EnvVar[];
      const byName = Object.fromEntries(env.map((e) => [e.name, e.value ?? e.valueFrom]));
      expect(byName[`${prefix}_REDIS_SENTINELS`]).toBe(
        "redis-sentinel-0.redis-sentinel:26379,[fd00::10]:26380",
      );
      expect(byName[`${prefix}_REDIS_SENTINEL_MASTER`]).toBe("primary");
      expect(byName[`${prefix}_REDIS_SENTINEL_PASSWORD`]).toEqual({
        secretKeyRef: { name: "sentinel-auth", key: "sentinel-password" },
      });
      // the process's own loader, on the rendered environment (Secrets and fields stand in)
      const { loadSettings } = (await import(pathToFileURL(join(repoRoot, component, "config.ts")).href)) as {
        loadSettings(env: Record<string, string>): Record<string, unknown>;
      };
      const values: Record<string, string> = {};
      for (const entry of env) {
        values[entry.name] =
          entry.value ??
          (entry.name.endsWith("_REDIS_URL")
            ? "redis://ignored-with-sentinel:6379/0"
            : entry.name.endsWith("_ENCRYPTION_KEYS")
              ? SAMPLE_ENCRYPTION_KEY
              : entry.valueFrom?.fieldRef
                ? "dfw-x"
                : "s".repeat(48));
      }
      expect(loadSettings(values)).toMatchObject({
        redisSentinels: [
          { host: "redis-sentinel-0.redis-sentinel", port: 26379 },
          { host: "fd00::10", port: 26380 },
        ],
        redisSentinelMaster: "primary",
        redisSentinelPassword: "s".repeat(48),
      });
    }
    // without Sentinel, none of it
    const plain = await renderChart({ namespace: "x" });
    expect(JSON.stringify(containerOf(plain, "dispatcher").env)).not.toContain("SENTINEL");
  });

  it("lets the dispatcher reach the Sentinels' ports through its NetworkPolicy, accepted by the API server", async () => {
    const objects = await renderChart({ namespace: "x", set: sentinelValues });
    const policy = objects.find((o) => o.kind === "NetworkPolicy" && o.metadata.name.endsWith("-dispatcher"));
    const egress = (policy?.spec.egress ?? []) as Array<{ ports: Array<{ port: number }> }>;
    const redisRule = egress.find((rule) => rule.ports.some((p) => p.port === 6379));
    expect(redisRule?.ports.map((p) => p.port)).toEqual([6379, 26379, 26380]);
    const ns = await restrictedNamespace("chart-sentinel");
    try {
      const workloads = objects.filter((o) => o.kind === "NetworkPolicy" || o.kind === "Deployment");
      for (const object of workloads) object.metadata.namespace = ns.name;
      const result = await dryRun(
        JSON.stringify({ apiVersion: "v1", kind: "List", items: workloads }),
        ns.name,
      );
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr.trim(), "warnings").toBe("");
    } finally {
      await ns.delete();
    }
  });

  it("refuses Sentinel with the embedded Redis, saying why", async () => {
    const result = await helm([
      ...templateArgs({ namespace: "x", set: { ...sentinelValues, "redis.embedded.enabled": "true" } }),
    ]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("redis.sentinel.hosts cannot be used with redis.embedded.enabled");
  });
});

describe("NetworkPolicies", () => {
  type Peer = {
    podSelector?: { matchLabels: Record<string, string> };
    ipBlock?: { cidr: string; except?: string[] };
  };
  type Rule = { from?: Peer[]; to?: Peer[]; ports?: Array<{ port: number }> };
  const policy = (objects: Awaited<ReturnType<typeof renderChart>>, suffix: string) =>
    objects.find((o) => o.kind === "NetworkPolicy" && o.metadata.name.endsWith(suffix)) as unknown as {
      spec: { policyTypes: string[]; ingress: Rule[]; egress?: Rule[] };
    };

  it("are on by default: Redis only from the two processes; the dispatcher never egresses to internal ranges unless allowed", async () => {
    const objects = await renderChart({
      namespace: "x",
      set: { "redis.embedded.enabled": "true", "dispatcher.allowedDestinations": "{10.96.0.0/12}" },
    });
    const redis = policy(objects, "-redis");
    const components = redis.spec.ingress[0]!.from!.map(
      (p) => p.podSelector?.matchLabels["app.kubernetes.io/component"],
    );
    expect(components.sort()).toEqual(["dispatcher", "operator"]);
    expect(redis.spec.ingress[0]!.ports).toEqual([{ port: 6379, protocol: "TCP" }]);

    const dispatcher = policy(objects, "-dispatcher");
    expect(dispatcher.spec.policyTypes).toEqual(["Ingress", "Egress"]);
    const internet = dispatcher.spec.egress!.find((rule) =>
      rule.to?.some((p) => p.ipBlock?.cidr === "0.0.0.0/0"),
    )!;
    const v4 = internet.to!.find((p) => p.ipBlock?.cidr === "0.0.0.0/0")!.ipBlock!.except;
    expect(v4).toEqual(
      expect.arrayContaining(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]),
    );
    expect(internet.to!.find((p) => p.ipBlock?.cidr === "::/0")!.ipBlock!.except).toEqual(
      expect.arrayContaining(["fc00::/7", "fe80::/10"]),
    );
    // the SSRF allowlist opens the same ranges in the network policy, and nothing else does
    expect(internet.to!.map((p) => p.ipBlock?.cidr)).toEqual(["0.0.0.0/0", "::/0", "10.96.0.0/12"]);
    const redisEgress = dispatcher.spec.egress!.find((rule) => rule.ports?.[0]?.port === 6379)!;
    expect(redisEgress.to![0]!.podSelector?.matchLabels["app.kubernetes.io/component"]).toBe("redis");
  });

  it("can be turned off", async () => {
    const objects = await renderChart({ namespace: "x", set: { "networkPolicy.enabled": "false" } });
    expect(objects.filter((o) => o.kind === "NetworkPolicy")).toEqual([]);
  });
});

describe("the durable log store (postgres.dsnSecret)", () => {
  type EnvVar = { name: string; value?: string; valueFrom?: { secretKeyRef?: unknown } };
  const dispatcherEnv = (objects: K8sObject[]) => {
    const deployment = objects.find(
      (o) => o.kind === "Deployment" && o.metadata.name.endsWith("-dispatcher"),
    );
    const env = (deployment?.spec.template.spec.containers[0].env ?? []) as EnvVar[];
    return Object.fromEntries(env.map((e) => [e.name, e.value ?? e.valueFrom]));
  };
  const egressPorts = (objects: K8sObject[]) =>
    (
      (objects.find((o) => o.kind === "NetworkPolicy" && o.metadata.name.endsWith("-dispatcher"))?.spec
        .egress ?? []) as Array<{ to?: unknown[]; ports?: Array<{ port: number }> }>
    ).filter((rule) => (rule.ports ?? []).some((p) => p.port === 5432));

  it("takes the DSN from the named Secret (CloudNativePG's <cluster>-app, key uri) and lets the dispatcher reach Postgres", async () => {
    const objects = await renderChart({ namespace: "x", set: { "postgres.dsnSecret.name": "dfw-log-app" } });
    const env = dispatcherEnv(objects);
    expect(env.DISPATCHER_POSTGRES_URL).toEqual({ secretKeyRef: { name: "dfw-log-app", key: "uri" } });
    // the dispatcher's defaults (1 h hot window, 90 days) unless set
    expect(env.DISPATCHER_ARCHIVE_HOT_WINDOW_MS).toBeUndefined();
    expect(env.DISPATCHER_ARCHIVE_RETENTION_DAYS).toBeUndefined();
    const rules = egressPorts(objects);
    expect(rules).toHaveLength(1);
    expect(rules[0]!.to).toEqual([{ ipBlock: { cidr: "0.0.0.0/0" } }]);
    // never the DSN itself in a rendered object
    expect(JSON.stringify(objects)).not.toContain("postgres://");
  });

  it("is off by default: no DSN, no egress to Postgres", async () => {
    const objects = await renderChart({ namespace: "x" });
    expect(dispatcherEnv(objects).DISPATCHER_POSTGRES_URL).toBeUndefined();
    expect(egressPorts(objects)).toEqual([]);
  });

  it("narrows the egress to networkPolicy.postgresEgress (the full values: the CloudNativePG cluster's pods)", async () => {
    const objects = await renderChart({ namespace: "x", valuesFiles: [fullValuesFile] });
    expect(egressPorts(objects)[0]!.to).toEqual([
      { podSelector: { matchLabels: { "cnpg.io/cluster": "dfw-log" } } },
    ]);
    expect(dispatcherEnv(objects)).toMatchObject({
      DISPATCHER_ARCHIVE_HOT_WINDOW_MS: "7200000",
      DISPATCHER_ARCHIVE_RETENTION_DAYS: "30",
    });
  });
});

describe("the operator's RBAC in a live API server", () => {
  // The same rules the chart renders, bound to a ServiceAccount: what the operator may and may not do.
  it("allows what the operator does and nothing more", async () => {
    const ns = await createTestNamespace("chart-rbac");
    const rbac = operatorRbacManifests({ namespace: ns.name });
    await applyYaml(rbac.yaml);
    const canI = async (verb: string, resource: string, namespace = "some-tenant") => {
      const [plural, subresource] = resource.split("/");
      const args = ["auth", "can-i", verb, plural as string, "-n", namespace, "--as", rbac.user];
      if (subresource) args.push(`--subresource=${subresource}`);
      const result = await kubectl(args, { allowFailure: true });
      return result.stdout.trim();
    };
    const allowed: Array<[string, string, string?]> = [
      ["watch", "webhooks.webhooks.dataforce.io"],
      ["list", "webhookintegrations.webhooks.dataforce.io"],
      ["patch", "webhooks.webhooks.dataforce.io/status"],
      ["patch", "webhookintegrations.webhooks.dataforce.io/status"],
      ["create", "webhookevents.webhooks.dataforce.io"],
      ["delete", "webhookevents.webhooks.dataforce.io"],
      ["create", "secrets"],
      ["watch", "secrets"],
      ["create", "events.events.k8s.io"],
      ["update", "leases.coordination.k8s.io", ns.name],
    ];
    const denied: Array<[string, string, string?]> = [
      ["update", "webhooks.webhooks.dataforce.io"], // never the spec of user objects (GitOps)
      ["update", "webhookevents.webhooks.dataforce.io/status"], // merge patches only
      ["patch", "webhookintegrations.webhooks.dataforce.io"],
      ["delete", "webhooks.webhooks.dataforce.io"],
      ["delete", "secrets"],
      ["update", "secrets"],
      ["get", "configmaps"],
      ["create", "pods"],
      ["update", "leases.coordination.k8s.io"], // only in its own namespace
      ["create", "customresourcedefinitions.apiextensions.k8s.io"],
    ];
    for (const [verb, resource, namespace] of allowed) {
      expect(await canI(verb, resource, namespace), `${verb} ${resource}`).toBe("yes");
    }
    for (const [verb, resource, namespace] of denied) {
      expect(await canI(verb, resource, namespace), `${verb} ${resource}`).toBe("no");
    }
    await kubectl(["delete", "-f", "-", "--ignore-not-found"], { input: rbac.yaml });
    await ns.delete();
  });
});

describe("the kind workflow's demo manifest (test/kind/demo.yaml)", () => {
  it("is accepted by the API server with the real CRDs (server-side dry-run, strict, restricted)", async () => {
    const ns = await restrictedNamespace("chart-kind-demo");
    const text = readFileSync(join(repoRoot, "test", "kind", "demo.yaml"), "utf8");
    const objects = parseManifests(text).filter((o) => o.kind !== "Namespace");
    expect(objects.map((o) => o.kind).sort()).toEqual([
      "Deployment",
      "Service",
      "Webhook",
      "WebhookIntegration",
    ]);
    for (const object of objects) object.metadata.namespace = ns.name;
    const result = await dryRun(JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }), ns.name);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr.trim()).toBe("");
    expect(result.stdout.trim().split("\n")).toHaveLength(objects.length);
    await ns.delete();
  });
});

// The PrometheusRule's alerts run on promtool, and their metric names and labels are checked against
// the code, in test/chart/alerts.test.ts.
describe("the Argo CD health ConfigMap", () => {
  it("carries the Argo CD health check verbatim when argocd.healthChecks.enabled", async () => {
    const objects = await renderChart({ namespace: "x", set: { "argocd.healthChecks.enabled": "true" } });
    const configMap = objects.find(
      (o) => o.kind === "ConfigMap" && o.metadata.name.endsWith("-argocd-health"),
    );
    const lua = readFileSync(join(chartDir, "files", "argocd-health.lua"), "utf8");
    expect(Object.keys(configMap?.data ?? {}).sort()).toEqual([
      "resource.customizations.health.webhooks.dataforce.io_Webhook",
      "resource.customizations.health.webhooks.dataforce.io_WebhookEvent",
      "resource.customizations.health.webhooks.dataforce.io_WebhookIntegration",
      "resource.customizations.health.webhooks.dataforce.io_WebhookReplay",
    ]);
    for (const value of Object.values(configMap?.data as Record<string, string>)) {
      expect(value.trim()).toBe(lua.trim());
    }
  });
});
