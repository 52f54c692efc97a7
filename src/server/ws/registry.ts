/**
 * The live worker sessions on this server: one per connected (team, worker id). A second
 * connection with the same worker id replaces the first (the old one is closed with
 * `replaced`), so a worker that reconnects before the server noticed the old socket died is
 * never offered work twice.
 *
 * A session's free slots are computed here, not trusted from the worker: capacity minus
 * outstanding offers minus executions it holds, and zero while it drains.
 */
import type { WebSocket } from 'ws';
import type { ServerMessage } from '../../protocol/worker-messages.js';

export interface WorkerSession {
  readonly teamId: string;
  readonly workerId: string;
  readonly sessionId: string;
  readonly socket: WebSocket;
  capacity: number;
  draining: boolean;
  /** Offers sent and not yet claimed or declined: offer id → execution id. */
  readonly offers: Map<string, string>;
  /** Executions this worker holds a lease on: execution id → what reports need to know. */
  readonly executions: Map<string, { taskId: string; ordinal: number; epoch: number }>;
  send(message: ServerMessage): void;
}

export function freeSlots(session: WorkerSession): number {
  if (session.draining) return 0;
  return Math.max(0, session.capacity - session.offers.size - session.executions.size);
}

export class WorkerRegistry {
  private readonly sessions = new Map<string, WorkerSession>();

  private static key(teamId: string, workerId: string): string {
    return `${teamId}\u0000${workerId}`;
  }

  /** Register a session; returns the one it replaces, if any (the caller closes it). */
  add(session: WorkerSession): WorkerSession | undefined {
    const key = WorkerRegistry.key(session.teamId, session.workerId);
    const previous = this.sessions.get(key);
    this.sessions.set(key, session);
    return previous;
  }

  /** Remove a session, unless it was already replaced by a newer one. Returns whether it was current. */
  remove(session: WorkerSession): boolean {
    const key = WorkerRegistry.key(session.teamId, session.workerId);
    if (this.sessions.get(key) !== session) return false;
    this.sessions.delete(key);
    return true;
  }

  get(teamId: string, workerId: string): WorkerSession | undefined {
    return this.sessions.get(WorkerRegistry.key(teamId, workerId));
  }

  all(): IterableIterator<WorkerSession> {
    return this.sessions.values();
  }

  get size(): number {
    return this.sessions.size;
  }
}
