import { API_VERSION } from "../../operator/api/v1alpha1/index.ts";

/**
 * Objects the API must refuse, each with the words a person should see. The same
 * table drives the API-server test (crds.e2e.test.ts) and the zod test
 * (operator/api/schemas.test.ts), which proves the CRD and the TS types agree.
 */
export interface InvalidCase {
  name: string;
  kind: "WebhookIntegration" | "Webhook" | "WebhookEvent" | "WebhookReplay";
  /** Metadata name; an integration must be named "default". */
  objectName?: string;
  spec: Record<string, unknown>;
  /** A piece of the API server's message. */
  message: string;
  /** Whether the zod schema alone can see the problem (false: needs metadata or another object). */
  zodRejects: boolean;
  /** The case needs an integration without plain-http permission in the namespace. */
  needsIntegration?: boolean;
}

const webhook = (spec: Record<string, unknown>) => ({
  event: "job.created",
  url: "https://example.com/hook",
  ...spec,
});

export const INVALID_OBJECTS: InvalidCase[] = [
  {
    name: "a WebhookEvent naming another delivery (e.g. another namespace's)",
    kind: "WebhookEvent",
    objectName: "mine-aaaaaaaaaaaaaaaaaaaa",
    spec: {
      deliveryId: "theirs-bbbbbbbbbbbbbbbbbbbb",
      eventId: "evt-1",
      eventType: "job.created",
      webhook: "mine",
      url: "https://example.com/hook",
      payload: "{}",
    },
    message: "spec.deliveryId must equal metadata.name",
    zodRejects: false,
  },
  {
    name: "unknown event type",
    kind: "Webhook",
    spec: webhook({ event: "appointment.cancelled" }),
    message: 'Unsupported value: "appointment.cancelled"',
    zodRejects: true,
  },
  {
    name: "missing url",
    kind: "Webhook",
    spec: { event: "job.created" },
    message: "spec.url: Required value",
    zodRejects: true,
  },
  {
    name: "relative url",
    kind: "Webhook",
    spec: webhook({ url: "/hooks/dataforce" }),
    message: "url must be an absolute http:// or https:// URL with a host",
    zodRejects: true,
  },
  {
    name: "non-http url",
    kind: "Webhook",
    spec: webhook({ url: "ftp://files.example.com/drop" }),
    message: "url must be an absolute http:// or https:// URL with a host",
    zodRejects: true,
  },
  {
    name: "url with embedded credentials",
    kind: "Webhook",
    spec: webhook({ url: "https://user:hunter2@example.com/hook" }),
    message: "url must not embed credentials",
    zodRejects: true,
  },
  {
    name: "plain http where the integration requires https",
    kind: "Webhook",
    spec: webhook({ url: "http://example.com/hook" }),
    message: "plain http:// is not allowed",
    zodRejects: false,
    needsIntegration: true,
  },
  {
    name: "header name with a space",
    kind: "Webhook",
    spec: webhook({ headers: [{ name: "X Team", value: "ops" }] }),
    message: "spec.headers[0].name in body should match",
    zodRejects: true,
  },
  {
    name: "header that overrides a signature header",
    kind: "Webhook",
    spec: webhook({ headers: [{ name: "Webhook-Signature", value: "v1,forged" }] }),
    message: "header is set by the dispatcher and cannot be overridden",
    zodRejects: true,
  },
  {
    name: "hop-by-hop header the HTTP client refuses",
    kind: "Webhook",
    spec: webhook({ headers: [{ name: "Expect", value: "100-continue" }] }),
    message: "header is set by the dispatcher and cannot be overridden",
    zodRejects: true,
  },
  {
    name: "header with both value and valueFrom",
    kind: "Webhook",
    spec: webhook({
      headers: [
        { name: "Authorization", value: "x", valueFrom: { secretKeyRef: { name: "auth", key: "token" } } },
      ],
    }),
    message: "set exactly one of value or valueFrom",
    zodRejects: true,
  },
  {
    name: "misspelled field",
    kind: "Webhook",
    spec: webhook({ pasued: true }),
    message: 'unknown field "spec.pasued"',
    zodRejects: false,
  },
  {
    name: "an unknown signature scheme",
    kind: "WebhookIntegration",
    spec: { enabled: true, signatureScheme: "v2" },
    message: 'spec.signatureScheme: Unsupported value: "v2": supported values: "v1", "v1a"',
    zodRejects: true,
  },
  {
    name: "zero attempts",
    kind: "WebhookIntegration",
    spec: { enabled: true, delivery: { maxAttempts: 0 } },
    message:
      "spec.delivery.maxAttempts: Invalid value: 0: spec.delivery.maxAttempts in body should be greater than or equal to 1",
    zodRejects: true,
  },
  {
    name: "too many attempts",
    kind: "WebhookIntegration",
    spec: { enabled: true, delivery: { maxAttempts: 11 } },
    message: "spec.delivery.maxAttempts in body should be less than or equal to 10",
    zodRejects: true,
  },
  {
    name: "timeout above the bound",
    kind: "WebhookIntegration",
    spec: { enabled: true, delivery: { timeout: "2m" } },
    message: "must be between 1ms and 60s",
    zodRejects: true,
  },
  {
    name: "timeout that is not a duration",
    kind: "WebhookIntegration",
    spec: { enabled: true, delivery: { timeout: "fast" } },
    message: "spec.delivery.timeout in body should match",
    zodRejects: true,
  },
  {
    name: "backoff whose maximum is below its start",
    kind: "WebhookIntegration",
    spec: { enabled: true, delivery: { backoff: { initialDelay: "10m", maxDelay: "1m" } } },
    message: "maxDelay must not be shorter than initialDelay",
    zodRejects: true,
  },
  {
    name: "circuit breaker whose maximum cooldown is below its cooldown",
    kind: "WebhookIntegration",
    spec: { enabled: true, delivery: { circuitBreaker: { cooldown: "5m", maxCooldown: "1m" } } },
    message: "maxCooldown must not be shorter than cooldown",
    zodRejects: true,
  },
  {
    name: "auto-pause period longer than a year",
    kind: "WebhookIntegration",
    spec: { enabled: true, delivery: { autoPause: { after: "9000h" } } },
    message: "must be between 0s and 8760h",
    zodRejects: true,
  },
  {
    name: "unknown mirroring mode",
    kind: "WebhookIntegration",
    spec: { enabled: true, eventLog: { mirror: "Everything" } },
    message: 'Unsupported value: "Everything"',
    zodRejects: true,
  },
  {
    name: "a filter longer than 1024 characters",
    kind: "Webhook",
    spec: webhook({ filter: `event.type == '${"x".repeat(1100)}'` }),
    message: "spec.filter: Too long",
    zodRejects: true,
  },
  {
    name: "a replay whose time range ends before it starts",
    kind: "WebhookReplay",
    spec: { from: "2026-02-01T00:00:00Z", to: "2026-01-01T00:00:00Z" },
    message: "from must not be after to",
    zodRejects: true,
  },
  {
    name: "a replay to the webhook it replays",
    kind: "WebhookReplay",
    spec: { from: "2026-01-01T00:00:00Z", webhook: "crm", targetWebhook: "crm" },
    message: "targetWebhook must differ from webhook",
    zodRejects: true,
  },
  {
    name: "an ordering other than Ordered or Unordered",
    kind: "Webhook",
    spec: webhook({ ordering: "Sorted" }),
    message: 'Unsupported value: "Sorted"',
    zodRejects: true,
  },
  {
    name: "a replay of QUEUED deliveries",
    kind: "WebhookReplay",
    spec: { from: "2026-01-01T00:00:00Z", phases: ["QUEUED"] },
    message: 'Unsupported value: "QUEUED"',
    zodRejects: true,
  },
  {
    name: "a second integration in the namespace",
    kind: "WebhookIntegration",
    objectName: "second",
    spec: { enabled: true },
    message: "a namespace has one WebhookIntegration and it must be named 'default'",
    zodRejects: false,
  },
];

export function manifestOf(testCase: InvalidCase, namespace: string): Record<string, unknown> {
  return {
    apiVersion: API_VERSION,
    kind: testCase.kind,
    metadata: {
      name: testCase.objectName ?? (testCase.kind === "WebhookIntegration" ? "default" : "invalid"),
      namespace,
    },
    spec: testCase.spec,
  };
}
