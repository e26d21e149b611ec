import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { filterError } from "../../contract/event-filter.ts";
import { INVALID_OBJECTS } from "../../test/crds/invalid-objects.ts";
import {
  durationToMs,
  WebhookEventSpecSchema,
  WebhookIntegrationSpecSchema,
  WebhookReplaySpecSchema,
  WebhookSpecSchema,
} from "./v1alpha1/index.ts";

const samples = join(import.meta.dirname, "..", "..", "crds", "samples");
const specOf = async (file: string): Promise<unknown> =>
  parse(await readFile(join(samples, file), "utf8")).spec;

describe("v1alpha1 schemas", () => {
  it("accept the samples in crds/samples", async () => {
    expect(
      WebhookIntegrationSpecSchema.safeParse(await specOf("webhookintegration.yaml")).error,
    ).toBeUndefined();
    expect(WebhookSpecSchema.safeParse(await specOf("webhook.yaml")).error).toBeUndefined();
    const filtered = WebhookSpecSchema.safeParse(await specOf("webhook-filtered.yaml"));
    expect(filtered.error).toBeUndefined();
    expect(filterError(filtered.data?.filter ?? "")).toBeUndefined();
    const ordered = WebhookSpecSchema.safeParse(await specOf("webhook-ordered.yaml"));
    expect(ordered.data?.ordering).toBe("Ordered");
    expect(WebhookReplaySpecSchema.safeParse(await specOf("webhookreplay.yaml")).error).toBeUndefined();
    expect(WebhookEventSpecSchema.safeParse(await specOf("webhookevent.yaml")).error).toBeUndefined();
  });

  it("apply the same defaults as the CRD", () => {
    expect(WebhookIntegrationSpecSchema.parse({})).toEqual({
      enabled: false,
      delivery: {
        maxAttempts: 3,
        timeout: "15s",
        backoff: { initialDelay: "5s", maxDelay: "1h", multiplier: 6 },
        circuitBreaker: { consecutiveFailures: 5, cooldown: "30s", maxCooldown: "10m" },
        autoPause: { after: "120h" },
      },
      eventLog: { mirror: "All", retention: "168h", maxEvents: 1000 },
      destinationPolicy: { allowPlainHTTP: false },
      signatureScheme: "v1",
    });
    expect(WebhookSpecSchema.parse({ event: "job.created", url: "https://example.com" }).paused).toBe(false);
  });

  const zodVisible = INVALID_OBJECTS.filter((c) => c.zodRejects);
  it.each(zodVisible.map((c) => [c.name, c] as const))(
    "reject what the API server rejects: %s",
    (_, testCase) => {
      const schema =
        testCase.kind === "Webhook"
          ? WebhookSpecSchema
          : testCase.kind === "WebhookReplay"
            ? WebhookReplaySpecSchema
            : WebhookIntegrationSpecSchema;
      expect(schema.safeParse(testCase.spec).success).toBe(false);
    },
  );

  it("parse durations as the dispatcher needs them", () => {
    expect(durationToMs("15s")).toBe(15_000);
    expect(durationToMs("1h30m")).toBe(5_400_000);
    expect(durationToMs("250ms")).toBe(250);
  });
});
