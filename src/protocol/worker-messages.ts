/**
 * The worker protocol: JSON messages over one WebSocket that the worker opens to
 * `/api/v1/workers/connect`. docs/protocol.md describes the conversation; the JSON Schemas in
 * docs/schemas/ are generated from these definitions (scripts/gen-schemas.js).
 *
 * Invariants:
 * - Every worker → server message that changes state carries an `id`; the server answers each
 *   with an `ack` for that id, and handles a repeated id (a replay from the outbox) as a no-op.
 * - Every message about an execution carries its `epoch`; a message whose epoch is not the
 *   execution's current one is refused with `lease_lost` (fencing).
 */
import * as z from 'zod';
import { Artifacts, ExecutionId, ExecutionSpec, FailureReason, TranscriptEvent, Usage, WorkerId, MAX_EVENTS_PER_BATCH } from './task.js';
import { TERMINAL_OUTCOMES } from './lifecycle.js';

export const PROTOCOL_VERSION = 1;
export const WORKER_CONNECT_PATH = '/api/v1/workers/connect';
/** Largest WebSocket message the server accepts; a batch of 500 events of 64 KiB would not fit, so senders split by bytes too. */
export const MAX_WS_MESSAGE_BYTES = 4 * 1024 * 1024;

const MessageId = z.string().min(1).max(64);
const Epoch = z.number().int().min(1);
const ExecutionRef = z.strictObject({ execution_id: ExecutionId, epoch: Epoch });

// ─── worker → server ──────────────────────────────────────────────────────────────────────────

export const Hello = z.strictObject({
  type: z.literal('hello'),
  protocol: z.number().int(),
  worker_id: WorkerId,
  version: z.string().max(64),
  backend: z.string().max(32),
  labels: z.record(z.string().max(63), z.string().max(255)).default({}),
  capacity: z.number().int().min(0).max(1000),
  draining: z.boolean().default(false),
  /** Executions this worker process still runs (or reattached to) — the server reconciles. */
  running: z.array(ExecutionRef).max(1000),
  /**
   * Executions of a previous run of this worker that were found still present at start and could
   * not be reattached (the direct backend cannot): what was found and what the worker did.
   */
  leftovers: z
    .array(
      z.strictObject({
        execution_id: ExecutionId,
        epoch: Epoch,
        detail: z.string().max(1000),
      }),
    )
    .max(1000)
    .default([]),
});

export const Claim = z.strictObject({
  type: z.literal('claim'),
  offer_id: z.string().min(1).max(64),
});

/** Refuse an offer (draining, capacity changed, unsupported harness). The task is re-queued. */
export const Decline = z.strictObject({
  type: z.literal('decline'),
  offer_id: z.string().min(1).max(64),
  reason: z.string().max(500),
});

export const Heartbeat = z.strictObject({
  type: z.literal('heartbeat'),
  leases: z.array(ExecutionRef).max(1000),
  free_slots: z.number().int().min(0),
  draining: z.boolean(),
});

export const ExecutionStarted = z.strictObject({
  type: z.literal('execution.started'),
  id: MessageId,
  execution_id: ExecutionId,
  epoch: Epoch,
});

export const ExecutionEvents = z.strictObject({
  type: z.literal('execution.events'),
  id: MessageId,
  execution_id: ExecutionId,
  epoch: Epoch,
  events: z.array(TranscriptEvent).min(1).max(MAX_EVENTS_PER_BATCH),
});

export const ExecutionFinished = z.strictObject({
  type: z.literal('execution.finished'),
  id: MessageId,
  execution_id: ExecutionId,
  epoch: Epoch,
  outcome: z.enum(TERMINAL_OUTCOMES),
  exit_code: z.number().int().nullable(),
  failure_reason: FailureReason.nullable(),
  message: z.string().max(4000).nullable(),
  /** What the execution produced (branch, commit, capped diff, summary); absent when nothing. */
  artifacts: Artifacts.nullable().optional(),
  /** Model token usage the worker metered at the task gateway, over every route. */
  usage: Usage.nullable().optional(),
});

export const WorkerMessage = z.discriminatedUnion('type', [
  Hello,
  Claim,
  Decline,
  Heartbeat,
  ExecutionStarted,
  ExecutionEvents,
  ExecutionFinished,
]);
export type WorkerMessage = z.infer<typeof WorkerMessage>;
export type Hello = z.infer<typeof Hello>;
export type Heartbeat = z.infer<typeof Heartbeat>;
export type ExecutionStarted = z.infer<typeof ExecutionStarted>;
export type ExecutionEvents = z.infer<typeof ExecutionEvents>;
export type ExecutionFinished = z.infer<typeof ExecutionFinished>;
/** The messages that go through the worker's outbox and are acknowledged by id. */
export type ReportMessage = ExecutionStarted | ExecutionEvents | ExecutionFinished;

// ─── server → worker ──────────────────────────────────────────────────────────────────────────

export const Welcome = z.strictObject({
  type: z.literal('welcome'),
  protocol: z.number().int(),
  session_id: z.string(),
  heartbeat_ms: z.number().int().min(1),
  lease_ttl_ms: z.number().int().min(1),
  /** For each execution in the hello inventory: keep running it, or stop it (the server no longer assigns it to you). */
  reconcile: z.array(
    z.strictObject({
      execution_id: ExecutionId,
      action: z.enum(['continue', 'abandon']),
      reason: z.string(),
    }),
  ),
});

export const Offer = z.strictObject({
  type: z.literal('offer'),
  offer_id: z.string(),
  claim_deadline_ms: z.number().int().min(1).describe('claim within this many milliseconds, or the task returns to the queue'),
  execution: ExecutionSpec,
});

export const Claimed = z.strictObject({
  type: z.literal('claimed'),
  offer_id: z.string(),
  ok: z.boolean(),
  /** When ok is false: why (expired, cancelled). */
  reason: z.string().nullable(),
  /** When ok: a token for the control plane's LLM gateway, bound to this execution (see LlmToken). */
  llm_token: z.lazy(() => LlmToken).nullable().optional(),
});

/**
 * A task-scoped token for the control plane's LLM gateway: valid only for one execution, only
 * until `expires_at_ms`, and never once the execution ended. Fresh ones arrive on heartbeat acks.
 */
export const LlmToken = z.strictObject({
  execution_id: ExecutionId,
  token: z.string().min(1).max(512),
  expires_at_ms: z.number().int().min(0),
});
export type LlmToken = z.infer<typeof LlmToken>;

export const Ack = z.strictObject({
  type: z.literal('ack'),
  id: MessageId,
  ok: z.boolean(),
  error: z.strictObject({ code: z.string(), message: z.string() }).nullable(),
});

export const HeartbeatAck = z.strictObject({
  type: z.literal('heartbeat_ack'),
  /** Leases the server renewed. */
  renewed: z.array(ExecutionId),
  /** Leases the server no longer recognises: stop these executions and report nothing more. */
  lost: z.array(ExecutionId),
  /** Executions with a pending cancellation (repeated until they finish). */
  cancel: z.array(z.strictObject({ execution_id: ExecutionId, reason: z.string() })),
  /** Renewed LLM gateway tokens for leases whose token nears expiry. */
  llm_tokens: z.array(LlmToken).optional(),
});

export const Cancel = z.strictObject({
  type: z.literal('cancel'),
  execution_id: ExecutionId,
  epoch: Epoch,
  reason: z.string(),
  grace_ms: z.number().int().min(0),
});

export const FollowUp = z.strictObject({
  type: z.literal('message'),
  execution_id: ExecutionId,
  message_id: z.string(),
  text: z.string(),
});

export const ProtocolErrorMessage = z.strictObject({
  type: z.literal('error'),
  code: z.string(),
  message: z.string(),
});

export const ServerMessage = z.discriminatedUnion('type', [
  Welcome,
  Offer,
  Claimed,
  Ack,
  HeartbeatAck,
  Cancel,
  FollowUp,
  ProtocolErrorMessage,
]);
export type ServerMessage = z.infer<typeof ServerMessage>;
export type Welcome = z.infer<typeof Welcome>;
export type Offer = z.infer<typeof Offer>;
export type Cancel = z.infer<typeof Cancel>;

/** WebSocket close codes (4000–4999 are application codes). */
export const CLOSE_CODES = {
  /** A message was not valid JSON, not a known type, or out of order. */
  protocolError: 4400,
  unauthenticated: 4401,
  forbidden: 4403,
  /** Another connection with the same worker id took over. */
  replaced: 4409,
  unsupportedProtocol: 4426,
  serverShuttingDown: 4503,
} as const;

export { WorkerId };
