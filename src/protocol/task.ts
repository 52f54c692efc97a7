/**
 * The shapes of tasks, executions and transcript events as they appear on the REST API, on the
 * worker protocol and on the task gateway. One zod schema each: the validators, the TypeScript
 * types and the published JSON Schemas / OpenAPI document all come from here.
 */
import * as z from 'zod';
import { EXECUTION_STATES, FAILURE_REASONS, TASK_STATES } from './lifecycle.js';
import { TeamName, WorkerId } from './names.js';
import { EnvironmentId, GitRef, Repository, Resources, ResourcesView, environmentFields } from './environment.js';

export { TeamName, WorkerId };

/**
 * Prompts are instructions, not payloads: 256 KiB is far above any real prompt and keeps one
 * task row small. Request bodies are capped at 1 MiB by the HTTP server (413 beyond).
 */
export const MAX_PROMPT_BYTES = 256 * 1024;
export const MAX_REQUEST_BODY_BYTES = 1024 * 1024;
/** One event's data; larger output is split by the sender into several events. */
export const MAX_EVENT_DATA_BYTES = 64 * 1024;
/** Events per upload/report batch: large enough to amortise a round trip, small enough to ack fast. */
export const MAX_EVENTS_PER_BATCH = 500;
export const MAX_TASK_TIMEOUT_SECONDS = 7 * 24 * 3600;

/** Ids we mint: a short prefix and 20 lowercase base32 characters (100 bits of randomness). */
export const TaskId = z.string().regex(/^tsk_[a-z2-7]{20}$/, 'must be a task id like tsk_…');
export const ExecutionId = z.string().regex(/^exe_[a-z2-7]{20}$/, 'must be an execution id like exe_…');

/**
 * Harnesses built into this version: `builtin` is the coding agent (the default), `shell` runs
 * the prompt as a shell script, `claude-code` and `codex` run those CLI agents with their model
 * base URL pointed at the task gateway. `command:<name>` runs a CLI agent from a command template
 * configured on the worker (`harnesses:` in its YAML).
 */
export const HARNESSES = ['builtin', 'shell', 'claude-code', 'codex'] as const;
export type BuiltinHarness = (typeof HARNESSES)[number];
export const COMMAND_HARNESS_PREFIX = 'command:';
export const Harness = z
  .string()
  .refine(
    (name) => (HARNESSES as readonly string[]).includes(name) || /^command:[a-z][a-z0-9-]{0,62}$/.test(name),
    `must be one of ${HARNESSES.join(', ')}, or command:<name> for a command-template agent configured on the worker`,
  )
  .describe(`${HARNESSES.join(' | ')} | command:<name>`);
export type Harness = z.infer<typeof Harness>;

/** Wall clock, tokens and turns; reaching one ends the run with a wrap-up turn and a commit. */
export const MAX_BUDGET_TURNS = 10_000;
export const MAX_BUDGET_TOKENS = 1_000_000_000;
export const Budget = z.strictObject({
  max_turns: z.number().int().min(1).max(MAX_BUDGET_TURNS).optional().describe('model turns (one model call each)'),
  max_seconds: z.number().int().min(1).max(7 * 24 * 3600).optional().describe('wall-clock seconds of the harness run'),
  max_tokens: z.number().int().min(1).max(MAX_BUDGET_TOKENS).optional().describe('input plus output tokens over all model calls'),
});
export type Budget = z.infer<typeof Budget>;

/** Why a harness run ended. Budgets end a run with its work committed, never thrown away. */
export const STOP_REASONS = ['completed', 'max_turns', 'max_seconds', 'max_tokens', 'cancelled', 'error'] as const;
export const StopReason = z.enum(STOP_REASONS);
export type StopReason = z.infer<typeof StopReason>;

export const PullRequestOptions = z.strictObject({
  base: GitRef.optional().describe('branch to merge into (default: the ref the task started from, else the default branch)'),
  title: z.string().min(1).max(250).optional(),
  draft: z.boolean().default(false),
});
export type PullRequestOptions = z.infer<typeof PullRequestOptions>;

/** Token counts of the model calls of an execution (or, summed, of a task). */
export const Usage = z.strictObject({
  input_tokens: z.number().int().min(0),
  output_tokens: z.number().int().min(0),
  requests: z.number().int().min(0).default(0),
});
export type Usage = z.infer<typeof Usage>;

/**
 * Diffs that cross to the control plane are capped; the full diff stays with the worker (in the
 * data plane) under its state directory.
 */
export const MAX_REPORTED_DIFF_BYTES = 256 * 1024;

/** What an execution produced in one repository. */
export const RepositoryArtifacts = z.strictObject({
  url: z.string(),
  /** Directory of the clone, relative to the workspace. */
  path: z.string(),
  branch: z.string(),
  base_commit: z.string().nullable(),
  /** The commit holding the work; null when nothing changed. */
  commit: z.string().nullable(),
  diffstat: z.strictObject({
    files_changed: z.number().int().min(0),
    insertions: z.number().int().min(0),
    deletions: z.number().int().min(0),
  }),
  /** Unified diff against base_commit, cut at MAX_REPORTED_DIFF_BYTES. */
  diff: z.string(),
  diff_truncated: z.boolean(),
  diff_bytes: z.number().int().min(0),
  pushed: z.boolean(),
  push_error: z.string().nullable(),
  pull_request_url: z.string().nullable(),
  pull_request_error: z.string().nullable(),
});
export type RepositoryArtifacts = z.infer<typeof RepositoryArtifacts>;

/**
 * An execution's results as the task shows them. The top-level fields describe the first
 * repository (most tasks have one); `repositories` lists every one.
 */
export const Artifacts = z.strictObject({
  branch: z.string().nullable(),
  commit: z.string().nullable(),
  diff: z.string().nullable(),
  diff_truncated: z.boolean(),
  diffstat: RepositoryArtifacts.shape.diffstat.nullable(),
  summary: z.string().nullable(),
  stop_reason: StopReason.nullable(),
  pushed: z.boolean(),
  pull_request_url: z.string().nullable(),
  repositories: z.array(RepositoryArtifacts),
});
export type Artifacts = z.infer<typeof Artifacts>;

export const TaskState = z.enum(TASK_STATES);
export const ExecutionState = z.enum(EXECUTION_STATES);
export const FailureReason = z.enum(FAILURE_REASONS);

const promptSchema = z
  .string()
  .min(1, 'must not be empty')
  .refine((s) => Buffer.byteLength(s, 'utf8') <= MAX_PROMPT_BYTES, `must be at most ${MAX_PROMPT_BYTES / 1024} KiB`);

/**
 * The workspace recipe a task may carry inline: the same fields as an environment. With an
 * `environment_id` too, each inline field given replaces the environment's (inline wins); for
 * `resources` that holds per size field (`{"memory": "8g"}` keeps the environment's cpus).
 */
const inlineEnvironment = {
  image: environmentFields.image.optional(),
  repositories: environmentFields.repositories.optional(),
  setup_commands: environmentFields.setup_commands.optional(),
  setup_timeout_seconds: environmentFields.setup_timeout_seconds.optional(),
  secret_names: environmentFields.secret_names.optional(),
  env_names: environmentFields.env_names.optional(),
  resources: environmentFields.resources.optional(),
};

/** Body of `POST /api/v1/tasks`. Unknown fields are refused so typos do not pass silently. */
export const TaskCreate = z
  .strictObject({
    prompt: promptSchema,
    harness: Harness.default('builtin'),
    worker_id: WorkerId.optional().describe('route the task to this worker only'),
    timeout_seconds: z.number().int().min(1).max(MAX_TASK_TIMEOUT_SECONDS).optional(),
    title: z.string().max(200).optional(),
    environment_id: EnvironmentId.optional().describe('the environment whose recipe the task uses; inline fields override it'),
    ...inlineEnvironment,
    budget: Budget.optional(),
    model: z.string().min(1).max(200).optional().describe('model to ask for (default: the route\'s default model)'),
    push: z.boolean().default(false).describe('push the result branch to the remote'),
    pull_request: PullRequestOptions.optional().describe('open a pull/merge request for the pushed branch (needs push)'),
  })
  .check((ctx) => {
    if (ctx.value.pull_request && !ctx.value.push) {
      ctx.issues.push({ code: 'custom', input: ctx.value, path: ['pull_request'], message: 'needs "push": true — a pull request is opened for the pushed branch' });
    }
  });
export type TaskCreate = z.infer<typeof TaskCreate>;

export const ExecutionView = z.object({
  id: z.string(),
  worker_id: z.string(),
  epoch: z.number().int(),
  state: ExecutionState,
  failure_reason: FailureReason.nullable(),
  message: z.string().nullable(),
  exit_code: z.number().int().nullable(),
  created_at: z.string(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
});
export type ExecutionView = z.infer<typeof ExecutionView>;

export const TaskView = z.object({
  id: z.string(),
  title: z.string().nullable(),
  state: TaskState,
  prompt: z.string(),
  harness: Harness,
  worker_id: z.string().nullable(),
  timeout_seconds: z.number().int().nullable(),
  failure_reason: FailureReason.nullable(),
  message: z.string().nullable().describe('what happened, and what to do about it, in words'),
  exit_code: z.number().int().nullable(),
  cancel_requested: z.boolean(),
  created_at: z.string(),
  updated_at: z.string(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
  environment_id: z.string().nullable(),
  repositories: z.array(z.object({ url: z.string(), ref: z.string().optional() })),
  resources: ResourcesView.nullable().describe("the task's size (environment merged with inline fields); null: the worker's defaults"),
  budget: Budget.nullable(),
  model: z.string().nullable(),
  push: z.boolean(),
  /** The latest execution's results; null until one finished with any. */
  artifacts: Artifacts.nullable(),
  /** Token usage summed over the task's executions. */
  usage: Usage,
  executions: z.array(ExecutionView),
});
export type TaskView = z.infer<typeof TaskView>;

/**
 * Transcript event kinds. `output` is command output; `status` a human-readable progress line;
 * `lifecycle` a phase change reported by the worker; `message` a follow-up from the user.
 */
export const EVENT_KINDS = ['output', 'status', 'lifecycle', 'message', 'error', 'result'] as const;
export const EventKind = z.enum(EVENT_KINDS);
export type EventKind = z.infer<typeof EventKind>;

export const EventData = z.record(z.string(), z.unknown());

/** One transcript event as the worker reports it: `seq` is per execution, starting at 1. */
export const TranscriptEvent = z.strictObject({
  seq: z.number().int().min(1),
  ts: z.number().int().min(0).describe('milliseconds since the epoch, worker clock'),
  kind: EventKind,
  data: EventData,
});
export type TranscriptEvent = z.infer<typeof TranscriptEvent>;

/** An event as the API shows it: which execution it belongs to, and its SSE id. */
export const EventView = z.object({
  id: z.string().describe('"<execution ordinal>.<seq>"; pass it back as Last-Event-ID to resume'),
  execution_id: z.string(),
  seq: z.number().int(),
  ts: z.number().int(),
  kind: EventKind,
  data: EventData,
});
export type EventView = z.infer<typeof EventView>;

/**
 * What the worker needs to run one execution (sent in an offer; served by the task gateway). The
 * server resolves the task's environment and inline fields into it. Fields added after protocol
 * version 1 are optional so older servers' offers still parse; absent means empty.
 */
export const ExecutionSpec = z.strictObject({
  execution_id: ExecutionId,
  task_id: TaskId,
  epoch: z.number().int().min(1),
  prompt: z.string(),
  harness: Harness,
  timeout_seconds: z.number().int().nullable(),
  title: z.string().nullable(),
  /** The working branch the agent creates in each repository: airlock/<short task id>. */
  branch: z.string().optional(),
  image: z.string().nullable().optional(),
  repositories: z.array(Repository).optional(),
  setup_commands: z.array(z.string()).optional(),
  setup_timeout_seconds: z.number().int().nullable().optional(),
  secret_names: z.array(z.string()).optional(),
  env_names: z.array(z.string()).optional(),
  budget: Budget.nullable().optional(),
  model: z.string().nullable().optional(),
  push: z.boolean().optional(),
  pull_request: PullRequestOptions.nullable().optional(),
  /**
   * The task's size, sent only when it has one (a worker of an older version refuses fields it
   * does not know, so the common task must not carry it); absent means the worker's defaults.
   */
  resources: Resources.optional(),
  /** For `command:<name>` harnesses: the argv template, filled in by the worker from its config. */
  harness_command: z.array(z.string()).optional(),
});
export type ExecutionSpec = z.infer<typeof ExecutionSpec>;

/** `airlock/<short task id>`: the task id without its prefix, first 8 characters. */
export function workingBranch(taskId: string): string {
  return `airlock/${taskId.replace(/^tsk_/, '').slice(0, 8)}`;
}

export const MessageCreate = z.strictObject({
  text: z.string().min(1).max(64 * 1024),
});
