import {
  type Condition,
  type ConditionStatus,
  findCondition,
  removeCondition,
  setCondition,
} from "./conditions.ts";

// Ready, Reconciling and Stalled the way kstatus reads them (sigs.k8s.io/cli-utils
// kstatus/status.Compute, what Flux's health checks and `kubectl apply --wait`-style tools
// run): a generation not yet observed is InProgress; then Reconciling=True is InProgress,
// Stalled=True is Failed; then Ready=True is Current and Ready False/Unknown InProgress.
// Reconciling and Stalled are "abnormal-true" conditions: absent when they do not hold, and
// never both True. The README's status model table lists every kind's states.

/** How a verdict reads to GitOps tools. */
export type Standing =
  /** The desired state is reached, a deliberate stop included (paused, disabled): Ready=True → Current. */
  | "Ready"
  /** The operator is converging on its own: Reconciling=True → InProgress. */
  | "Progressing"
  /**
   * Waiting for another object (a Secret, its label, the integration) that a GitOps sync may be
   * about to apply: Reconciling=True for a grace period, then Stalled=True → Failed.
   */
  | "Waiting"
  /** Only a change by the user helps: Stalled=True → Failed, at once. */
  | "Stalled";

/** The Ready condition as a reconciler states it. */
export interface ReadyVerdict {
  status: ConditionStatus;
  reason: string;
  message: string;
}

export interface StandingOptions {
  /** metadata.generation of the object: every condition's observedGeneration. */
  generation: number;
  /** How long a Waiting verdict stays Reconciling before it is Stalled. */
  graceMs: number;
  now?: Date;
}

export interface StandingConditions {
  conditions: Condition[];
  /** A Waiting verdict within its grace: reconcile again after this long to stall it. */
  recheckAfterMs?: number;
}

/**
 * `current` with Ready set to `ready` and Reconciling / Stalled set or removed for `standing`.
 * A Waiting verdict's grace runs from when Reconciling first said the same reason for the same
 * generation (its lastTransitionTime, so it survives restarts); a new spec or a new reason to
 * wait starts it again, and an object already Stalled for that reason stays Stalled.
 */
export function standingConditions(
  current: readonly Condition[] | undefined,
  ready: ReadyVerdict,
  standing: Standing,
  options: StandingOptions,
): StandingConditions {
  const now = options.now ?? new Date();
  const { generation } = options;
  const withReady = setCondition(current, { type: "Ready", ...ready, observedGeneration: generation }, now);
  const abnormal = (type: "Reconciling" | "Stalled", message = ready.message): Condition[] => {
    const other = type === "Reconciling" ? "Stalled" : "Reconciling";
    const previous = findCondition(withReady, type);
    // A stale one (another generation or reason) is replaced, so its lastTransitionTime restarts.
    const fresh =
      previous && (previous.observedGeneration !== generation || previous.reason !== ready.reason)
        ? removeCondition(withReady, type)
        : withReady;
    return removeCondition(
      setCondition(
        fresh,
        { type, status: "True", reason: ready.reason, message, observedGeneration: generation },
        now,
      ),
      other,
    );
  };

  switch (standing) {
    case "Ready":
      return { conditions: removeCondition(removeCondition(withReady, "Reconciling"), "Stalled") };
    case "Progressing":
      return { conditions: abnormal("Reconciling") };
    case "Stalled":
      return { conditions: abnormal("Stalled") };
    case "Waiting": {
      const stalledMessage = `${ready.message} (still so after ${formatDuration(options.graceMs)})`;
      if (holds(findCondition(withReady, "Stalled"), ready.reason, generation)) {
        return { conditions: abnormal("Stalled", stalledMessage) };
      }
      const waiting = findCondition(withReady, "Reconciling");
      const since = holds(waiting, ready.reason, generation)
        ? Date.parse(waiting?.lastTransitionTime ?? "")
        : now.getTime();
      const left = (Number.isNaN(since) ? now.getTime() : since) + options.graceMs - now.getTime();
      if (left <= 0) return { conditions: abnormal("Stalled", stalledMessage) };
      return { conditions: abnormal("Reconciling"), recheckAfterMs: left };
    }
  }
}

/** `condition` is True, for `reason`, at `generation`. */
function holds(condition: Condition | undefined, reason: string, generation: number): boolean {
  return (
    condition?.status === "True" && condition.reason === reason && condition.observedGeneration === generation
  );
}

/** 90000 → "1m30s", 2000 → "2s", 1500 → "1.5s". */
export function formatDuration(ms: number): string {
  const minutes = Math.floor(ms / 60_000);
  const seconds = (ms % 60_000) / 1000;
  if (minutes === 0) return `${seconds}s`;
  return seconds === 0 ? `${minutes}m` : `${minutes}m${seconds}s`;
}
