/**
 * Records (store shapes, milliseconds) → views (API shapes, snake_case, ISO-8601 times). The one
 * place the API's representation of a task, execution, event or worker is decided; routes and
 * SSE streams call these and nothing else.
 */
import { z } from 'zod';
import { isoTime } from '../../lib/clock.js';
import { ValidationError } from '../../protocol/errors.js';
import type { Artifacts, EventView, ExecutionView, TaskView } from '../../protocol/task.js';
import { latestArtifacts, totalUsage } from '../dispatch/results.js';
import { recipeResources, type EventRecord, type ExecutionRecord, type TaskRecord, type WorkerRecord } from '../store/store.js';

function isoOrNull(ms: number | null): string | null {
  return ms === null ? null : isoTime(ms);
}

export function executionView(execution: ExecutionRecord): ExecutionView {
  return {
    id: execution.id,
    worker_id: execution.workerId,
    epoch: execution.epoch,
    state: execution.state,
    failure_reason: execution.failureReason,
    message: execution.message,
    exit_code: execution.exitCode,
    created_at: isoTime(execution.createdAt),
    started_at: isoOrNull(execution.startedAt),
    finished_at: isoOrNull(execution.finishedAt),
  };
}

/** Artifacts without their diffs (task list pages: 200 tasks × 256 KiB of diff is not a page). */
function withoutDiffs(artifacts: Artifacts): Artifacts {
  return { ...artifacts, diff: null, repositories: artifacts.repositories.map((r) => ({ ...r, diff: '' })) };
}

/**
 * Executions are listed oldest first (by ordinal), whatever order the store returned.
 * `artifacts` is the latest execution's that reported any; `usage` the sum over executions.
 * With `diffs: false` (list pages) the artifacts carry no diff text.
 */
export function taskView(task: TaskRecord, executions: readonly ExecutionRecord[], options: { diffs?: boolean } = {}): TaskView {
  const artifacts = latestArtifacts(executions);
  return {
    id: task.id,
    title: task.title,
    state: task.state,
    prompt: task.prompt,
    harness: task.harness,
    worker_id: task.workerId,
    timeout_seconds: task.timeoutSeconds,
    failure_reason: task.failureReason,
    message: task.message,
    exit_code: task.exitCode,
    cancel_requested: task.cancelRequested,
    created_at: isoTime(task.createdAt),
    updated_at: isoTime(task.updatedAt),
    started_at: isoOrNull(task.startedAt),
    finished_at: isoOrNull(task.finishedAt),
    environment_id: task.environmentId,
    repositories: task.recipe.repositories.map((r) => (r.ref === undefined ? { url: r.url } : { url: r.url, ref: r.ref })),
    resources: recipeResources(task.recipe),
    budget: task.budget,
    model: task.model,
    push: task.push,
    artifacts: artifacts && options.diffs === false ? withoutDiffs(artifacts) : artifacts,
    usage: totalUsage(executions),
    executions: [...executions].sort((a, b) => a.ordinal - b.ordinal).map(executionView),
  };
}

// ── transcript positions ──

/** Where an event sits in its task's transcript: execution ordinal, then sequence number. */
export interface EventPosition {
  ordinal: number;
  seq: number;
}

export function formatPosition(position: EventPosition): string {
  return `${position.ordinal}.${position.seq}`;
}

/** Positions are `<ordinal>.<seq>`, both positive integers that fit comfortably in a JS number. */
const POSITION_PATTERN = /^(\d{1,15})\.(\d{1,15})$/;

/**
 * Parse a position given by a client (`Last-Event-ID`, `?after=`). `source` names where it came
 * from, so the error tells the client which input to fix.
 */
export function parsePosition(input: string, source: string): EventPosition {
  const match = POSITION_PATTERN.exec(input.trim());
  if (!match) {
    throw new ValidationError(`${source} must be an event id like "1.42" (execution ordinal, then sequence number), got ${JSON.stringify(input.slice(0, 40))} — pass back the id of the last event you received`, {
      field: source,
    });
  }
  return { ordinal: Number(match[1]), seq: Number(match[2]) };
}

export function comparePositions(a: EventPosition, b: EventPosition): number {
  return a.ordinal - b.ordinal || a.seq - b.seq;
}

export function eventView(event: EventRecord): EventView {
  return {
    id: formatPosition(event),
    execution_id: event.executionId,
    seq: event.seq,
    ts: event.ts,
    kind: event.kind,
    data: event.data,
  };
}

// ── workers ──

/** A worker as `GET /api/v1/workers` shows it (the protocol has no view of its own for workers). */
export const WorkerView = z.object({
  worker_id: z.string(),
  version: z.string(),
  backend: z.string(),
  labels: z.record(z.string(), z.string()),
  capacity: z.number().int().describe('execution slots the worker offered when it last said hello'),
  connected: z.boolean().describe('whether the worker holds a live connection to this server'),
  draining: z.boolean().describe('the worker takes no new work and exits once its executions finish'),
  connected_at: z.string().nullable(),
  last_seen_at: z.string(),
});
export type WorkerView = z.infer<typeof WorkerView>;

export function workerView(worker: WorkerRecord): WorkerView {
  return {
    worker_id: worker.workerId,
    version: worker.version,
    backend: worker.backend,
    labels: worker.labels,
    capacity: worker.capacity,
    connected: worker.connected,
    draining: worker.draining,
    connected_at: isoOrNull(worker.connectedAt),
    last_seen_at: isoTime(worker.lastSeenAt),
  };
}
