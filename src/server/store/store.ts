/**
 * The control plane's store port. Adapters: SQLite (embedded default, one file) and PostgreSQL
 * (several server replicas). Both share one Kysely implementation (kysely-store.ts) and differ
 * only in dialect details; one conformance suite (test/unit/store-conformance.ts) runs on both.
 *
 * Invariants every adapter keeps:
 * - Each dispatch operation below is one transaction: a task's state and its active execution
 *   change together or not at all, and every state change goes through protocol/lifecycle.ts.
 * - Fencing: an operation on an execution names its epoch and its worker; if either is not the
 *   current one, or the execution is no longer active, the result is `lease_lost` and nothing
 *   changes.
 * - Events are unique on (execution, seq): appending the same event twice stores it once.
 * - Times are integer milliseconds since the epoch, supplied by the caller's Clock.
 */
import type { ExecutionState, FailureReason, Outcome, TaskState } from '../../protocol/lifecycle.js';
import type { Resources } from '../../protocol/environment.js';
import type { Artifacts, Budget, EventKind, Harness, PullRequestOptions, Usage } from '../../protocol/task.js';
import type { LlmUsageFilter, LlmUsageIncrement, LlmUsageReport } from './llm-usage.js';

export const ROLES = ['admin', 'member', 'worker'] as const;
export type Role = (typeof ROLES)[number];

export interface TeamRecord {
  id: string;
  name: string;
  createdAt: number;
}

export interface ApiKeyRecord {
  /** Public part of the key (also its lookup handle), e.g. `key_abc…`. */
  id: string;
  teamId: string;
  role: Role;
  name: string | null;
  /** Keyed hash (HMAC-SHA256 with the server's secret) of the whole key, hex. Never the key. */
  hash: string;
  createdAt: number;
  revokedAt: number | null;
}

export interface WorkerRecord {
  teamId: string;
  workerId: string;
  version: string;
  backend: string;
  labels: Record<string, string>;
  capacity: number;
  connected: boolean;
  draining: boolean;
  connectedAt: number | null;
  lastSeenAt: number;
}

export interface TaskRecord {
  id: string;
  teamId: string;
  title: string | null;
  state: TaskState;
  prompt: string;
  harness: Harness;
  /** Routing: only this worker may run the task. */
  workerId: string | null;
  timeoutSeconds: number | null;
  failureReason: FailureReason | null;
  message: string | null;
  exitCode: number | null;
  cancelRequested: boolean;
  /** Incremented at every offer; the current execution carries the same epoch. */
  epoch: number;
  createdAt: number;
  updatedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  /** The environment the recipe came from, if any (it may have been changed or deleted since). */
  environmentId: string | null;
  /** The workspace recipe, resolved at creation (environment merged with inline fields). */
  recipe: TaskRecipe;
  budget: Budget | null;
  model: string | null;
  push: boolean;
  pullRequest: PullRequestOptions | null;
}

/**
 * A task's workspace recipe: an environment's fields merged with the task's inline ones, frozen
 * when the task is created so that editing the environment later does not change queued tasks.
 */
export interface TaskRecipe {
  image: string | null;
  repositories: Array<{ url: string; ref?: string }>;
  setupCommands: string[];
  setupTimeoutSeconds: number | null;
  secretNames: string[];
  envNames: string[];
  /** The task's size (migration 0005): CPUs and memory instead of the worker's defaults; null each: the default. */
  cpus: number | null;
  /** As written: a size such as "2g", or a number of bytes. */
  memory: string | number | null;
}

/** A fresh empty recipe (a task without environment or inline recipe fields). */
export function emptyRecipe(): TaskRecipe {
  return { image: null, repositories: [], setupCommands: [], setupTimeoutSeconds: null, secretNames: [], envNames: [], cpus: null, memory: null };
}

/**
 * A recipe's size as the API and the offer show it: only the fields set, or null when neither
 * is (the worker's defaults).
 */
export function recipeResources(recipe: Pick<TaskRecipe, 'cpus' | 'memory'>): Resources | null {
  if (recipe.cpus === null && recipe.memory === null) return null;
  return { ...(recipe.cpus !== null ? { cpus: recipe.cpus } : {}), ...(recipe.memory !== null ? { memory: recipe.memory } : {}) };
}

export interface ExecutionRecord {
  id: string;
  taskId: string;
  teamId: string;
  /** 1 for the task's first execution, 2 for the next… (orders events across executions). */
  ordinal: number;
  workerId: string;
  epoch: number;
  state: ExecutionState;
  offerId: string;
  offerDeadline: number;
  leaseExpiresAt: number | null;
  failureReason: FailureReason | null;
  message: string | null;
  exitCode: number | null;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  /** What the execution produced, as its finish reported it; null if it reported nothing. */
  artifacts: Artifacts | null;
  /** Model tokens the execution used, as its finish reported them; zeros until then. */
  usage: Usage;
}

export interface EventRecord {
  taskId: string;
  executionId: string;
  ordinal: number;
  seq: number;
  ts: number;
  kind: EventKind;
  data: Record<string, unknown>;
}

export interface MessageRecord {
  id: string;
  taskId: string;
  text: string;
  createdAt: number;
}

export interface AuditRecord {
  id: number;
  teamId: string | null;
  /** Who did it: `key:<id>`, `worker:<id>`, `admin-cli`, `system`. */
  actor: string;
  action: string;
  target: string | null;
  detail: Record<string, unknown>;
  at: number;
}

export interface NewTask {
  id: string;
  teamId: string;
  title: string | null;
  prompt: string;
  harness: Harness;
  workerId: string | null;
  timeoutSeconds: number | null;
  now: number;
  /** Recipe, budget and result options; absent means none (an empty recipe, push off). */
  environmentId?: string | null;
  recipe?: TaskRecipe;
  budget?: Budget | null;
  model?: string | null;
  push?: boolean;
  pullRequest?: PullRequestOptions | null;
}

export interface TaskListFilter {
  state?: TaskState;
  workerId?: string;
  /** Opaque cursor returned as `nextCursor` by the previous page. */
  cursor?: string;
  limit: number;
}

export interface TaskPage {
  tasks: TaskRecord[];
  nextCursor: string | null;
}

export interface ExecutionRef {
  executionId: string;
  epoch: number;
}

export type FenceResult = 'ok' | 'duplicate' | 'lease_lost';

export type ClaimResult =
  | { ok: true; execution: ExecutionRecord; task: TaskRecord }
  | { ok: false; reason: 'expired' | 'cancelled' | 'unknown' };

export interface FinishInput {
  executionId: string;
  epoch: number;
  workerId: string;
  outcome: Outcome;
  exitCode: number | null;
  failureReason: FailureReason | null;
  message: string | null;
  now: number;
  /** Recorded on the execution with the finish (a replayed finish changes nothing). */
  artifacts?: Artifacts | null;
  usage?: Usage | null;
}

export interface OfferTasksInput {
  teamId: string;
  workerId: string;
  limit: number;
  now: number;
  offerDeadline: number;
  newExecutionId: () => string;
  newOfferId: () => string;
}

export interface CancelResult {
  task: TaskRecord;
  /** The active execution that must now be stopped by its worker, if one was running. */
  execution: ExecutionRecord | null;
}

/** An execution the lease sweeper or reconciliation ended (for logs, metrics and fan-out). */
export interface EndedExecution {
  task: TaskRecord;
  execution: ExecutionRecord;
}

/** A team's named recipe for tasks (protocol/environment.ts). Variable NAMES only, never values. */
export interface EnvironmentRecord extends TaskRecipe {
  id: string;
  teamId: string;
  /** Unique within the team. */
  name: string;
  createdAt: number;
  updatedAt: number;
}

export type NewEnvironment = Omit<EnvironmentRecord, 'createdAt' | 'updatedAt'> & { now: number };

/** The fields an update may change; absent fields stay as they are. */
export type EnvironmentPatch = Partial<Omit<EnvironmentRecord, 'id' | 'teamId' | 'createdAt' | 'updatedAt'>>;

export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  /** Apply pending migrations (versioned, in order, each in a transaction). */
  migrate(): Promise<void>;
  close(): Promise<void>;
  /** A cheap round trip, for /readyz. */
  ping(): Promise<void>;

  // ── teams and keys ──
  createTeam(team: { id: string; name: string; now: number }): Promise<TeamRecord>; // ConflictError if the name exists
  getTeam(id: string): Promise<TeamRecord | undefined>;
  getTeamByName(name: string): Promise<TeamRecord | undefined>;
  insertApiKey(key: Omit<ApiKeyRecord, 'revokedAt'>): Promise<ApiKeyRecord>;
  getApiKey(id: string): Promise<ApiKeyRecord | undefined>;
  listApiKeys(teamId: string): Promise<ApiKeyRecord[]>;
  /** Returns false when no such key exists in that team. Revoking twice is fine. */
  revokeApiKey(teamId: string, id: string, now: number): Promise<boolean>;

  // ── workers ──
  upsertWorker(worker: WorkerRecord): Promise<void>;
  markWorkerDisconnected(teamId: string, workerId: string, now: number): Promise<void>;
  /** Mark every worker disconnected (server start: no connection survives a restart). */
  markAllWorkersDisconnected(now: number): Promise<void>;
  touchWorker(teamId: string, workerId: string, now: number, draining: boolean): Promise<void>;
  listWorkers(teamId: string): Promise<WorkerRecord[]>;

  // ── tasks ──
  createTask(task: NewTask): Promise<TaskRecord>;
  /** `teamId` scopes the lookup: another team's task is simply not found. */
  getTask(teamId: string, taskId: string): Promise<TaskRecord | undefined>;
  listTasks(teamId: string, filter: TaskListFilter): Promise<TaskPage>;
  listExecutions(taskId: string): Promise<ExecutionRecord[]>;
  getExecution(executionId: string): Promise<ExecutionRecord | undefined>;

  // ── dispatch (each one transaction) ──
  /**
   * Offer up to `limit` queued tasks of the team that this worker may run (unrouted, or routed
   * to it), oldest first: each gets a new epoch and an `offered` execution; the task becomes
   * `assigned`. Concurrent callers never offer the same task twice.
   */
  offerTasks(input: OfferTasksInput): Promise<Array<{ task: TaskRecord; execution: ExecutionRecord }>>;
  /** The worker claims an offer before its deadline: the execution becomes `claimed` with a lease. */
  claimOffer(input: { offerId: string; workerId: string; teamId: string; now: number; leaseExpiresAt: number }): Promise<ClaimResult>;
  /** The worker refused an offer: the execution expires and the task returns to the queue. */
  declineOffer(input: { offerId: string; workerId: string; teamId: string; now: number; message: string }): Promise<EndedExecution | undefined>;
  /** Offers past their deadline expire; their tasks return to `queued` (or `cancelled` if a cancel was requested). */
  expireOffers(now: number): Promise<EndedExecution[]>;
  /** Offers made to a worker that hung up before claiming: expire them now. */
  expireOffersOfWorker(teamId: string, workerId: string, now: number): Promise<EndedExecution[]>;
  markStarted(input: { executionId: string; epoch: number; workerId: string; now: number; leaseExpiresAt: number }): Promise<FenceResult>;
  /**
   * Ends a leased execution with the worker's outcome, recording its artifacts and usage in the
   * same transaction. A repeat of the finish already recorded is `duplicate` and changes nothing.
   */
  finishExecution(input: FinishInput): Promise<{ result: FenceResult; ended?: EndedExecution }>;
  /** Renew the leases the worker still holds; the others are `lost`. */
  renewLeases(input: { teamId: string; workerId: string; leases: ExecutionRef[]; now: number; leaseExpiresAt: number }): Promise<{ renewed: string[]; lost: string[] }>;
  /** Claimed/running executions whose lease ran out: failed with `worker_lost` (or cancelled, if a cancel was requested). */
  expireLeases(now: number, message: (execution: ExecutionRecord) => string): Promise<EndedExecution[]>;
  /**
   * A worker said hello with this inventory. Active executions of this worker that the server
   * knows and the inventory names with the current epoch → `continue` (lease renewed);
   * named but not active here → `abandon`; active here but not named → ended as `worker_lost`.
   */
  reconcileWorker(input: {
    teamId: string;
    workerId: string;
    running: ExecutionRef[];
    now: number;
    leaseExpiresAt: number;
    lostMessage: string;
  }): Promise<{ keep: string[]; abandon: string[]; ended: EndedExecution[] }>;
  /**
   * A user asked to cancel. Queued (or offered, not yet claimed) tasks become `cancelled` at
   * once; claimed/running tasks get `cancelRequested` and their execution is returned so the
   * worker can be told. Cancelling a finished task changes nothing and returns it as it is.
   */
  requestCancel(input: { teamId: string; taskId: string; now: number; message: string }): Promise<CancelResult | undefined>;
  /** Active executions of this worker whose task has a pending cancellation. */
  pendingCancels(teamId: string, workerId: string): Promise<ExecutionRecord[]>;

  // ── environments (team-scoped: another team's environment is simply not found) ──
  /** ConflictError naming the name if the team already has an environment called that. */
  createEnvironment(environment: NewEnvironment): Promise<EnvironmentRecord>;
  getEnvironment(teamId: string, id: string): Promise<EnvironmentRecord | undefined>;
  /** By name, A→Z. */
  listEnvironments(teamId: string): Promise<EnvironmentRecord[]>;
  /** Undefined if not found; ConflictError if the new name is taken by another environment. */
  updateEnvironment(teamId: string, id: string, patch: EnvironmentPatch, now: number): Promise<EnvironmentRecord | undefined>;
  /** False if not found. */
  deleteEnvironment(teamId: string, id: string): Promise<boolean>;

  // ── transcripts ──
  /**
   * Append events of one execution; those whose (execution, seq) is already stored are ignored.
   * Returns how many were new.
   */
  appendEvents(execution: { executionId: string; taskId: string; ordinal: number }, events: Array<Omit<EventRecord, 'taskId' | 'executionId' | 'ordinal'>>): Promise<number>;
  /** Events of a task after the position (ordinal, seq), in order, at most `limit`. */
  listEvents(taskId: string, after: { ordinal: number; seq: number } | null, limit: number): Promise<EventRecord[]>;

  // ── follow-up messages ──
  insertMessage(message: MessageRecord): Promise<void>;
  listMessages(taskId: string): Promise<MessageRecord[]>;

  // ── audit and metrics ──
  appendAudit(entry: Omit<AuditRecord, 'id'>): Promise<void>;
  listAudit(teamId: string, limit: number): Promise<AuditRecord[]>;
  countTasksByState(): Promise<Record<TaskState, number>>;

  // ── LLM gateway usage (llm-usage.ts) ──
  /** Add one model request's counters to its execution's row for that model. */
  recordLlmUsage(increment: LlmUsageIncrement): Promise<void>;
  /** A team's gateway usage: totals, by task and by model. */
  llmUsageReport(teamId: string, filter?: LlmUsageFilter): Promise<LlmUsageReport>;
}
