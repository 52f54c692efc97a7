/**
 * One provider call's abort signal: aborted when the client goes away (the request's signal) or
 * when the provider is silent for too long — before it answers, and between two chunks of a
 * stream. Invariant: `timedOut` is true only when the deadline (not the client) aborted the call.
 */

export class Deadline {
  private readonly controller = new AbortController();
  /** One timer for the whole call, re-armed with `refresh()`: a stream re-arms it per chunk. */
  private timer: NodeJS.Timeout | undefined;
  private armed = false;
  timedOut = false;

  constructor(
    private readonly client: AbortSignal,
    readonly timeoutMs: number,
  ) {
    if (client.aborted) this.controller.abort(client.reason);
    else client.addEventListener('abort', this.onClientAbort, { once: true });
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get clientGone(): boolean {
    return this.client.aborted;
  }

  /** Start (or restart) the silence timer. */
  arm(): void {
    this.armed = true;
    if (this.timer) this.timer.refresh();
    // Unref: the call's own socket keeps the process alive, a paused timer must not.
    else this.timer = setTimeout(this.onTimeout, this.timeoutMs).unref();
  }

  /** Pause the silence timer (cheap: the timer stays scheduled and does nothing when it fires unarmed). */
  disarm(): void {
    this.armed = false;
  }

  /** Stop watching: the call is over. */
  close(): void {
    this.armed = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.client.removeEventListener('abort', this.onClientAbort);
  }

  /** Abort the provider call (the client stopped reading). */
  abort(): void {
    this.controller.abort(new Error('the client stopped reading'));
  }

  get seconds(): string {
    const s = this.timeoutMs / 1000;
    return Number.isInteger(s) ? String(s) : s.toFixed(1);
  }

  private readonly onTimeout = (): void => {
    if (!this.armed) return;
    this.timedOut = true;
    this.controller.abort(new Error(`the provider did not answer within ${this.seconds} s`));
  };

  private readonly onClientAbort = (): void => {
    this.controller.abort(this.client.reason);
  };
}
