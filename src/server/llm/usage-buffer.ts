/**
 * Usage increments of the LLM gateway, summed in memory per execution and model and written to
 * the store at most once a second (one upsert per row instead of one per model request: the
 * store write was the largest share of the gateway's own cost per request).
 *
 * Invariants: readers see complete figures — `flush()` runs before the usage report is read and
 * before a finished execution's worker-reported remainder is computed; closing the server
 * flushes. A crash loses at most the last FLUSH_MS of counts, never a body (there are none).
 */
import type { Logger } from 'pino';
import { describeError } from '../../protocol/errors.js';
import type { LlmUsageIncrement } from '../store/llm-usage.js';
import type { Store } from '../store/store.js';

/** Usage shows up in reports within a second; a crash loses at most a second of counts. */
const FLUSH_MS = 1_000;

export class LlmUsageBuffer {
  private pending = new Map<string, LlmUsageIncrement>();
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly flushMs = FLUSH_MS,
  ) {}

  add(increment: LlmUsageIncrement): void {
    const key = `${increment.executionId}\u0000${increment.model}`;
    const row = this.pending.get(key);
    if (row) {
      row.requests += increment.requests;
      row.errors += increment.errors;
      row.inputTokens += increment.inputTokens;
      row.outputTokens += increment.outputTokens;
      row.now = increment.now;
    } else {
      this.pending.set(key, { ...increment });
    }
    this.timer ??= setTimeout(() => void this.flush(), this.flushMs).unref();
  }

  /** Write what is pending (of one execution, or all) and wait for earlier writes. */
  flush(executionId?: string): Promise<void> {
    let rows: LlmUsageIncrement[];
    if (executionId === undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
      rows = [...this.pending.values()];
      this.pending.clear();
    } else {
      rows = [];
      for (const [key, row] of this.pending) {
        if (row.executionId !== executionId) continue;
        rows.push(row);
        this.pending.delete(key);
      }
    }
    const write = this.writing.then(async () => {
      for (const row of rows) {
        await this.store.recordLlmUsage(row).catch((err: unknown) => this.log.error({ execution: row.executionId, err: describeError(err) }, 'llm:usage:record-failed'));
      }
    });
    this.writing = write;
    return write;
  }
}
