import { PHASES, type Phase } from "./vocabulary.ts";

/** What the list shows: the event log API's filters (and the page's, in its address). */
export interface Filter {
  namespace?: string | undefined;
  webhook?: string | undefined;
  eventType?: string | undefined;
  phase?: Phase | undefined;
}

export const FILTER_KEYS = ["namespace", "webhook", "eventType", "phase"] as const satisfies ReadonlyArray<
  keyof Filter
>;

/** The filter's non-empty fields as query parameters, in a stable order. */
export function filterParams(filter: Filter): URLSearchParams {
  const params = new URLSearchParams();
  for (const key of FILTER_KEYS) {
    const value = filter[key];
    if (value !== undefined && value !== "") params.set(key, value);
  }
  return params;
}

/** The filter named by query parameters; an unknown phase is dropped. */
export function filterFromParams(params: URLSearchParams): Filter {
  const value = (key: keyof Filter) => params.get(key)?.trim() || undefined;
  const phase = value("phase");
  return {
    namespace: value("namespace"),
    webhook: value("webhook"),
    eventType: value("eventType"),
    phase: PHASES.find((known) => known === phase),
  };
}
