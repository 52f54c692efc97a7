/**
 * The control plane's tables as Kysely sees them: snake_case columns, JSON as text, booleans as
 * integers 0/1, times as integer milliseconds since the epoch.
 *
 * Invariant: these types describe what a SELECT may return on *either* dialect. PostgreSQL
 * returns `bigint` columns (all times, and COUNT results) as strings, so those columns are typed
 * `number | string` on read and every row goes through one mapping function (rows.ts) that
 * applies `Number(...)`. Nothing else in the store reads a raw row.
 */
import type { ColumnType } from 'kysely';

/** Integer milliseconds: written as a number, read as a number (SQLite) or a string (PostgreSQL bigint). */
export type Millis = ColumnType<number | string, number, number>;
/** A 0/1 flag: SQLite has no boolean type, and keeping one representation keeps one mapping. */
export type Flag = ColumnType<number, number, number>;

export interface TeamsTable {
  id: string;
  name: string;
  created_at: Millis;
}

export interface ApiKeysTable {
  id: string;
  team_id: string;
  role: string;
  name: string | null;
  hash: string;
  created_at: Millis;
  revoked_at: ColumnType<number | string | null, number | null, number | null>;
}

export interface WorkersTable {
  team_id: string;
  worker_id: string;
  version: string;
  backend: string;
  /** JSON object of string labels. */
  labels: string;
  capacity: number;
  connected: Flag;
  draining: Flag;
  connected_at: ColumnType<number | string | null, number | null, number | null>;
  last_seen_at: Millis;
}

type NullableMillis = ColumnType<number | string | null, number | null, number | null>;

export interface TasksTable {
  id: string;
  team_id: string;
  title: string | null;
  state: string;
  prompt: string;
  harness: string;
  worker_id: string | null;
  timeout_seconds: number | null;
  failure_reason: string | null;
  message: string | null;
  exit_code: number | null;
  cancel_requested: Flag;
  epoch: number;
  created_at: Millis;
  updated_at: Millis;
  started_at: NullableMillis;
  finished_at: NullableMillis;
  /** Migration 0003. Where the recipe came from (no foreign key: environments may be deleted). */
  environment_id: ColumnType<string | null, string | null | undefined, string | null>;
  /**
   * JSON TaskRecipe (store.ts), resolved at creation; NULL when the task has none. The task size
   * (cpus, memory) is part of it; recipes written before migration 0005 lack them (read as null).
   */
  recipe: ColumnType<string | null, string | null | undefined, string | null>;
  /** JSON Budget; NULL when none was asked for. */
  budget: ColumnType<string | null, string | null | undefined, string | null>;
  model: ColumnType<string | null, string | null | undefined, string | null>;
  push: ColumnType<number, number | undefined, number>;
  /** JSON PullRequestOptions; NULL when no pull request is wanted. */
  pull_request: ColumnType<string | null, string | null | undefined, string | null>;
}

/** A bigint counter: read as a number (SQLite) or a string (PostgreSQL). */
type Counter = ColumnType<number | string, number | undefined, number>;

export interface ExecutionsTable {
  id: string;
  task_id: string;
  team_id: string;
  ordinal: number;
  worker_id: string;
  epoch: number;
  state: string;
  offer_id: string;
  offer_deadline: Millis;
  lease_expires_at: NullableMillis;
  failure_reason: string | null;
  message: string | null;
  exit_code: number | null;
  created_at: Millis;
  started_at: NullableMillis;
  finished_at: NullableMillis;
  /** Migration 0003. JSON Artifacts (protocol/task.ts); NULL until a finish reported some. */
  artifacts: ColumnType<string | null, string | null | undefined, string | null>;
  input_tokens: Counter;
  output_tokens: Counter;
  requests: ColumnType<number, number | undefined, number>;
}

export interface EventsTable {
  execution_id: string;
  seq: number;
  task_id: string;
  ordinal: number;
  ts: Millis;
  kind: string;
  /** JSON object. */
  data: string;
}

export interface MessagesTable {
  id: string;
  task_id: string;
  text: string;
  created_at: Millis;
}

export interface AuditLogTable {
  /** SQLite: INTEGER PRIMARY KEY AUTOINCREMENT; PostgreSQL: bigint identity (read as a string). */
  id: ColumnType<number | string, never, never>;
  team_id: string | null;
  actor: string;
  action: string;
  target: string | null;
  /** JSON object. */
  detail: string;
  at: Millis;
}

export interface EnvironmentsTable {
  id: string;
  team_id: string;
  name: string;
  image: string | null;
  /** JSON array of { url, ref? }. */
  repositories: string;
  /** JSON array of strings. */
  setup_commands: string;
  setup_timeout_seconds: number | null;
  /** JSON array of variable names. */
  secret_names: string;
  /** JSON array of variable names. */
  env_names: string;
  /** Migration 0005: the task size. CPUs (fractions allowed); NULL: the worker's default. */
  cpus: ColumnType<number | null, number | null | undefined, number | null>;
  /** JSON string or number, kept as written ("2g" or bytes); NULL: the worker's default. */
  memory: ColumnType<string | null, string | null | undefined, string | null>;
  created_at: Millis;
  updated_at: Millis;
}

/** LLM gateway usage (migration 0004): counters per execution and model, never a body. */
export interface LlmUsageTable {
  execution_id: string;
  model: string;
  team_id: string;
  task_id: string;
  requests: ColumnType<number | string, number, number>;
  errors: ColumnType<number | string, number, number>;
  input_tokens: ColumnType<number | string, number, number>;
  output_tokens: ColumnType<number | string, number, number>;
  updated_at: Millis;
}

export interface Database {
  teams: TeamsTable;
  api_keys: ApiKeysTable;
  workers: WorkersTable;
  tasks: TasksTable;
  executions: ExecutionsTable;
  events: EventsTable;
  messages: MessagesTable;
  audit_log: AuditLogTable;
  environments: EnvironmentsTable;
  llm_usage: LlmUsageTable;
}

export type StoreDialect = 'sqlite' | 'postgres';

