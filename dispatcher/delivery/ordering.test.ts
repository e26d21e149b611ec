import { describe, expect, it } from "vitest";
import { NamespaceRoutingSchema } from "../../contract/routing-config.ts";
import { prepareNamespace } from "../routing-table.ts";
import { holdsPausedQueue } from "./ordering.ts";

const namespace = prepareNamespace(
  NamespaceRoutingSchema.parse({
    namespace: "team-a",
    enabled: true,
    signingSecrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    webhooks: [
      {
        name: "ordered-paused",
        event: "job.created",
        url: "https://e.example/a",
        paused: true,
        ordering: "Ordered",
      },
      { name: "ordered", event: "job.created", url: "https://e.example/b", ordering: "Ordered" },
      { name: "paused", event: "job.created", url: "https://e.example/c", paused: true },
    ],
  }),
);

describe("holdsPausedQueue", () => {
  it("holds the queue of a paused ordered webhook only", () => {
    expect(holdsPausedQueue(namespace, "ordered-paused")).toBe(true);
    // an unordered paused webhook's work fails webhook-paused, as before
    expect(holdsPausedQueue(namespace, "paused")).toBe(false);
    expect(holdsPausedQueue(namespace, "ordered")).toBe(false);
    expect(holdsPausedQueue(namespace, "removed")).toBe(false);
    expect(holdsPausedQueue(undefined, "ordered-paused")).toBe(false);
  });

  it("defaults a route to Unordered", () => {
    expect(namespace.webhooks.get("paused")?.route.ordering).toBe("Unordered");
  });
});
