import { hostname } from "node:os";
import { z } from "zod";
import { settingsFromEnvironment } from "../common/settings/environment.ts";
import { encryptionKeysSetting } from "../contract/secret-box.ts";
import { validateAllowlistEntry } from "./delivery/ssrf-guard.ts";

const list = z.string({ error: "required" }).transform((value) =>
  value
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== ""),
);
const positiveInt = z.coerce.number().int().positive();
const milliseconds = z.coerce.number().int().min(1);
const token = z.string().min(16, "tokens are at least 16 characters");
const encryptionKeys = encryptionKeysSetting();

/** Every setting, with the environment variable it comes from. Durations are milliseconds. */
export const ENVIRONMENT = {
  redisUrl: "DISPATCHER_REDIS_URL",
  keyTag: "DISPATCHER_KEY_TAG",
  encryptionKeys: "DISPATCHER_ENCRYPTION_KEYS",
  host: "DISPATCHER_HOST",
  port: "DISPATCHER_PORT",
  metricsPort: "DISPATCHER_METRICS_PORT",
  ingestTokens: "DISPATCHER_INGEST_TOKENS",
  adminTokens: "DISPATCHER_ADMIN_TOKENS",
  allowedDestinations: "DISPATCHER_ALLOWED_DESTINATIONS",
  logLevel: "DISPATCHER_LOG_LEVEL",
  consumerName: "DISPATCHER_CONSUMER_NAME",
  retentionMs: "DISPATCHER_RETENTION_MS",
  idempotencyWindowMs: "DISPATCHER_IDEMPOTENCY_WINDOW_MS",
  statusStreamMaxLen: "DISPATCHER_STATUS_STREAM_MAXLEN",
  maxEventBytes: "DISPATCHER_MAX_EVENT_BYTES",
  maxBatchEvents: "DISPATCHER_MAX_BATCH_EVENTS",
  maxInFlight: "DISPATCHER_MAX_IN_FLIGHT",
  maxBuffered: "DISPATCHER_MAX_BUFFERED",
  maxQueued: "DISPATCHER_MAX_QUEUED",
  endpointConcurrency: "DISPATCHER_ENDPOINT_CONCURRENCY",
  endpointMaxQueued: "DISPATCHER_ENDPOINT_MAX_QUEUED",
  endpointMaxQueueWaitMs: "DISPATCHER_ENDPOINT_MAX_QUEUE_WAIT_MS",
  claimIdleMs: "DISPATCHER_CLAIM_IDLE_MS",
  schedulerTickMs: "DISPATCHER_SCHEDULER_TICK_MS",
  routingPollMs: "DISPATCHER_ROUTING_POLL_MS",
  maintenanceIntervalMs: "DISPATCHER_MAINTENANCE_INTERVAL_MS",
  shutdownGraceMs: "DISPATCHER_SHUTDOWN_GRACE_MS",
} as const;

export const SettingsSchema = z
  .object({
    /** redis:// or rediss:// URL (credentials may be in it). */
    redisUrl: z.string().default("redis://127.0.0.1:6379"),
    /** The hash tag of every key: `{<keyTag>}:…`. Operator and dispatchers must agree. */
    keyTag: z.string().default("dataforce"),
    host: z.string().default("0.0.0.0"),
    port: z.coerce.number().int().min(0).max(65_535).default(8080),
    /** When set, /metrics is served on this port only, apart from the API (the chart sets it). */
    metricsPort: z.coerce.number().int().min(0).max(65_535).optional(),
    /** `id:base64(32 bytes)[,…]`: opens the routing's sealed secrets; the operator's must include them. */
    encryptionKeys: encryptionKeys,
    /** Bearer tokens accepted by the ingest API (several while rotating). */
    ingestTokens: list.pipe(z.array(token).min(1, "at least one ingest token is required")),
    /** Bearer tokens accepted by the event log API (list, show, retry). */
    adminTokens: list.pipe(z.array(token).min(1, "at least one admin token is required")),
    /** IPs/CIDRs allowed although private, loopback, link-local or metadata. */
    allowedDestinations: list
      .pipe(
        z.array(
          z.string().superRefine((entry, ctx) => {
            try {
              validateAllowlistEntry(entry);
            } catch (error) {
              ctx.addIssue({ code: "custom", message: (error as Error).message });
            }
          }),
        ),
      )
      .default([]),
    logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    /** This replica's name in the consumer groups; unique per process. */
    consumerName: z.string().min(1).default(`${hostname()}-${process.pid}`),
    /** How long delivery and event records (the event log) live after their last change. */
    retentionMs: milliseconds.default(7 * 24 * 3_600_000),
    /** A repeated event id within this window creates no second delivery. */
    idempotencyWindowMs: milliseconds.default(24 * 3_600_000),
    statusStreamMaxLen: positiveInt.default(100_000),
    /** Largest accepted `data` of one event, serialized. */
    maxEventBytes: positiveInt.default(64 * 1024),
    maxBatchEvents: positiveInt.default(500),
    /** Requests in flight across all endpoints. */
    maxInFlight: positiveInt.default(512),
    /** Work items held by this replica (queued + in flight) before it stops reading. */
    maxBuffered: positiveInt.default(4096),
    /** Work waiting for an endpoint slot before this replica stops reading. */
    maxQueued: positiveInt.default(256),
    /** Requests in flight per endpoint (URL origin); also its keep-alive connections. */
    endpointConcurrency: positiveInt.default(16),
    endpointMaxQueued: positiveInt.optional(),
    endpointMaxQueueWaitMs: milliseconds.default(2_000),
    /** Work unacknowledged this long by a consumer is taken over by another (live ones renew). */
    claimIdleMs: milliseconds.default(30_000),
    /** How often due retries are moved to the work queue. */
    schedulerTickMs: milliseconds.default(100),
    routingPollMs: milliseconds.default(1_000),
    maintenanceIntervalMs: milliseconds.default(10_000),
    /** After SIGTERM: time to finish in-flight attempts before handing them back. */
    shutdownGraceMs: milliseconds.default(20_000),
  })
  .transform((settings) => ({
    ...settings,
    endpointMaxQueued: settings.endpointMaxQueued ?? settings.maxBuffered,
  }));

export type Settings = z.output<typeof SettingsSchema>;
export type SettingsInput = z.input<typeof SettingsSchema>;

/** Reads the settings from environment variables; throws with every problem listed. */
export function loadSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  return settingsFromEnvironment(SettingsSchema, ENVIRONMENT, env, "dispatcher");
}
