// The token the console acts with: entered once, kept in this tab's session storage (gone when
// the tab closes; never in local storage or a cookie). `make dev` prints an address carrying it
// in the fragment (#token=…), which browsers never send to the server: it is taken from there
// into session storage and removed from the address bar at once.

const KEY = "dataforce-webhooks.console.token";

export function takeToken(): string | undefined {
  const fromFragment = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromFragment) {
    saveToken(fromFragment);
    history.replaceState(history.state, "", location.pathname + location.search);
    return fromFragment;
  }
  return sessionStorage.getItem(KEY) ?? undefined;
}

export function saveToken(token: string): void {
  sessionStorage.setItem(KEY, token);
}

export function forgetToken(): void {
  sessionStorage.removeItem(KEY);
}
