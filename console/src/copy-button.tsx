import { useState } from "preact/hooks";

/** Copies `text` (the exact text, not what is displayed) and says so. */
export function CopyButton({ text, label }: { text: string; label: string }) {
  const [state, setState] = useState<"idle" | "copied" | "failed">("idle");
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setState("copied");
    } catch {
      setState("failed");
    }
    setTimeout(() => setState("idle"), 2000);
  };
  return (
    <>
      <button type="button" class="secondary" onClick={copy}>
        {state === "copied" ? "Copied" : state === "failed" ? "Copy refused: select and copy" : label}
      </button>
      <span class="visually-hidden" role="status">
        {state === "copied" ? `${label}: copied` : ""}
      </span>
    </>
  );
}
