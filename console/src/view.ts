import { useCallback, useEffect, useState } from "preact/hooks";
import { type Filter, filterFromParams, filterParams } from "./filter.ts";

// What the page shows lives in its address (?phase=FAILED&delivery=…): a view can be bookmarked
// and shared (without the token), and the browser's Back goes from a delivery to its list.

/** The list: its filter and rows per page (undefined: the default). */
export interface ListView {
  filter: Filter;
  pageSize?: number | undefined;
}

export type View = ({ kind: "list" } & ListView) | ({ kind: "delivery"; id: string } & ListView);

export const DEFAULT_PAGE_SIZE = 50;
/** The API's largest page. */
const MAX_PAGE_SIZE = 500;

export function viewFromLocation(): View {
  const params = new URLSearchParams(location.search);
  const filter = filterFromParams(params);
  const limit = Number(params.get("limit"));
  const pageSize = Number.isInteger(limit) && limit >= 1 && limit <= MAX_PAGE_SIZE ? limit : undefined;
  const id = params.get("delivery");
  return id ? { kind: "delivery", id, filter, pageSize } : { kind: "list", filter, pageSize };
}

/** The address of a view, relative to the page. */
export function viewHref(view: View): string {
  const params = filterParams(view.filter);
  if (view.pageSize !== undefined) params.set("limit", String(view.pageSize));
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
