import { describe, expect, it } from "vitest";
import { isReservedHeader, RESERVED_HEADERS } from "../contract/reserved-headers.ts";
import { NamespaceRoutingSchema } from "../contract/routing-config.ts";
import { prepareNamespace } from "./routing-table.ts";

const routing = NamespaceRoutingSchema.parse({
  namespace: "team-a",
  enabled: true,
  signingSecrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
  webhooks: [
    {
      name: "orders",
      event: "job.created",
      url: "https://example.com/a",
      headers: {
        "X-Team": "a",
        "Content-Type": "text/plain",
        "webhook-signature": "forged",
        Connection: "close",
        "Keep-Alive": "1",
        "Proxy-Authorization": "x",
        TE: "trailers",
      },
    },
    { name: "paused", event: "job.created", url: "https://example.com/b", paused: true },
    { name: "payments", event: "payment.received", url: "https://example.com/c" },
  ],
});

describe("prepareNamespace", () => {
  it("indexes non-paused subscribers by event and keeps every webhook by name", () => {
    const compiled = prepareNamespace(routing);
    expect(compiled.subscribers.get("job.created")?.map((w) => w.name)).toEqual(["orders"]);
    expect(compiled.subscribers.get("payment.received")?.map((w) => w.name)).toEqual(["payments"]);
    expect([...compiled.webhooks.keys()]).toEqual(["orders", "paused", "payments"]);
    expect(compiled.signingKeys).toHaveLength(1);
  });

  it("drops headers the delivery contract owns and hop-by-hop headers", () => {
    expect(prepareNamespace(routing).webhooks.get("orders")?.headers).toEqual({ "x-team": "a" });
  });
});

describe("reserved headers", () => {
  it("drops every header the operator's CRD refuses, in any case, and the webhook-/proxy- prefixes", () => {
    const names = [
      ...RESERVED_HEADERS,
      ...RESERVED_HEADERS.map((name) => name.toUpperCase()),
      "Upgrade",
      "Expect",
      "Trailer",
      "Proxy-Connection",
      "proxy-authorization",
      "Webhook-Id",
    ];
    const compiled = prepareNamespace(
      NamespaceRoutingSchema.parse({
        namespace: "team-b",
        enabled: true,
        signingSecrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        webhooks: [
          {
            name: "all",
            event: "job.created",
            url: "https://example.com/a",
            headers: Object.fromEntries([...names.map((name) => [name, "x"]), ["X-Kept", "k"]]),
          },
        ],
      }),
    );
    expect(compiled.webhooks.get("all")?.headers).toEqual({ "x-kept": "k" });
    for (const name of names) expect(isReservedHeader(name), name).toBe(true);
    expect(isReservedHeader("x-proxy-id")).toBe(false);
  });
});
