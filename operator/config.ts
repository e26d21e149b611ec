import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { z } from "zod";
import { RedisConnectionFields, redisEnvironment } from "../common/redis-connection.ts";
import { settingsFromEnvironment } from "../common/settings/environment.ts";
import { MAX_PARTITIONS } from "../contract/partitions.ts";
import { encryptionKeysSetting } from "../contract/secret-box.ts";
import { DEFAULT_DEPENDENCY_GRACE_MS } from "./reconcilers/namespace-inputs.ts";

// The operator's settings, from environment variables (the chart's templates/_env.tpl
// sets them). Durations are milliseconds. The Kubernetes connection comes from
// KUBECONFIG or, in a Pod, the mounted ServiceAccount (client-node's loadFromDefault).

/** Every setting, with the environment variable it comes from. */
export const ENVIRONMENT = {
  ...redisEnvironment("OPERATOR"),
  keyTag: "OPERATOR_KEY_TAG",
  partitions: "OPERATOR_PARTITIONS",
  encryptionKeys: "OPERATOR_ENCRYPTION_KEYS",
  host: "OPERATOR_HOST",
  port: "OPERATOR_PORT",
  logLevel: "OPERATOR_LOG_LEVEL",
  identity: "POD_NAME",
  watchNamespaces: "OPERATOR_WATCH_NAMESPACES",
  podNamespace: "POD_NAMESPACE",
  leaderElection: "OPERATOR_LEADER_ELECTION",
  leaseNamespace: "OPERATOR_LEASE_NAMESPACE",
  leaseName: "OPERATOR_LEASE_NAME",
  leaseDurationMs: "OPERATOR_LEASE_DURATION_MS",
  renewDeadlineMs: "OPERATOR_RENEW_DEADLINE_MS",
  retryPeriodMs: "OPERATOR_RETRY_PERIOD_MS",
  apiQps: "OPERATOR_API_QPS",
  apiBurst: "OPERATOR_API_BURST",
  mirrorWorkers: "OPERATOR_MIRROR_WORKERS",
  reconcileWorkers: "OPERATOR_RECONCILE_WORKERS",
  retentionIntervalMs: "OPERATOR_RETENTION_INTERVAL_MS",
  mirrorRecheckIntervalMs: "OPERATOR_MIRROR_RECHECK_INTERVAL_MS",
  resyncPeriodMs: "OPERATOR_RESYNC_PERIOD_MS",
  signingSecretName: "OPERATOR_SIGNING_SECRET_NAME",
  shutdownGraceMs: "OPERATOR_SHUTDOWN_GRACE_MS",
  dependencyGraceMs: "OPERATOR_DEPENDENCY_GRACE_MS",
  healthPollMs: "OPERATOR_HEALTH_POLL_MS",
} as const;

const milliseconds = z.coerce.number().int().min(1);
const boolean = z.enum(["true", "false", "1", "0"]).transform((value) => value === "true" || value === "1");

export const SettingsSchema = z
  .object({
    ...RedisConnectionFields,
    /** The hash tag of every Redis key: `{<keyTag>}:…`; the dispatchers use the same. */
    keyTag: z.string().default("dataforce"),
    /** Partitions of the keyspace (contract/partitions.ts); the dispatchers use the same count. */
    partitions: z.coerce.number().int().min(1).max(MAX_PARTITIONS).default(1),
    /** `id:base64(32 bytes)[,…]`: the first seals the routing's secrets in Redis; the dispatchers open them. */
    encryptionKeys: encryptionKeysSetting(),
    host: z.string().default("0.0.0.0"),
    /** Port of /metrics, /healthz and /readyz. */
    port: z.coerce.number().int().min(0).max(65_535).default(8081),
    logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    /** Unique per process: the Lease holder, the status stream reader, the Events' reportingInstance. */
    identity: z.string().min(1).optional(),
    podNamespace: z.string().min(1).optional(),
    /** Comma-separated namespaces to watch; every namespace when empty. */
    watchNamespaces: z
      .string()
      .transform((value) =>
        value
          .split(",")
          .map((item) => item.trim())
          .filter((item) => item !== ""),
      )
      .default([]),
    leaderElection: boolean.default(true),
    /** Namespace of the Lease: the Pod's own by default. */
    leaseNamespace: z.string().min(1).optional(),
    leaseName: z.string().min(1).default("dataforce-webhooks-operator"),
    leaseDurationMs: milliseconds.default(15_000),
    renewDeadlineMs: milliseconds.default(10_000),
    retryPeriodMs: milliseconds.default(2_000),
    /** Rate limit of WebhookEvent writes (mirror, retry, retention): sustained per second… */
    apiQps: z.coerce.number().positive().default(20),
    /** …and at once after a quiet period. */
    apiBurst: z.coerce.number().int().min(1).default(40),
    mirrorWorkers: z.coerce.number().int().min(1).max(64).default(4),
    reconcileWorkers: z.coerce.number().int().min(1).max(64).default(2),
    retentionIntervalMs: milliseconds.default(60_000),
    /** How often WebhookEvents QUEUED for longer than this are checked against Redis (a vanished record shows as Lost). */
    mirrorRecheckIntervalMs: milliseconds.default(60_000),
    /** Full re-list of every watched resource (a safety net under the watches). */
    resyncPeriodMs: milliseconds.default(600_000),
    /** The Secret the operator generates (key `secret`) when an integration references none. */
    signingSecretName: z.string().min(1).default("webhook-signing-secret"),
    /** After SIGTERM: how long in-flight work may take before the process exits anyway. */
    shutdownGraceMs: milliseconds.default(10_000),
    /**
     * How long a Webhook or WebhookIntegration waits (Reconciling) for a missing Secret or
     * integration before it is reported Stalled, which GitOps tools read as failed.
     */
    dependencyGraceMs: milliseconds.default(DEFAULT_DEPENDENCY_GRACE_MS),
    /**
     * How often the leader reads the dispatchers' endpoint health; a webhook's status.health is
     * written at once on a new state, otherwise at most every 6 polls.
     */
    healthPollMs: milliseconds.default(5_000),
  })
  .refine((s) => s.leaseDurationMs > s.renewDeadlineMs && s.renewDeadlineMs > s.retryPeriodMs, {
    message: "need leaseDuration > renewDeadline > retryPeriod",
    path: ["leaseDurationMs"],
  })
  .transform((s) => {
    const identity = s.identity ?? `${hostname()}_${randomUUID()}`;
    return {
      ...s,
      identity,
      leaseNamespace: s.leaseNamespace ?? s.podNamespace ?? serviceAccountNamespace() ?? "default",
    };
  });

export type Settings = z.output<typeof SettingsSchema>;

/** Reads the settings from environment variables; throws with every problem listed. */
export function loadSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  return settingsFromEnvironment(SettingsSchema, ENVIRONMENT, env, "operator");
}

function serviceAccountNamespace(): string | undefined {
  try {
    return (
      readFileSync("/var/run/secrets/kubernetes.io/serviceaccount/namespace", "utf8").trim() || undefined
    );
  } catch {
    return undefined;
  }
}
