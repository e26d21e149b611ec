// metav1.Condition and the rules of apimachinery's meta.SetStatusCondition, so that
// kubectl, Argo CD and Flux (kstatus) read our status the way they read built-in kinds.

export type ConditionStatus = "True" | "False" | "Unknown";

export interface Condition {
  /** CamelCase, e.g. `Ready`; optionally prefixed by a DNS subdomain and `/`. */
  type: string;
  status: ConditionStatus;
  /** CamelCase machine-readable cause, e.g. `SecretNotFound`. */
  reason: string;
  message: string;
  /** `metadata.generation` the condition was computed from. */
  observedGeneration?: number;
  /** RFC 3339 time of the last change of `status`. */
  lastTransitionTime: string;
}

/** A condition as a reconciler states it; `lastTransitionTime` is filled in by `setCondition`. */
export type ConditionInput = Omit<Condition, "lastTransitionTime"> & { lastTransitionTime?: string };

const TYPE_PATTERN =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/;
const REASON_PATTERN = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/;
const STATUSES: readonly string[] = ["True", "False", "Unknown"];

/** Kubernetes serialises metav1.Time with second precision. */
export function kubeTime(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

/**
 * Returns `conditions` with `input` set, following meta.SetStatusCondition:
 * a new type is appended; for an existing type, `lastTransitionTime` changes only
 * when `status` changes, while reason, message and observedGeneration are always
 * updated. The input array is not modified; the order of types is kept.
 * Throws on values the API server's validation of metav1.Condition would reject.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  input: ConditionInput,
  now: Date = new Date(),
): Condition[] {
  validateCondition(input);
  const list = conditions ?? [];
  const existing = list.find((c) => c.type === input.type);
  const lastTransitionTime =
    existing && existing.status === input.status
      ? existing.lastTransitionTime
      : (input.lastTransitionTime ?? kubeTime(now));
  const next: Condition = {
    type: input.type,
    status: input.status,
    reason: input.reason,
    message: input.message,
    ...(input.observedGeneration === undefined ? {} : { observedGeneration: input.observedGeneration }),
    lastTransitionTime,
  };
  if (!existing) return [...list, next];
  return list.map((c) => (c === existing ? next : c));
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isConditionTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === "True";
}

export function removeCondition(conditions: readonly Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type);
}

export function validateCondition(input: ConditionInput): void {
  const problems: string[] = [];
  if (input.type.length > 316 || !TYPE_PATTERN.test(input.type))
    problems.push(`type ${JSON.stringify(input.type)}`);
  if (!STATUSES.includes(input.status)) problems.push(`status ${JSON.stringify(input.status)}`);
  if (input.reason.length > 1024 || !REASON_PATTERN.test(input.reason)) {
    problems.push(`reason ${JSON.stringify(input.reason)} (CamelCase expected)`);
  }
  if (input.message.length > 32768) problems.push("message longer than 32768 characters");
  if (input.observedGeneration !== undefined && !(input.observedGeneration >= 0)) {
    problems.push(`observedGeneration ${input.observedGeneration}`);
  }
  if (problems.length > 0) throw new Error(`invalid condition: ${problems.join(", ")}`);
}
