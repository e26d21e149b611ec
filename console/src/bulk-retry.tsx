import { useRef, useState } from "preact/hooks";
import { newRetryToken } from "./api.ts";
import type { Filter } from "./filter.ts";
import { errorMessage, useSession } from "./session-context.ts";

/** The most deliveries one bulk retry requeues (the API's default). */
const BULK_LIMIT = 1000;

function describe(filter: Filter): string {
  const parts = [
    filter.namespace ? `namespace ${filter.namespace}` : "every namespace this token may read",
    filter.webhook && `webhook ${filter.webhook}`,
    filter.eventType && `event type ${filter.eventType}`,
  ].filter(Boolean);
  return parts.join(", ");
}

/**
 * "Retry all FAILED…": asks first (a modal dialog naming the filter), then requeues every FAILED
 * delivery the filter matches, as `POST /v1/deliveries/retry` with one request token.
 */
export function BulkRetry({ filter, onDone }: { filter: Filter; onDone(): void }) {
  const session = useSession();
  const dialog = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<string>("");

  const confirm = async () => {
    setBusy(true);
    try {
      const counts = await session.api.retryAll(filter, newRetryToken());
      setResult(
        `Requeued ${counts.requeued} FAILED ${counts.requeued === 1 ? "delivery" : "deliveries"}` +
          (counts.notFailed > 0 ? ` (${counts.notFailed} were no longer FAILED)` : "") +
          ".",
      );
      onDone();
    } catch (error) {
      setResult(`Bulk retry failed: ${errorMessage(error, session)}`);
    } finally {
      setBusy(false);
      dialog.current?.close();
    }
  };

  return (
    <>
      <button type="button" class="danger" onClick={() => dialog.current?.showModal()}>
        Retry all FAILED…
      </button>
      <span class="status-text" role="status">
        {result}
      </span>
      <dialog ref={dialog} aria-labelledby="bulk-retry-title">
        <h2 id="bulk-retry-title">Retry every FAILED delivery?</h2>
        <p>
          Matching: <strong>{describe(filter)}</strong>.
        </p>
        <p>
          Each goes back to QUEUED with a fresh budget of attempts (up to {BULK_LIMIT} deliveries per request;
          one request never retries a delivery twice).
        </p>
        <div class="dialog-actions">
          <button type="button" class="secondary" onClick={() => dialog.current?.close()} autofocus>
            Cancel
          </button>
          <button type="button" class="danger" onClick={confirm} disabled={busy}>
            {busy ? "Retrying…" : "Retry FAILED deliveries"}
          </button>
        </div>
      </dialog>
    </>
  );
}
