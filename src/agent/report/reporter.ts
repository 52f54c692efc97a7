/**
 * The agent's reporter: numbers transcript events (the agent's own `seq`, from 1), batches them
 * and uploads them to the task gateway, retrying with capped backoff until the gateway has them.
 *
 * Invariants:
 * - Seqs are assigned at `emit`, consecutive, never reused; an event stays queued until the
 *   gateway's answer shows it has it (`next_seq` beyond it), so a retry after a lost answer is a
 *   harmless replay (the gateway drops seqs it already has).
 * - One upload at a time, oldest events first.
 * - Every event fits the gateway's per-event limit: oversized data is replaced by a note saying
 *   so (the harness splits output itself; this only guards against a harness bug).
 */
import { Backoff } from '../../lib/backoff.js';
import { systemClock, type Clock } from '../../lib/clock.js';
import type { AgentEvent } from '../../protocol/gateway.js';
import { MAX_EVENTS_PER_BATCH, MAX_EVENT_DATA_BYTES, type EventKind } from '../../protocol/task.js';
import { GatewayRequestError, type GatewayClient } from './client.js';

/** Collect events this long before uploading: one round trip per burst, not per line, yet live. */
export const FLUSH_DELAY_MS = 10;
/** Upload at once when this much JSON is queued: big enough to amortise, far below the 1 MiB body limit. */
export const MAX_BATCH_BYTES = 256 * 1024;
/** Retry delays: start small (a gateway restart is quick), cap at 5 s so a recovered gateway is used soon. */
const RETRY_BASE_MS = 100;
const RETRY_CAP_MS = 5_000;

export interface ReporterOptions {
  clock?: Clock;
  /** Where the reporter says why it gave up (the agent's stderr). */
  warn?: (message: string) => void;
  /** Test seam: the delay before each retry. */
  backoff?: Backoff;
  flushDelayMs?: number;
}

interface Queued {
  event: AgentEvent;
  bytes: number;
}

export class Reporter {
  private nextSeq = 1;
  private readonly queue: Queued[] = [];
  private queuedBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private uploading: Promise<void> | undefined;
  private readonly backoff: Backoff;
  private readonly clock: Clock;
  private readonly warn: (message: string) => void;
  private readonly flushDelayMs: number;
  /** Set once the reporter stops trying (deadline passed, or the gateway refused the events for good). */
  private givenUp: string | undefined;
  private deadline = Number.POSITIVE_INFINITY;
  private closed = false;
  private wakeSleep: (() => void) | undefined;
  /** Aborts the upload in flight when the reporter gives up (a hung gateway must not hold the exit). */
  private readonly inflight = new AbortController();

  constructor(
    private readonly client: GatewayClient,
    options: ReporterOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.warn = options.warn ?? (() => undefined);
    this.backoff = options.backoff ?? new Backoff({ baseMs: RETRY_BASE_MS, capMs: RETRY_CAP_MS });
    this.flushDelayMs = options.flushDelayMs ?? FLUSH_DELAY_MS;
  }

  /** Events emitted so far. */
  get emitted(): number {
    return this.nextSeq - 1;
  }

  /** Events not yet acknowledged by the gateway. */
  get pending(): number {
    return this.queue.length;
  }

  /**
   * Queue one event; it is uploaded within FLUSH_DELAY_MS (sooner when a batch is full). After
   * `close()` events are dropped: the result has been (or is being) reported and the transcript
   * is complete.
   */
  emit(kind: EventKind, data: Record<string, unknown>): void {
    if (this.closed) return;
    let json = JSON.stringify(data);
    let bytes = Buffer.byteLength(json, 'utf8');
    if (bytes > MAX_EVENT_DATA_BYTES) {
      const note = { truncated: true, original_bytes: bytes, message: `this ${kind} event was ${bytes} bytes, over the ${MAX_EVENT_DATA_BYTES}-byte limit, and was dropped` };
      json = JSON.stringify(note);
      bytes = Buffer.byteLength(json, 'utf8');
      data = note;
    }
    const event: AgentEvent = { seq: this.nextSeq++, ts: this.clock.now(), kind, data: JSON.parse(json) as Record<string, unknown> };
    this.queue.push({ event, bytes });
    this.queuedBytes += bytes;
    if (this.givenUp) return;
    if (this.queue.length >= MAX_EVENTS_PER_BATCH || this.queuedBytes >= MAX_BATCH_BYTES) this.kick();
    else this.timer ??= setTimeout(() => this.kick(), this.flushDelayMs);
  }

  /** Resolves once every event emitted so far is acknowledged (or the reporter gave up). */
  async flush(): Promise<void> {
    while (this.queue.length > 0 && !this.givenUp) {
      this.kick();
      await this.uploading;
    }
  }

  /**
   * Upload everything, retrying until `deadlineMs` from now, then stop. Returns true when the
   * gateway has every event.
   */
  async close(deadlineMs: number): Promise<boolean> {
    this.deadline = this.clock.now() + deadlineMs;
    const timer = setTimeout(() => {
      this.giveUp(`the task gateway did not take ${this.queue.length} event(s) within ${deadlineMs} ms`);
    }, deadlineMs);
    try {
      await this.flush();
    } finally {
      this.closed = true;
      clearTimeout(timer);
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    return this.queue.length === 0;
  }

  private giveUp(why: string): void {
    if (this.givenUp) return;
    this.givenUp = why;
    this.warn(`airlock agent: giving up on reporting events: ${why}`);
    this.inflight.abort();
    this.wakeSleep?.();
  }

  private kick(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.uploading || this.givenUp || this.queue.length === 0) return;
    this.uploading = this.uploadAll().finally(() => {
      this.uploading = undefined;
    });
  }

  private async uploadAll(): Promise<void> {
    while (this.queue.length > 0 && !this.givenUp) {
      const batch: AgentEvent[] = [];
      let bytes = 0;
      for (const item of this.queue) {
        if (batch.length >= MAX_EVENTS_PER_BATCH || (batch.length > 0 && bytes + item.bytes > MAX_BATCH_BYTES)) break;
        batch.push(item.event);
        bytes += item.bytes;
      }
      try {
        const answer = await this.client.uploadEvents(batch, { signal: this.inflight.signal });
        this.acknowledge(answer.next_seq);
        this.backoff.reset();
      } catch (err) {
        if (this.givenUp) return;
        if (err instanceof GatewayRequestError && err.code === 'conflict' && err.expectedSeq !== undefined) {
          // The gateway already has everything before expectedSeq (an earlier answer was lost).
          const first = this.queue[0]?.event.seq ?? this.nextSeq;
          if (err.expectedSeq > first) {
            this.acknowledge(err.expectedSeq);
            continue;
          }
          this.giveUp(`the gateway expects seq ${err.expectedSeq} but the oldest unsent event is ${first}: ${err.message}`);
          return;
        }
        if (err instanceof GatewayRequestError && !err.retryable) {
          this.giveUp(err.message);
          return;
        }
        const delay = Math.min(this.backoff.next(), Math.max(0, this.deadline - this.clock.now()));
        await this.sleep(delay);
      }
    }
  }

  private acknowledge(nextSeq: number): void {
    while (this.queue.length > 0 && this.queue[0]!.event.seq < nextSeq) {
      this.queuedBytes -= this.queue.shift()!.bytes;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeSleep = () => {
        this.wakeSleep = undefined;
        done();
      };
    });
  }
}
