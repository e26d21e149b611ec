import { describe, expect, it } from "vitest";
import { deliveryCommands, listCommands } from "./kubectl.ts";

describe("kubectl commands", () => {
  it("select the list's filter by label, across namespaces when none is named", () => {
    expect(listCommands({ webhook: "crm", phase: "FAILED" })).toEqual([
      "kubectl get webhookevents -A -l webhooks.dataforce.io/webhook=crm,webhooks.dataforce.io/phase=FAILED --sort-by=.metadata.creationTimestamp",
      'kubectl annotate webhookevents -A -l webhooks.dataforce.io/webhook=crm,webhooks.dataforce.io/phase=FAILED webhooks.dataforce.io/retry="$(date +%s)" --overwrite',
    ]);
    expect(listCommands({ namespace: "acme", phase: "SENT" })).toEqual([
      "kubectl get webhookevents -n acme -l webhooks.dataforce.io/phase=SENT --sort-by=.metadata.creationTimestamp",
    ]);
  });

  it("name one delivery's WebhookEvent", () => {
    expect(deliveryCommands({ id: "crm-abc", namespace: "acme" })).toContain(
      "kubectl get webhookevent crm-abc -n acme -o jsonpath='{.spec.payload}'",
    );
  });
});
