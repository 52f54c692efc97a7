/**
 * Raw rows → records. The one place a database row becomes something the rest of the server
 * sees, for both dialects: bigint milliseconds arrive as strings from PostgreSQL and as numbers
 * from SQLite (hence `Number(...)`), flags are 0/1, JSON columns are text.
 *
 * Invariant: the state, role and reason strings read here were written by this store through
 * protocol/lifecycle.ts, so they are cast rather than re-validated on every read.
 */
import type { Selectable } from 'kysely';
import type { ExecutionState, FailureReason, TaskState } from '../../protocol/lifecycle.js';
import type { Artifacts, Budget, EventKind, PullRequestOptions } from '../../protocol/task.js';
import type { ApiKeysTable, AuditLogTable, EnvironmentsTable, EventsTable, ExecutionsTable, MessagesTable, TasksTable, TeamsTable, WorkersTable } from './schema.js';
import type {
  ApiKeyRecord,
  AuditRecord,
  EnvironmentRecord,
  EventRecord,
  ExecutionRecord,
  MessageRecord,
  Role,
  TaskRecipe,
  TaskRecord,
  TeamRecord,
  WorkerRecord,
} from './store.js';
import { emptyRecipe } from './store.js';

function ms(value: number | string): number {
  return Number(value);
}

function msOrNull(value: number | string | null): number | null {
  return value === null ? null : Number(value);
}

function json<T>(text: string): T {
  return JSON.parse(text) as T;
}

export function teamFromRow(r: Selectable<TeamsTable>): TeamRecord {
  return { id: r.id, name: r.name, createdAt: ms(r.created_at) };
}

export function apiKeyFromRow(r: Selectable<ApiKeysTable>): ApiKeyRecord {
  return {
    id: r.id,
    teamId: r.team_id,
    role: r.role as Role,
    name: r.name,
    hash: r.hash,
    createdAt: ms(r.created_at),
    revokedAt: msOrNull(r.revoked_at),
  };
}

export function workerFromRow(r: Selectable<WorkersTable>): WorkerRecord {
  return {
    teamId: r.team_id,
    workerId: r.worker_id,
    version: r.version,
    backend: r.backend,
    labels: json<Record<string, string>>(r.labels),
    capacity: Number(r.capacity),
    connected: Number(r.connected) === 1,
    draining: Number(r.draining) === 1,
    connectedAt: msOrNull(r.connected_at),
    lastSeenAt: ms(r.last_seen_at),
  };
}

export function taskFromRow(r: Selectable<TasksTable>): TaskRecord {
  return {
    id: r.id,
    teamId: r.team_id,
    title: r.title,
    state: r.state as TaskState,
    prompt: r.prompt,
    harness: r.harness,
    workerId: r.worker_id,
    timeoutSeconds: r.timeout_seconds === null ? null : Number(r.timeout_seconds),
    failureReason: r.failure_reason as FailureReason | null,
    message: r.message,
    exitCode: r.exit_code === null ? null : Number(r.exit_code),
    cancelRequested: Number(r.cancel_requested) === 1,
    epoch: Number(r.epoch),
    createdAt: ms(r.created_at),
    updatedAt: ms(r.updated_at),
    startedAt: msOrNull(r.started_at),
    finishedAt: msOrNull(r.finished_at),
    environmentId: r.environment_id,
    // NULL (no recipe, the common case on the dispatch hot path) costs no JSON.parse.
    recipe: r.recipe === null ? emptyRecipe() : recipeFromJson(r.recipe),
    budget: r.budget === null ? null : json<Budget>(r.budget),
    model: r.model,
    push: Number(r.push) === 1,
    pullRequest: r.pull_request === null ? null : json<PullRequestOptions>(r.pull_request),
  };
}

/** A stored recipe; those written before migration 0005 have no size fields (none: the defaults). */
function recipeFromJson(text: string): TaskRecipe {
  const recipe = json<Partial<TaskRecipe>>(text);
  return { ...recipe, cpus: recipe.cpus ?? null, memory: recipe.memory ?? null } as TaskRecipe;
}

export function executionFromRow(r: Selectable<ExecutionsTable>): ExecutionRecord {
  return {
    id: r.id,
    taskId: r.task_id,
    teamId: r.team_id,
    ordinal: Number(r.ordinal),
    workerId: r.worker_id,
    epoch: Number(r.epoch),
    state: r.state as ExecutionState,
    offerId: r.offer_id,
    offerDeadline: ms(r.offer_deadline),
    leaseExpiresAt: msOrNull(r.lease_expires_at),
    failureReason: r.failure_reason as FailureReason | null,
    message: r.message,
    exitCode: r.exit_code === null ? null : Number(r.exit_code),
    createdAt: ms(r.created_at),
    startedAt: msOrNull(r.started_at),
    finishedAt: msOrNull(r.finished_at),
    artifacts: r.artifacts === null ? null : json<Artifacts>(r.artifacts),
    usage: { input_tokens: Number(r.input_tokens), output_tokens: Number(r.output_tokens), requests: Number(r.requests) },
  };
}

export function eventFromRow(r: Selectable<EventsTable>): EventRecord {
  return {
    taskId: r.task_id,
    executionId: r.execution_id,
    ordinal: Number(r.ordinal),
    seq: Number(r.seq),
    ts: ms(r.ts),
    kind: r.kind as EventKind,
    data: json<Record<string, unknown>>(r.data),
  };
}

export function messageFromRow(r: Selectable<MessagesTable>): MessageRecord {
  return { id: r.id, taskId: r.task_id, text: r.text, createdAt: ms(r.created_at) };
}

export function auditFromRow(r: Selectable<AuditLogTable>): AuditRecord {
  return {
    id: Number(r.id),
    teamId: r.team_id,
    actor: r.actor,
    action: r.action,
    target: r.target,
    detail: json<Record<string, unknown>>(r.detail),
    at: ms(r.at),
  };
}

export function environmentFromRow(r: Selectable<EnvironmentsTable>): EnvironmentRecord {
  return {
    id: r.id,
    teamId: r.team_id,
    name: r.name,
    image: r.image,
    repositories: json<EnvironmentRecord['repositories']>(r.repositories),
    setupCommands: json<string[]>(r.setup_commands),
    setupTimeoutSeconds: r.setup_timeout_seconds === null ? null : Number(r.setup_timeout_seconds),
    secretNames: json<string[]>(r.secret_names),
    envNames: json<string[]>(r.env_names),
    cpus: r.cpus === null ? null : Number(r.cpus),
    memory: r.memory === null ? null : json<string | number>(r.memory),
    createdAt: ms(r.created_at),
    updatedAt: ms(r.updated_at),
  };
}
