/**
 * The agent's control poller: long-polls the task gateway's /v1/control and turns what it hears
 * into what a harness understands — a cancel becomes an aborted AbortSignal, follow-up messages
 * become an async iterable, in order, each once.
 *
 * Invariants: a message is delivered once even across retries (the poller asks only for indexes
 * after the last one it saw); a cancel is final (polling stops); `stop()` ends the message
 * iterable so a harness's `for await` finishes.
 */
import { Backoff } from '../lib/backoff.js';
import type { FollowUpMessage } from './harness/harness.js';
import type { GatewayClient } from './report/client.js';

/** Below the gateway's 30 s cap, so the gateway — not a proxy or our timeout — ends each poll. */
const LONG_POLL_WAIT_MS = 25_000;
/** Retry delays after a failed poll: quick after a blip, at most 5 s so a cancel is seen soon after the gateway is back. */
const RETRY_BASE_MS = 200;
const RETRY_CAP_MS = 5_000;

/** A single-consumer queue that is also an async iterable. */
export class AsyncQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private readonly takers: Array<(result: IteratorResult<T>) => void> = [];
  private ended = false;

  push(item: T): void {
    if (this.ended) return;
    const taker = this.takers.shift();
    if (taker) taker({ value: item, done: false });
    else this.items.push(item);
  }

  end(): void {
    this.ended = true;
    for (const taker of this.takers.splice(0)) taker({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        const item = this.items.shift();
        if (item !== undefined) return Promise.resolve({ value: item, done: false });
        if (this.ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => this.takers.push(resolve));
      },
      return: () => {
        this.end();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

export interface ControlPollerOptions {
  waitMs?: number;
  backoff?: Backoff;
  warn?: (message: string) => void;
}

export class ControlPoller {
  private readonly abort = new AbortController();
  private readonly stopper = new AbortController();
  private readonly queue = new AsyncQueue<FollowUpMessage>();
  private after = 0;
  private loop: Promise<void> | undefined;
  private readonly waitMs: number;
  private readonly backoff: Backoff;
  private readonly warn: (message: string) => void;

  constructor(
    private readonly client: GatewayClient,
    options: ControlPollerOptions = {},
  ) {
    this.waitMs = options.waitMs ?? LONG_POLL_WAIT_MS;
    this.backoff = options.backoff ?? new Backoff({ baseMs: RETRY_BASE_MS, capMs: RETRY_CAP_MS });
    this.warn = options.warn ?? (() => undefined);
  }

  /** Aborted (with the cancel reason) when the task is cancelled. */
  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** Follow-up messages, in order. One consumer. */
  messages(): AsyncIterable<FollowUpMessage> {
    return this.queue;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Stop polling and end the message iterable. */
  async stop(): Promise<void> {
    this.stopper.abort();
    this.queue.end();
    await this.loop;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopper.signal.aborted && !this.abort.signal.aborted) {
      try {
        const state = await this.client.control(this.after, this.waitMs, { signal: this.stopper.signal });
        failures = 0;
        this.backoff.reset();
        for (const message of state.messages) {
          if (message.index <= this.after) continue;
          this.after = message.index;
          this.queue.push({ id: message.id, text: message.text });
        }
        if (state.cancel) this.abort.abort(new Error(`cancelled: ${state.cancel.reason}`));
      } catch (err) {
        if (this.stopper.signal.aborted) break;
        failures++;
        // Say it once per outage, not once per retry.
        if (failures === 1) this.warn(`airlock agent: polling the task gateway for cancellation failed (will retry): ${(err as Error).message}`);
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            this.stopper.signal.removeEventListener('abort', done);
            resolve();
          };
          const timer = setTimeout(done, this.backoff.next());
          this.stopper.signal.addEventListener('abort', done, { once: true });
        });
      }
    }
  }
}
