import type { Phase } from "./vocabulary.ts";

const SYMBOLS: Record<Phase, string> = { QUEUED: "◷", SENT: "✓", FAILED: "✕" };

/** A phase by its name, a symbol and a colour: never by colour alone. */
export function PhaseBadge({ phase }: { phase: Phase }) {
  return (
    <span class={`phase phase-${phase.toLowerCase()}`}>
      <span aria-hidden="true">{SYMBOLS[phase]}</span> {phase}
    </span>
  );
}
