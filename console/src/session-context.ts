import { createContext } from "preact";
import { useContext } from "preact/hooks";
import { ApiRequestError, type LogApi } from "./api.ts";

export interface Session {
  api: LogApi;
  /** Forget the token and ask for one again, saying why. */
  signOut(reason?: string): void;
}

export const SessionContext = createContext<Session | undefined>(undefined);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (session === undefined) throw new Error("useSession outside a signed-in console");
  return session;
}

/**
 * What to show for a failed request; a refused token (401) signs out instead, since every
 * further request would be refused too.
 */
export function errorMessage(error: unknown, session: Session): string {
  if (error instanceof ApiRequestError) {
    if (error.status === 401) session.signOut("The dispatcher refused the token: enter it again.");
    return `${error.message} (${error.code})`;
  }
  return error instanceof Error ? `Could not reach the dispatcher: ${error.message}` : String(error);
}
