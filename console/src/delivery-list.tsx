import { useRef, useState } from "preact/hooks";
import type { DeliveryPage } from "./api-schemas.ts";
import { BulkRetry } from "./bulk-retry.tsx";
import { Commands } from "./commands.tsx";
import type { Filter } from "./filter.ts";
import { Filters } from "./filters.tsx";
import { formatTime } from "./format.ts";
import { listCommands } from "./kubectl.ts";
import { PhaseBadge } from "./phase-badge.tsx";
import { errorMessage, useSession } from "./session-context.ts";
import { usePolling } from "./use-polling.ts";
import { DEFAULT_PAGE_SIZE, type Navigate, viewHref } from "./view.ts";

const PAGE_SIZES = [25, 50, 100, 200];
const LIVE_REFRESH_MS = 3000;

/**
 * The deliveries, newest first, a page at a time (the API's cursors; "Newer" goes back through
 * the ones already followed), refreshed every few seconds while "Live" is on.
 */
export function DeliveryList({
  filter,
  pageSize = DEFAULT_PAGE_SIZE,
  navigate,
  live,
}: {
  filter: Filter;
  pageSize?: number | undefined;
  navigate: Navigate;
  live: boolean;
}) {
  const session = useSession();
  const filterKey = JSON.stringify([filter, pageSize]);
  /** cursors[i] opens page i (undefined: the newest) of the filter they were followed in. */
  const [paging, setPaging] = useState<{ filterKey: string; cursors: Array<string | undefined> }>({
    filterKey,
    cursors: [undefined],
  });
  const cursors = paging.filterKey === filterKey ? paging.cursors : [undefined];
  const setCursors = (next: Array<string | undefined>) => setPaging({ filterKey, cursors: next });
  const [page, setPage] = useState<DeliveryPage | undefined>(undefined);
  const [error, setError] = useState("");
  const [loading, setLoading] = useState(false);
  const [updatedAt, setUpdatedAt] = useState<Date | undefined>(undefined);
  const cursor = cursors.at(-1);

  /** Numbers the loads: an answer to an older one (another filter, page) is dropped. */
  const loads = useRef(0);
  const load = async () => {
    const number = ++loads.current;
    setLoading(true);
    try {
      const loaded = await session.api.list(filter, { limit: pageSize, cursor });
      if (number !== loads.current) return;
      setPage(loaded);
      setUpdatedAt(new Date());
      setError("");
    } catch (caught) {
      if (number === loads.current) setError(errorMessage(caught, session));
    } finally {
      if (number === loads.current) setLoading(false);
    }
  };
  usePolling(load, `${filterKey}|${cursor ?? ""}`, live ? LIVE_REFRESH_MS : undefined);

  return (
    <>
      <Filters filter={filter} onChange={(next) => navigate({ kind: "list", filter: next, pageSize })} />
      <div class="toolbar">
        <button type="button" class="secondary" onClick={load}>
          Refresh
        </button>
        <span class="status-text" aria-live="polite">
          {loading ? "Loading…" : updatedAt ? `Updated ${formatTime(updatedAt.toISOString())}` : ""}
        </span>
        <span class="spacer" />
        {filter.phase === undefined || filter.phase === "FAILED" ? (
          <BulkRetry filter={filter} onDone={load} />
        ) : null}
      </div>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      <div class="table-wrap">
        <table class="deliveries" aria-busy={loading && page === undefined}>
          <caption class="visually-hidden">Deliveries, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Created</th>
              <th scope="col">Phase</th>
              <th scope="col">Event type</th>
              <th scope="col">Webhook</th>
              <th scope="col">Namespace</th>
              <th scope="col">Attempts</th>
              <th scope="col">Delivery</th>
            </tr>
          </thead>
          <tbody>
            {page?.items.map((item) => (
              <tr key={item.id} data-phase={item.phase}>
                <td data-label="Created">
                  <time dateTime={item.createdAt}>{formatTime(item.createdAt)}</time>
                </td>
                <td data-label="Phase">
                  <PhaseBadge phase={item.phase} />
                  {item.failureReason ? <span class="reason"> {item.failureReason}</span> : null}
                </td>
                <td data-label="Event type">{item.eventType}</td>
                <td data-label="Webhook">{item.webhook}</td>
                <td data-label="Namespace">{item.namespace}</td>
                <td data-label="Attempts">
                  {item.attempts}
                  {item.cycle > 1 ? ` (retry ${item.cycle - 1})` : ""}
                </td>
                <td data-label="Delivery">
                  <a
                    class="row-link"
                    href={viewHref({ kind: "delivery", id: item.id, filter, pageSize })}
                    onClick={(event) => {
                      if (event.ctrlKey || event.metaKey || event.shiftKey) return;
                      event.preventDefault();
                      navigate({ kind: "delivery", id: item.id, filter, pageSize });
                    }}
                  >
                    {item.id}
                  </a>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {page !== undefined && page.items.length === 0 ? <p class="empty">No deliveries match.</p> : null}
      </div>
      <nav class="pager" aria-label="Pages">
        <button
          type="button"
          class="secondary"
          disabled={cursors.length === 1}
          onClick={() => setCursors(cursors.slice(0, -1))}
        >
          ← Newer
        </button>
        <span>Page {cursors.length}</span>
        <button
          type="button"
          class="secondary"
          disabled={page?.nextCursor === undefined}
          onClick={() => page?.nextCursor !== undefined && setCursors([...cursors, page.nextCursor])}
        >
          Older →
        </button>
        <label class="page-size">
          Rows per page
          <select
            value={String(pageSize)}
            onChange={(event) =>
              navigate({ kind: "list", filter, pageSize: Number(event.currentTarget.value) })
            }
          >
            {(PAGE_SIZES.includes(pageSize) ? PAGE_SIZES : [pageSize, ...PAGE_SIZES]).map((size) => (
              <option key={size} value={String(size)}>
                {size}
              </option>
            ))}
          </select>
        </label>
      </nav>
      <Commands commands={listCommands(filter)} />
    </>
  );
}
