import { useState } from "preact/hooks";
import { ApiRequestError, LogApi } from "./api.ts";

/**
 * Asks for a token once per tab: the admin token (every namespace) or a namespace's event log
 * token (that namespace only). It is checked with one small listing before it is kept.
 */
export function Login({ notice, onToken }: { notice: string; onToken(token: string): void }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState("");
  const [checking, setChecking] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    const candidate = token.trim();
    if (candidate === "") return;
    setChecking(true);
    try {
      await new LogApi(candidate).list({}, { limit: 1 });
      onToken(candidate);
    } catch (caught) {
      setError(
        caught instanceof ApiRequestError && caught.status === 401
          ? "The dispatcher refused this token."
          : `Could not check the token: ${caught instanceof Error ? caught.message : String(caught)}`,
      );
    } finally {
      setChecking(false);
    }
  };

  return (
    <main id="main" class="login">
      <h1>Webhook Event Log</h1>
      {notice ? <p class="notice">{notice}</p> : null}
      <form onSubmit={submit}>
        <label>
          Token
          <input
            type="password"
            name="token"
            value={token}
            autocomplete="off"
            autofocus
            required
            aria-describedby="token-help"
            aria-invalid={error !== ""}
            onInput={(event) => setToken(event.currentTarget.value)}
          />
        </label>
        <button type="submit" disabled={checking}>
          {checking ? "Checking…" : "Open the event log"}
        </button>
      </form>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      <p id="token-help" class="hint">
        An admin token of the dispatcher (<code>DISPATCHER_ADMIN_TOKENS</code>) shows every namespace; a
        namespace's event log token shows that namespace only:
        <br />
        <code>
          kubectl get secret webhook-event-log-token -n NAMESPACE -o jsonpath='{"{.data.token}"}' | base64 -d
        </code>
        <br />
        It is kept in this tab only (session storage) until you sign out or close the tab.
      </p>
    </main>
  );
}
