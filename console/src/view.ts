import { useCallback, useEffect, useState } from "preact/hooks";
import { type Filter, filterFromParams, filterParams } from "./filter.ts";

// What the page shows lives in its address (?phase=FAILED&delivery=…): a view can be bookmarked
// and shared (without the token), and the browser's Back goes from a delivery to its list.

export type View = { kind: "list"; filter: Filter } | { kind: "delivery"; id: string; filter: Filter };

export function viewFromLocation(): View {
  const params = new URLSearchParams(location.search);
  const filter = filterFromParams(params);
  const id = params.get("delivery");
  return id ? { kind: "delivery", id, filter } : { kind: "list", filter };
}

/** The address of a view, relative to the page. */
export function viewHref(view: View): string {
  const params = filterParams(view.filter);
  if (view.kind === "delivery") params.set("delivery", view.id);
  const query = params.toString();
  return query === "" ? location.pathname : `?${query}`;
}

export type Navigate = (view: View) => void;

/** The current view, and a way to go to another (a history entry, so Back returns). */
export function useView(): [View, Navigate] {
  const [view, setView] = useState<View>(viewFromLocation);
  useEffect(() => {
    const onPop = () => setView(viewFromLocation());
    addEventListener("popstate", onPop);
    return () => removeEventListener("popstate", onPop);
  }, []);
  const navigate = useCallback<Navigate>((next) => {
    history.pushState(null, "", viewHref(next));
    setView(next);
  }, []);
  return [view, navigate];
}
