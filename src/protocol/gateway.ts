/**
 * The task gateway API: what the agent inside a task environment may ask of its worker (or, for
 * an unmanaged `airlock agent run`, of the in-process gateway). HTTP/1.1 with JSON bodies, served
 * on a Unix socket for the direct and docker backends. Every request carries
 * `Authorization: Bearer <task token>`; the token is minted per execution by the worker.
 *
 *   GET  /v1/task                       → ExecutionSpec
 *   POST /v1/events     {events: [...]} → {accepted: n, next_seq}      (agent-side seq, idempotent)
 *   GET  /v1/control?after=N&wait=MS    → {cancel, messages: [...]}    (long poll)
 *   POST /v1/result     AgentResult     → {}
 *   PUT  /v1/diff?repository=N  raw unified diff → {}   (the full diff of repository N when the
 *                                       reported one was cut; the worker keeps it in the data plane)
 *   POST /v1/git/credential {protocol, host, path} → {username, password} | 404  (git credential helper)
 *   POST /v1/chat/completions | /v1/responses | /v1/messages   → the model API of that name
 *                                       (OpenAI Chat Completions, OpenAI Responses, Anthropic
 *                                       Messages; streaming or not), routed by the worker
 */
import * as z from 'zod';
import { EventData, EventKind, MAX_EVENTS_PER_BATCH, RepositoryArtifacts, StopReason } from './task.js';
import { MAX_REPOSITORIES } from './environment.js';

export const GATEWAY_PATHS = {
  task: '/v1/task',
  events: '/v1/events',
  control: '/v1/control',
  result: '/v1/result',
  gitCredential: '/v1/git/credential',
  diff: '/v1/diff',
  chatCompletions: '/v1/chat/completions',
  responses: '/v1/responses',
  messages: '/v1/messages',
} as const;

/** Environment variables the backend sets for the agent process. */
export const AGENT_ENV = {
  gateway: 'AIRLOCK_GATEWAY', // "unix:/path/to/socket" or "http://host:port"
  token: 'AIRLOCK_TASK_TOKEN',
  /**
   * "1": the token is not in the environment but on the first line of standard input — so it
   * never appears in the agent's /proc/<pid>/environ, which the task's own processes could read.
   */
  tokenOnStdin: 'AIRLOCK_TASK_TOKEN_STDIN',
  executionId: 'AIRLOCK_EXECUTION_ID',
  workdir: 'AIRLOCK_WORKDIR',
} as const;

/**
 * Largest full diff the worker keeps for one repository; a diff beyond it is only in the commit
 * (pushed, or in the workspace while it exists).
 */
export const MAX_KEPT_DIFF_BYTES = 64 * 1024 * 1024;

/** What the git credential helper asks for (git's own credential fields). */
export const GitCredentialQuery = z.strictObject({
  protocol: z.string().min(1).max(16),
  host: z.string().min(1).max(255),
  path: z.string().max(2048).optional(),
});
export type GitCredentialQuery = z.infer<typeof GitCredentialQuery>;
export const GitCredential = z.strictObject({ username: z.string(), password: z.string() });
export type GitCredential = z.infer<typeof GitCredential>;

/** An event as the agent uploads it: `seq` is the agent's own counter, used for idempotent retries. */
export const AgentEvent = z.strictObject({
  seq: z.number().int().min(1),
  ts: z.number().int().min(0),
  kind: EventKind,
  data: EventData,
});
export type AgentEvent = z.infer<typeof AgentEvent>;

export const AgentEventsUpload = z.strictObject({
  events: z.array(AgentEvent).min(1).max(MAX_EVENTS_PER_BATCH),
});

export const AgentEventsAccepted = z.object({ accepted: z.number().int(), next_seq: z.number().int() });

export const ControlState = z.object({
  cancel: z.strictObject({ reason: z.string() }).nullable(),
  messages: z.array(z.strictObject({ index: z.number().int(), id: z.string(), text: z.string() })),
});
export type ControlState = z.infer<typeof ControlState>;

export const AgentResult = z.strictObject({
  outcome: z.enum(['succeeded', 'failed', 'cancelled']),
  exit_code: z.number().int().nullable(),
  summary: z.string().max(64 * 1024).nullable(),
  /** Why the harness stopped (budgets included); absent for harnesses that do not say. */
  stop_reason: StopReason.nullable().optional(),
  /** What the run produced in each repository (the agent fills everything but pull requests). */
  repositories: z.array(RepositoryArtifacts).max(MAX_REPOSITORIES).optional(),
  /**
   * Set when the run failed before its harness started, for the reasons the agent itself
   * detects: a repository could not be cloned, or a setup command failed. The worker reports it
   * as the execution's failure reason, with `summary` as its message.
   */
  failure_reason: z.enum(['repo_clone', 'setup_command']).optional(),
});
export type AgentResult = z.infer<typeof AgentResult>;
