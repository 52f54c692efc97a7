/**
 * What the control plane's parts hand each other. The HTTP routes, the worker registry (ws/) and
 * the dispatcher all receive one ServerContext built by server/server.ts; none of them reaches
 * for globals.
 */
import type { Logger } from 'pino';
import type { Clock } from '../lib/clock.js';
import type { Role, Store, TaskRecord, EventRecord, WorkerRecord } from './store/store.js';
import type { ServerMetrics } from './metrics.js';
import type { LlmTokenAuthority } from './llm/tokens.js';
import type { LlmUsageBuffer } from './llm/usage-buffer.js';

export interface Principal {
  teamId: string;
  role: Role;
  /** The API key's public id, for the audit log. */
  keyId: string;
}

export interface ServerSettings {
  /** How long a worker has to claim an offer before the task returns to the queue. */
  claimTimeoutMs: number;
  /** Lease length; workers renew at a quarter of it so three missed heartbeats are tolerated. */
  leaseTtlMs: number;
  /** Grace period between SIGTERM and SIGKILL when a task is cancelled. */
  cancelGraceMs: number;
}

/** Live fan-out of transcript events to SSE subscribers of one task. */
export interface TranscriptHub {
  publish(taskId: string, events: EventRecord[]): void;
  /** Task state changes are published too, so a follower learns the task ended. */
  publishTaskUpdate(task: TaskRecord): void;
  subscribe(taskId: string, listener: TranscriptListener): () => void;
  /** Whether anyone follows this task (lets callers skip work nobody would see). */
  hasFollowers(taskId: string): boolean;
}

export interface TranscriptListener {
  onEvents(events: EventRecord[]): void;
  onTask(task: TaskRecord): void;
}

/** What a wake concerns: one worker's slots, or a team's unrouted queue; none: everything. */
export interface WakeScope {
  teamId: string;
  workerId?: string | null;
}

export interface Dispatch {
  /** Something changed that may let a task be offered: a task created, a slot freed… */
  wake(reason: string, scope?: WakeScope): void;
  /** Cancel a task (see Store.requestCancel) and tell its worker. */
  cancelTask(principal: Principal, taskId: string): Promise<TaskRecord | undefined>;
  /** Deliver a follow-up message to the task's running execution (stored either way). */
  sendMessage(principal: Principal, taskId: string, text: string): Promise<{ id: string; delivered: boolean } | undefined>;
}

export interface WorkerDirectory {
  /** Workers of a team as stored, with `connected` reflecting live connections on this server. */
  list(teamId: string): Promise<WorkerRecord[]>;
}

export interface ServerContext {
  store: Store;
  clock: Clock;
  log: Logger;
  metrics: ServerMetrics;
  settings: ServerSettings;
  hub: TranscriptHub;
  dispatch: Dispatch;
  workers: WorkerDirectory;
  /** Resolve a bearer token to a principal, or undefined if unknown/revoked/malformed. */
  authenticate: (token: string) => Promise<Principal | undefined>;
  /** Mints the task-scoped tokens of the LLM gateway (claimed, heartbeat_ack); absent: none are issued. */
  llmTokens?: LlmTokenAuthority;
  /** The LLM gateway's usage counts not yet written to the store; flush before reading usage. */
  llmUsage?: LlmUsageBuffer;
}
