import { useEffect, useRef, useState } from "preact/hooks";
import { newRetryToken } from "./api.ts";
import type { DeliveryDetail as Delivery } from "./api-schemas.ts";
import { Commands } from "./commands.tsx";
import { CopyButton } from "./copy-button.tsx";
import { formatDuration, formatTime, prettyJson } from "./format.ts";
import { deliveryCommands } from "./kubectl.ts";
import { PhaseBadge } from "./phase-badge.tsx";
import { errorMessage, useSession } from "./session-context.ts";
import { usePolling } from "./use-polling.ts";
import { type Navigate, type View, viewHref } from "./view.ts";

/** While QUEUED the page follows the attempts closely; otherwise as the list does. */
const QUEUED_REFRESH_MS = 1000;
const LIVE_REFRESH_MS = 3000;

/** One delivery: what was sent (payload, headers), every attempt, and Retry when FAILED. */
export function DeliveryDetail({
  id,
  back,
  navigate,
  live,
}: {
  id: string;
  back: View;
  navigate: Navigate;
  live: boolean;
}) {
  const session = useSession();
  const [delivery, setDelivery] = useState<Delivery | undefined>(undefined);
  const [error, setError] = useState("");
  const [retrying, setRetrying] = useState(false);
  const [notice, setNotice] = useState("");
  const heading = useRef<HTMLHeadingElement>(null);
  // a new view: focus its heading, so a screen reader announces it and Tab starts from there
  useEffect(() => heading.current?.focus(), [id]);

  /** Numbers the loads: an answer to an older one (another delivery) is dropped. */
  const loads = useRef(0);
  const load = async () => {
    const number = ++loads.current;
    try {
      const loaded = await session.api.get(id);
      if (number !== loads.current) return;
      setDelivery(loaded);
      setError("");
    } catch (caught) {
      if (number === loads.current) setError(errorMessage(caught, session));
    }
  };
  const queued = delivery?.phase === "QUEUED";
  usePolling(load, id, queued ? QUEUED_REFRESH_MS : live ? LIVE_REFRESH_MS : undefined);

  const retry = async () => {
    setRetrying(true);
    try {
      const result = await session.api.retry(id, newRetryToken());
      setNotice(
        result.outcome === "requeued"
          ? "Retry requested: back to QUEUED with a fresh budget of attempts."
          : "This retry request was already honoured.",
      );
      await load();
    } catch (caught) {
      setNotice(`Retry failed: ${errorMessage(caught, session)}`);
    } finally {
      setRetrying(false);
    }
  };

  return (
    <article class="detail">
      <p>
        <a
          href={viewHref(back)}
          onClick={(event) => {
            event.preventDefault();
            navigate(back);
          }}
          aria-keyshortcuts="Escape"
        >
          ← All deliveries
        </a>
      </p>
      <div class="detail-head">
        <h2 ref={heading} tabIndex={-1}>
          Delivery <code>{id}</code>
        </h2>
        {delivery ? <PhaseBadge phase={delivery.phase} /> : null}
        <span class="spacer" />
        {delivery?.phase === "FAILED" ? (
          <button type="button" class="danger" onClick={retry} disabled={retrying}>
            {retrying ? "Retrying…" : "Retry"}
          </button>
        ) : null}
      </div>
      <p class="status-text" role="status">
        {notice}
      </p>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      {delivery ? <DeliveryBody delivery={delivery} /> : null}
    </article>
  );
}

function DeliveryBody({ delivery }: { delivery: Delivery }) {
  return (
    <>
      <dl class="facts">
        <dt>Namespace</dt>
        <dd>{delivery.namespace}</dd>
        <dt>Webhook</dt>
        <dd>{delivery.webhook}</dd>
        <dt>Event</dt>
        <dd>
          {delivery.eventType} <code>{delivery.eventId}</code>
        </dd>
        <dt>URL</dt>
        <dd class="break">{delivery.url}</dd>
        <dt>Attempts</dt>
        <dd>
          {delivery.cycleAttempts} of {delivery.maxAttempts} in this cycle
          {delivery.cycle > 1 ? ` (retried ${delivery.cycle - 1}×; ${delivery.attempts.length} in all)` : ""}
        </dd>
        {delivery.failureReason ? (
          <>
            <dt>Failure</dt>
            <dd>{delivery.failureReason}</dd>
          </>
        ) : null}
        {delivery.nextAttemptAt ? (
          <>
            <dt>Next attempt</dt>
            <dd>{formatTime(delivery.nextAttemptAt)}</dd>
          </>
        ) : null}
        <dt>Created</dt>
        <dd>{formatTime(delivery.createdAt)}</dd>
        <dt>Updated</dt>
        <dd>{formatTime(delivery.updatedAt)}</dd>
      </dl>

      <section aria-labelledby="payload-title">
        <div class="section-head">
          <h3 id="payload-title">Payload</h3>
          <CopyButton text={delivery.payload} label="Copy payload" />
        </div>
        <pre class="payload">{prettyJson(delivery.payload)}</pre>
        <p class="hint">Shown indented; Copy copies the exact bytes sent.</p>
      </section>

      <section aria-labelledby="headers-title">
        <h3 id="headers-title">Headers sent</h3>
        <table class="headers">
          <tbody>
            {delivery.requestHeaders.map((header) => (
              <tr key={header.name}>
                <th scope="row">{header.name}</th>
                <td>
                  {header.value !== undefined ? <code>{header.value}</code> : null}
                  {header.note ? <span class="hint"> {header.note}</span> : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>

      <section aria-labelledby="attempts-title">
        <h3 id="attempts-title">Attempts ({delivery.attempts.length})</h3>
        <div class="table-wrap">
          <table class="attempts">
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">Time</th>
                <th scope="col">HTTP status</th>
                <th scope="col">Duration</th>
                <th scope="col">Error</th>
                <th scope="col">Response (first bytes)</th>
              </tr>
            </thead>
            <tbody>
              {delivery.attempts.map((attempt) => (
                <tr key={attempt.number}>
                  <td data-label="#">{attempt.number}</td>
                  <td data-label="Time">
                    <time dateTime={attempt.startedAt}>{formatTime(attempt.startedAt)}</time>
                  </td>
                  <td data-label="HTTP status">{attempt.statusCode ?? "—"}</td>
                  <td data-label="Duration">{formatDuration(attempt.durationMs)}</td>
                  <td data-label="Error">
                    {attempt.errorCode ? <code>{attempt.errorCode}</code> : "—"}
                    {attempt.error ? ` ${attempt.error}` : ""}
                  </td>
                  <td data-label="Response">
                    {attempt.responseBodyPrefix ? (
                      <code class="break">{attempt.responseBodyPrefix}</code>
                    ) : (
                      "—"
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        {delivery.attempts.length === 0 ? <p class="empty">No attempt yet.</p> : null}
      </section>

      <Commands commands={deliveryCommands(delivery)} />
    </>
  );
}
