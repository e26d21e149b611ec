import type { CircuitBreakerSettings } from "../../contract/routing-config.ts";

// Endpoint health, per webhook: after `consecutiveFailures` failed attempts in a row its circuit
// opens and its deliveries wait (handed back to the schedule, no attempt made, none of their
// attempts spent) until a cooldown has passed; then one delivery is let through as a probe
// (half-open). A probe that succeeds closes the circuit; one that fails opens it again for twice
// the cooldown, up to `maxCooldownMs`. Each dispatcher replica keeps its own circuits (as Envoy's
// outlier detection does per host): a replica learns of a dead endpoint from its own attempts.

export type CircuitState = "closed" | "open" | "half-open";

export type Admission = { admitted: true } | { admitted: false; retryAfterMs: number };

interface Circuit {
  state: CircuitState;
  failures: number;
  /** current cooldown, ms */
  cooldownMs: number;
  /** when an open circuit lets a probe through (clock ms) */
  probeAt: number;
  /** a probe attempt is under way (half-open) */
  probing: boolean;
}

/** How long others wait while a probe is under way, before asking again. */
const PROBE_WAIT_MS = 1_000;

export interface CircuitEvent {
  key: string;
  state: CircuitState;
  /** open: how long until the next probe */
  cooldownMs?: number;
}

export class CircuitBreakers {
  readonly #circuits = new Map<string, Circuit>();
  readonly #now: () => number;
  readonly #onChange: (event: CircuitEvent) => void;

  constructor(options: { now?: () => number; onChange?: (event: CircuitEvent) => void } = {}) {
    this.#now = options.now ?? (() => performance.now());
    this.#onChange = options.onChange ?? (() => {});
  }

  /** Circuits open or half-open now. */
  get unhealthy(): number {
    let count = 0;
    for (const circuit of this.#circuits.values()) if (circuit.state !== "closed") count++;
    return count;
  }

  state(key: string): CircuitState {
    return this.#circuits.get(key)?.state ?? "closed";
  }

  /** Whether an attempt to the webhook `key` may start now (a probe, when half-open). */
  admit(key: string, settings: CircuitBreakerSettings): Admission {
    const circuit = this.#circuits.get(key);
    if (circuit === undefined || circuit.state === "closed" || settings.consecutiveFailures === 0) {
      return { admitted: true };
    }
    const now = this.#now();
    if (circuit.state === "open") {
      if (now < circuit.probeAt) return { admitted: false, retryAfterMs: Math.ceil(circuit.probeAt - now) };
      this.#set(key, circuit, "half-open");
    }
    if (circuit.probing) return { admitted: false, retryAfterMs: PROBE_WAIT_MS };
    circuit.probing = true;
    return { admitted: true };
  }

  /** An admitted attempt that was not made after all (handed back): its probe slot is free again. */
  abandon(key: string): void {
    const circuit = this.#circuits.get(key);
    if (circuit?.state === "half-open") circuit.probing = false;
  }

  /** The outcome of an admitted attempt (`failed`: the endpoint did not take it). */
  record(key: string, failed: boolean, settings: CircuitBreakerSettings): void {
    if (settings.consecutiveFailures === 0) {
      this.#circuits.delete(key);
      return;
    }
    let circuit = this.#circuits.get(key);
    if (!failed) {
      if (circuit !== undefined) {
        this.#circuits.delete(key);
        if (circuit.state !== "closed") this.#onChange({ key, state: "closed" });
      }
      return;
    }
    if (circuit === undefined) {
      circuit = { state: "closed", failures: 0, cooldownMs: settings.cooldownMs, probeAt: 0, probing: false };
      this.#circuits.set(key, circuit);
    }
    circuit.failures++;
    if (circuit.state === "half-open") {
      circuit.cooldownMs = Math.min(settings.maxCooldownMs, circuit.cooldownMs * 2);
      this.#open(key, circuit);
    } else if (circuit.state === "closed" && circuit.failures >= settings.consecutiveFailures) {
      circuit.cooldownMs = Math.min(settings.maxCooldownMs, settings.cooldownMs);
      this.#open(key, circuit);
    }
  }

  #open(key: string, circuit: Circuit): void {
    circuit.probing = false;
    circuit.probeAt = this.#now() + circuit.cooldownMs;
    this.#set(key, circuit, "open");
  }

  #set(key: string, circuit: Circuit, state: CircuitState): void {
    circuit.state = state;
    this.#onChange({ key, state, ...(state === "open" ? { cooldownMs: circuit.cooldownMs } : {}) });
  }
}
