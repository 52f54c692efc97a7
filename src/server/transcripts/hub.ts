/**
 * In-process fan-out of transcript events and task updates to live followers (SSE clients).
 * Followers first subscribe, then read the stored backlog, then de-duplicate by position, so no
 * event falls between the backlog read and the live stream. With several server replicas
 * (PostgreSQL), a LISTEN/NOTIFY bridge feeds `publish` on every replica.
 */
import type { TranscriptHub, TranscriptListener } from '../context.js';
import type { EventRecord, TaskRecord } from '../store/store.js';

export class MemoryTranscriptHub implements TranscriptHub {
  private readonly listeners = new Map<string, Set<TranscriptListener>>();

  publish(taskId: string, events: EventRecord[]): void {
    if (events.length === 0) return;
    for (const listener of this.listeners.get(taskId) ?? []) listener.onEvents(events);
  }

  publishTaskUpdate(task: TaskRecord): void {
    for (const listener of this.listeners.get(task.id) ?? []) listener.onTask(task);
  }

  subscribe(taskId: string, listener: TranscriptListener): () => void {
    let set = this.listeners.get(taskId);
    if (!set) {
      set = new Set();
      this.listeners.set(taskId, set);
    }
    set.add(listener);
    return () => {
      const current = this.listeners.get(taskId);
      if (!current) return;
      current.delete(listener);
      if (current.size === 0) this.listeners.delete(taskId);
    };
  }

  hasFollowers(taskId: string): boolean {
    return this.listeners.has(taskId);
  }

  /** Number of live followers (for tests proving SSE clients are released). */
  get followerCount(): number {
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }
}
