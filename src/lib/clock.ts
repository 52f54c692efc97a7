/**
 * Time is injected so tests can reason about leases and deadlines. Production code takes a
 * `Clock` and never calls Date.now() directly where a decision depends on it.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}
