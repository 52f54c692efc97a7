/**
 * The shapes of tasks, executions and transcript events as they appear on the REST API, on the
 * worker protocol and on the task gateway. One zod schema each: the validators, the TypeScript
 * types and the published JSON Schemas / OpenAPI document all come from here.
 */
import { z } from 'zod';
import { EXECUTION_STATES, FAILURE_REASONS, TASK_STATES } from './lifecycle.js';

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
 * Worker ids are chosen by operators and appear in paths, labels and logs, so they are narrow:
 * letters, digits, dot, dash and underscore, 1–63 characters, starting with a letter or digit
 * (the DNS-label length, so a worker id can name a Kubernetes object).
 */
export const WorkerId = z
  .string()
  .min(1, 'must not be empty')
  .max(63, 'must be at most 63 characters')
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'may contain only letters, digits, ".", "-" and "_", and must start with a letter or digit')
  .refine((s) => !s.includes('..'), 'must not contain ".."');

export const TeamName = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9][a-z0-9-]*$/, 'may contain only lowercase letters, digits and "-", starting with a letter or digit');

/** Harnesses known to this version. `shell` runs the prompt as a shell script. */
export const HARNESSES = ['shell'] as const;
export const Harness = z.enum(HARNESSES);
export type Harness = z.infer<typeof Harness>;

export const TaskState = z.enum(TASK_STATES);
export const ExecutionState = z.enum(EXECUTION_STATES);
export const FailureReason = z.enum(FAILURE_REASONS);

const promptSchema = z
  .string()
  .min(1, 'must not be empty')
  .refine((s) => Buffer.byteLength(s, 'utf8') <= MAX_PROMPT_BYTES, `must be at most ${MAX_PROMPT_BYTES / 1024} KiB`);

/** Body of `POST /api/v1/tasks`. Unknown fields are refused so typos do not pass silently. */
export const TaskCreate = z.strictObject({
  prompt: promptSchema,
  harness: Harness.default('shell'),
  worker_id: WorkerId.optional().describe('route the task to this worker only'),
  timeout_seconds: z.number().int().min(1).max(MAX_TASK_TIMEOUT_SECONDS).optional(),
  title: z.string().max(200).optional(),
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

/** What the worker needs to run one execution (sent in an offer; served by the task gateway). */
export const ExecutionSpec = z.strictObject({
  execution_id: ExecutionId,
  task_id: TaskId,
  epoch: z.number().int().min(1),
  prompt: z.string(),
  harness: Harness,
  timeout_seconds: z.number().int().nullable(),
  title: z.string().nullable(),
});
export type ExecutionSpec = z.infer<typeof ExecutionSpec>;

export const MessageCreate = z.strictObject({
  text: z.string().min(1).max(64 * 1024),
});
