import {
  ENDPOINT_HEALTH_WINDOW,
  type EndpointHealth,
  type EndpointHealthState,
} from "../../contract/endpoint-health.ts";
import type { CircuitState } from "./circuit-breaker.ts";

// What one replica learns about each webhook's endpoint from its own attempts: failures in a
// row, the failure ratio over the last ENDPOINT_HEALTH_WINDOW attempts, the current run of
// failures, and its circuit (circuit-breaker.ts). `due` hands out the records worth publishing:
// a changed state at once, other changes at most every `minIntervalMs` per webhook, and nothing
// while a record stays the same, so a healthy webhook costs no Redis write at all.

/** A failure ratio at or above this (with no failure in a row) reads as Degraded. */
export const DEGRADED_RATIO = 0.2;

interface Tracked {
  uid: string;
  /** outcomes of the last attempts, true = failed (a ring of ENDPOINT_HEALTH_WINDOW) */
  window: boolean[];
  next: number;
  failures: number;
  consecutive: number;
  firstFailureAt?: number;
  lastFailureAt?: number;
  lastFailureReason?: string;
  lastSuccessAt?: number;
  circuit: CircuitState;
  nextProbeAt?: number;
  dirty: boolean;
  published?: { state: EndpointHealthState; signature: string; at: number };
}

export class EndpointHealthTracker {
  readonly #webhooks = new Map<string, Tracked>();
  readonly #minIntervalMs: number;

  constructor(options: { minIntervalMs?: number } = {}) {
    this.#minIntervalMs = options.minIntervalMs ?? 5_000;
  }

  /** An attempt's outcome (`failure`: why it failed, absent when the endpoint took it). */
  record(key: string, uid: string, failure: string | undefined, nowMs: number): void {
    const tracked = this.#tracked(key, uid);
    if (tracked.window.length < ENDPOINT_HEALTH_WINDOW) tracked.window.push(failure !== undefined);
    else {
      if (tracked.window[tracked.next]) tracked.failures--;
      tracked.window[tracked.next] = failure !== undefined;
      tracked.next = (tracked.next + 1) % ENDPOINT_HEALTH_WINDOW;
    }
    if (failure === undefined) {
      tracked.consecutive = 0;
      delete tracked.firstFailureAt;
      tracked.lastSuccessAt = nowMs;
    } else {
      tracked.failures++;
      tracked.consecutive++;
      tracked.firstFailureAt ??= nowMs;
      tracked.lastFailureAt = nowMs;
      tracked.lastFailureReason = failure;
    }
    tracked.dirty = true;
  }

  /** The webhook's circuit changed (`nextProbeAt`: epoch ms, when it opened). */
  circuit(key: string, state: CircuitState, nextProbeAt?: number): void {
    const tracked = this.#webhooks.get(key);
    if (!tracked) return;
    tracked.circuit = state;
    if (state === "closed") delete tracked.nextProbeAt;
    else if (nextProbeAt !== undefined) tracked.nextProbeAt = nextProbeAt;
    tracked.dirty = true;
  }

  /** The webhook's record as it stands. */
  snapshot(key: string, nowMs: number): EndpointHealth | undefined {
    const tracked = this.#webhooks.get(key);
    return tracked && this.#record(tracked, nowMs);
  }

  /** Records to publish now; each is counted as published (`retry` puts them back on failure). */
  due(nowMs: number): Array<{ field: string; health: EndpointHealth }> {
    const out: Array<{ field: string; health: EndpointHealth }> = [];
    for (const [key, tracked] of this.#webhooks) {
      if (!tracked.dirty) continue;
      const health = this.#record(tracked, nowMs);
      // a success alone is no news (the success in a row that ends a run changes other fields)
      const { updatedAt: _, lastSuccessAt: _success, ...rest } = health;
      const signature = JSON.stringify(rest);
      const { published } = tracked;
      if (published === undefined ? health.state === "Healthy" : published.signature === signature) {
        tracked.dirty = false; // nothing new to say (absent means Healthy)
        continue;
      }
      const stateChanged = published === undefined || published.state !== health.state;
      if (!stateChanged && nowMs - published.at < this.#minIntervalMs) continue; // later
      tracked.dirty = false;
      tracked.published = { state: health.state, signature, at: nowMs };
      out.push({ field: key, health });
    }
    return out;
  }

  /** A publication failed: its records are due again. */
  retry(fields: readonly string[]): void {
    for (const field of fields) {
      const tracked = this.#webhooks.get(field);
      if (!tracked) continue;
      delete tracked.published;
      tracked.dirty = true;
    }
  }

  #tracked(key: string, uid: string): Tracked {
    let tracked = this.#webhooks.get(key);
    if (tracked === undefined || tracked.uid !== uid) {
      tracked = { uid, window: [], next: 0, failures: 0, consecutive: 0, circuit: "closed", dirty: false };
      this.#webhooks.set(key, tracked);
    }
    return tracked;
  }

  #record(tracked: Tracked, nowMs: number): EndpointHealth {
    const attempts = tracked.window.length;
    const failureRatio = attempts === 0 ? 0 : Math.round((tracked.failures / attempts) * 100) / 100;
    const state: EndpointHealthState =
      tracked.circuit !== "closed"
        ? "CircuitOpen"
        : tracked.consecutive > 0 || failureRatio >= DEGRADED_RATIO
          ? "Degraded"
          : "Healthy";
    return {
      uid: tracked.uid,
      state,
      consecutiveFailures: tracked.consecutive,
      failureRatio,
      windowAttempts: attempts,
      ...(tracked.firstFailureAt === undefined ? {} : { firstFailureAt: tracked.firstFailureAt }),
      ...(tracked.lastFailureAt === undefined ? {} : { lastFailureAt: tracked.lastFailureAt }),
      ...(tracked.lastFailureReason === undefined ? {} : { lastFailureReason: tracked.lastFailureReason }),
      ...(tracked.lastSuccessAt === undefined ? {} : { lastSuccessAt: tracked.lastSuccessAt }),
      ...(tracked.nextProbeAt === undefined || state !== "CircuitOpen"
        ? {}
        : { nextProbeAt: tracked.nextProbeAt }),
      updatedAt: nowMs,
    };
  }
}

/** A failed attempt's reason as published: the HTTP status or the error code, never a body. */
export function failureSummary(result: { statusCode?: number; errorCode?: string }): string {
  if (result.errorCode === "http_status" && result.statusCode !== undefined)
    return `HTTP ${result.statusCode}`;
  return result.errorCode ?? (result.statusCode === undefined ? "failed" : `HTTP ${result.statusCode}`);
}
