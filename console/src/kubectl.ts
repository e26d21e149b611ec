import type { Filter } from "./filter.ts";

// The kubectl commands that show the same as the console (WebhookEvents are the Kubernetes view
// of the log, named after the delivery id, labelled by webhook, event type and phase; whether a
// namespace mirrors all its deliveries, only failed ones or none is its integration's
// `eventLog.mirror`).

const GROUP = "webhooks.dataforce.io";
const RETRY = `${GROUP}/retry="$(date +%s)" --overwrite`;

function scope(namespace: string | undefined): string {
  return namespace ? `-n ${namespace}` : "-A";
}

function selector(filter: Filter, phase = filter.phase): string {
  const labels = [
    filter.webhook && `${GROUP}/webhook=${filter.webhook}`,
    filter.eventType && `${GROUP}/event-type=${filter.eventType}`,
    phase && `${GROUP}/phase=${phase}`,
  ].filter(Boolean);
  return labels.length === 0 ? "" : ` -l ${labels.join(",")}`;
}

/** The list, and the bulk retry of its FAILED deliveries. */
export function listCommands(filter: Filter): string[] {
  const commands = [
    `kubectl get webhookevents ${scope(filter.namespace)}${selector(filter)} --sort-by=.metadata.creationTimestamp`,
  ];
  if (filter.phase === undefined || filter.phase === "FAILED") {
    commands.push(
      `kubectl annotate webhookevents ${scope(filter.namespace)}${selector(filter, "FAILED")} ${RETRY}`,
    );
  }
  return commands;
}

/** One delivery: the object, its payload, its attempts, and its retry. */
export function deliveryCommands(delivery: { id: string; namespace: string }): string[] {
  const object = `webhookevent ${delivery.id} -n ${delivery.namespace}`;
  return [
    `kubectl get ${object} -o yaml`,
    `kubectl get ${object} -o jsonpath='{.spec.payload}'`,
    `kubectl get ${object} -o jsonpath='{.status.attemptHistory}'`,
    `kubectl annotate ${object} ${RETRY}`,
  ];
}
