import { useEffect } from "preact/hooks";

// Keys of the console (also listed in its footer): j / k or ↓ / ↑ move between the rows of the
// list, Enter opens one, / goes to the filters, Escape goes back from a delivery to its list.

function typingIn(target: EventTarget | null): boolean {
  return (
    target instanceof HTMLInputElement ||
    target instanceof HTMLSelectElement ||
    target instanceof HTMLTextAreaElement ||
    (target instanceof HTMLElement && target.isContentEditable)
  );
}

function moveRow(step: 1 | -1): boolean {
  const links = Array.from(document.querySelectorAll<HTMLAnchorElement>("a.row-link"));
  if (links.length === 0) return false;
  const current = links.indexOf(document.activeElement as HTMLAnchorElement);
  const next = current === -1 ? (step === 1 ? 0 : links.length - 1) : current + step;
  links[Math.max(0, Math.min(links.length - 1, next))]?.focus();
  return true;
}

export function useKeyboard(actions: { back?: (() => void) | undefined }): void {
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (event.altKey || event.ctrlKey || event.metaKey || typingIn(event.target)) return;
      if (document.querySelector("dialog[open]")) return;
      let handled = false;
      if (event.key === "j" || event.key === "ArrowDown") handled = moveRow(1);
      else if (event.key === "k" || event.key === "ArrowUp") handled = moveRow(-1);
      else if (event.key === "/") {
        const field = document.getElementById("filter-namespace");
        field?.focus();
        handled = field !== null;
      } else if (event.key === "Escape" && actions.back) {
        actions.back();
        handled = true;
      }
      if (handled) event.preventDefault();
    };
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  }, [actions.back]);
}
