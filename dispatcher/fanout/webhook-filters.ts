import type { Logger } from "pino";
import type { FilterEvent, FilterOutcome } from "../../contract/event-filter.ts";
import type { WebhookRoute } from "../../contract/routing-config.ts";
import type { PreparedNamespace } from "../routing-table.ts";
import type { IncomingEvent } from "./fanout.ts";

/** Why a subscriber got no delivery: the `reason` of `deliveries_filtered_total`. */
export type FilteredReason = Exclude<FilterOutcome, { matched: true }>["reason"];

/** At most one log line per webhook and interval for filters that fail on events. */
const LOG_INTERVAL_MS = 60_000;
const LOGGED_MAX = 10_000;

/**
 * Applies the webhooks' filters at fan-out: which subscribers of an event get a delivery. An
 * event a filter fails on (a missing field, a type mismatch, not a bool) or that runs it over its
 * budget is not delivered to that webhook — fail closed, as a filter that did not say yes — and
 * is counted with its reason; the failure is logged at most once a minute per webhook, with the
 * event id, never the event's data: so not the evaluator's message for an evaluation error either
 * (it may quote a value: "Cannot convert <value> to a BigInt"). The event log shows that event's
 * data to whoever may read it (GET /v1/events/{namespace}/{id}).
 */
export class WebhookFilters {
  readonly #logger: Logger;
  readonly #logged = new Map<string, number>();

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** The subscribers that get a delivery, and the reason of each that does not. */
  select(
    namespace: PreparedNamespace,
    subscribers: readonly WebhookRoute[],
    event: IncomingEvent,
  ): { routes: readonly WebhookRoute[]; filtered: FilteredReason[] } {
    if (namespace.filters.size === 0) return { routes: subscribers, filtered: [] };
    const routes: WebhookRoute[] = [];
    const filtered: FilteredReason[] = [];
    let input: FilterEvent | undefined;
    for (const route of subscribers) {
      const filter = namespace.filters.get(route.name);
      if (!filter) {
        routes.push(route);
        continue;
      }
      if ("compileError" in filter) {
        // logged with the routing (routing-table.ts); the message is about the expression
        filtered.push("error");
        continue;
      }
      input ??= filterInput(event);
      const outcome = filter.evaluate(input);
      if (outcome.matched) {
        routes.push(route);
        continue;
      }
      filtered.push(outcome.reason);
      // a budget message is ours; an evaluation error's may quote the event's data
      if (outcome.reason === "limit") this.#report(event, route.name, outcome.reason, outcome.message);
      else if (outcome.reason === "error") this.#report(event, route.name, outcome.reason);
    }
    return { routes, filtered };
  }

  #report(event: IncomingEvent, webhook: string, reason: FilteredReason, message?: string): void {
    const key = `${event.namespace}/${webhook}`;
    const now = Date.now();
    const last = this.#logged.get(key);
    if (last !== undefined && now - last < LOG_INTERVAL_MS) return;
    if (this.#logged.size >= LOGGED_MAX) this.#logged.clear();
    this.#logged.set(key, now);
    this.#logger.warn(
      {
        namespace: event.namespace,
        webhook,
        eventId: event.id,
        reason,
        ...(message ? { error: message } : {}),
      },
      reason === "limit"
        ? "webhook filter ran over its budget on an event: not delivered to this webhook (logged once a minute per webhook)"
        : "webhook filter failed on an event (a missing field? a type mismatch? not a bool?): not delivered to this webhook (logged once a minute per webhook)",
    );
  }
}

/** `event` as a filter sees it: the notification's fields, `data` parsed. */
function filterInput(event: IncomingEvent): FilterEvent {
  return {
    id: event.id,
    type: event.type,
    timestamp: event.occurredAt,
    namespace: event.namespace,
    // validated as one JSON object at ingest
    data: JSON.parse(event.data) as unknown,
  };
}
