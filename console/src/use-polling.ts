import { useEffect, useRef } from "preact/hooks";

/**
 * Calls `load` now and then every `intervalMs` (none when undefined), one call at a time, and
 * while the tab is visible only. Changing `key` (what to load) calls it again at once.
 */
export function usePolling(load: () => Promise<void>, key: string, intervalMs: number | undefined): void {
  const latest = useRef(load);
  latest.current = load;
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      if (stopped) return;
      if (document.visibilityState !== "hidden") await latest.current();
      if (!stopped && intervalMs !== undefined) timer = setTimeout(run, intervalMs);
    };
    void run();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [key, intervalMs]);
}
