import { useCallback, useMemo, useState } from "preact/hooks";
import { LogApi } from "./api.ts";
import { DeliveryDetail } from "./delivery-detail.tsx";
import { DeliveryList } from "./delivery-list.tsx";
import { useKeyboard } from "./keyboard.ts";
import { Login } from "./login.tsx";
import { forgetToken, saveToken, takeToken } from "./session.ts";
import { type Session, SessionContext } from "./session-context.ts";
import { useView } from "./view.ts";

/** The console: a token first, then the list of deliveries or one delivery. */
export function App() {
  const [token, setToken] = useState<string | undefined>(takeToken);
  const [notice, setNotice] = useState("");
  const [view, navigate] = useView();
  const [live, setLive] = useState(true);

  const signOut = useCallback((reason?: string) => {
    forgetToken();
    setToken(undefined);
    setNotice(reason ?? "");
  }, []);
  const session = useMemo<Session | undefined>(
    () => (token === undefined ? undefined : { api: new LogApi(token), signOut }),
    [token, signOut],
  );
  const back = useMemo(
    () =>
      view.kind === "delivery"
        ? () => navigate({ kind: "list", filter: view.filter, pageSize: view.pageSize })
        : undefined,
    [view, navigate],
  );
  useKeyboard({ back });

  if (session === undefined) {
    return (
      <Login
        notice={notice}
        onToken={(entered) => {
          saveToken(entered);
          setNotice("");
          setToken(entered);
        }}
      />
    );
  }
  return (
    <SessionContext.Provider value={session}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="bar">
        <h1>Webhook Event Log</h1>
        <span class="spacer" />
        <label class="live">
          <input type="checkbox" checked={live} onChange={(event) => setLive(event.currentTarget.checked)} />
          Live
        </label>
        <button type="button" class="secondary" onClick={() => signOut()}>
          Sign out
        </button>
      </header>
      <main id="main">
        {view.kind === "list" ? (
          <DeliveryList filter={view.filter} pageSize={view.pageSize} navigate={navigate} live={live} />
        ) : (
          <DeliveryDetail
            id={view.id}
            back={{ kind: "list", filter: view.filter, pageSize: view.pageSize }}
            navigate={navigate}
            live={live}
          />
        )}
      </main>
      <footer class="keys">
        Keys: <kbd>j</kbd>/<kbd>k</kbd> or <kbd>↓</kbd>/<kbd>↑</kbd> rows · <kbd>Enter</kbd> open ·{" "}
        <kbd>/</kbd> filters · <kbd>Esc</kbd> back
      </footer>
    </SessionContext.Provider>
  );
}
