/**
 * Capped exponential backoff with full jitter (delay drawn uniformly from [0, min(cap, base·2^n)]):
 * after a server restart, a fleet of workers spreads its reconnects over the whole window
 * instead of arriving in synchronized waves.
 */
export interface BackoffOptions {
  baseMs: number;
  capMs: number;
  /** Injected for tests; returns a number in [0, 1). */
  random?: () => number;
}

export class Backoff {
  private attempt = 0;
  constructor(private readonly options: BackoffOptions) {}

  /** The delay before the next attempt; each call counts as one more failure. */
  next(): number {
    const ceiling = Math.min(this.options.capMs, this.options.baseMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.floor((this.options.random ?? Math.random)() * ceiling);
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
