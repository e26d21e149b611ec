import { useEffect, useState } from "preact/hooks";
import type { Filter } from "./filter.ts";
import { EVENT_TYPES, PHASES } from "./vocabulary.ts";

/**
 * The list's filters: the lists apply at once, the text fields on Enter or "Apply". `/` focuses
 * the first field (app.tsx).
 */
export function Filters({ filter, onChange }: { filter: Filter; onChange(filter: Filter): void }) {
  const [namespace, setNamespace] = useState(filter.namespace ?? "");
  const [webhook, setWebhook] = useState(filter.webhook ?? "");
  useEffect(() => {
    setNamespace(filter.namespace ?? "");
    setWebhook(filter.webhook ?? "");
  }, [filter.namespace, filter.webhook]);

  const apply = (change: Partial<Filter>) =>
    onChange({
      ...filter,
      namespace: namespace.trim() || undefined,
      webhook: webhook.trim() || undefined,
      ...change,
    });

  return (
    <form
      class="filters"
      aria-label="Filters"
      onSubmit={(event) => {
        event.preventDefault();
        apply({});
      }}
    >
      <label>
        Namespace
        <input
          id="filter-namespace"
          name="namespace"
          value={namespace}
          placeholder="all you may read"
          autocomplete="off"
          spellcheck={false}
          onInput={(event) => setNamespace(event.currentTarget.value)}
        />
      </label>
      <label>
        Webhook
        <input
          name="webhook"
          value={webhook}
          placeholder="any"
          autocomplete="off"
          spellcheck={false}
          onInput={(event) => setWebhook(event.currentTarget.value)}
        />
      </label>
      <label>
        Event type
        <select
          name="eventType"
          value={filter.eventType ?? ""}
          onChange={(event) => apply({ eventType: event.currentTarget.value || undefined })}
        >
          <option value="">any</option>
          {EVENT_TYPES.map((type) => (
            <option key={type} value={type}>
              {type}
            </option>
          ))}
        </select>
      </label>
      <label>
        Phase
        <select
          name="phase"
          value={filter.phase ?? ""}
          onChange={(event) => {
            const phase = PHASES.find((p) => p === event.currentTarget.value);
            apply({ phase });
          }}
        >
          <option value="">any</option>
          {PHASES.map((phase) => (
            <option key={phase} value={phase}>
              {phase}
            </option>
          ))}
        </select>
      </label>
      <div class="filter-actions">
        <button type="submit">Apply</button>
        <button
          type="button"
          class="secondary"
          onClick={() => onChange({})}
          disabled={Object.values(filter).every((value) => value === undefined)}
        >
          Clear
        </button>
      </div>
    </form>
  );
}
