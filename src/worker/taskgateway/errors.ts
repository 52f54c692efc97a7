/**
 * The task gateway's one mapping from errors to HTTP. Everything an agent gets back on failure is
 * `{"error":{"code","message"[,"field"][,"expected_seq"]}}`: ours (AirlockError), fastify's own
 * (bad JSON, body too large, wrong content type) and unexpected ones (500, no internals).
 */
import { AirlockError, RetryableError, isAirlockError } from '../../protocol/errors.js';
import { HTTP_STATUS_BY_CODE, fromFastifyError } from '../../protocol/fastify-errors.js';
import { MAX_REQUEST_BODY_BYTES } from '../../protocol/task.js';

const STATUS_BY_CODE = HTTP_STATUS_BY_CODE;

export interface GatewayErrorBody {
  error: { code: string; message: string; field?: string; expected_seq?: number };
}

export interface GatewayHttpError {
  status: number;
  headers: Record<string, string>;
  body: GatewayErrorBody;
  /** True when the cause is the worker's, not the agent's: log it with its details. */
  internal: boolean;
}

/** The gateway's own 413: its limit, and what the agent should do. */
function bodyTooLarge(): AirlockError {
  return new AirlockError(
    'payload_too_large',
    `the request body is over the task gateway's limit of ${MAX_REQUEST_BODY_BYTES} bytes (1 MiB) — send fewer events per upload`,
  );
}

export function toGatewayHttpError(err: unknown): GatewayHttpError {
  let error: AirlockError;
  let status: number | undefined;
  if (isAirlockError(err)) {
    error = err;
  } else {
    const fastify = typeof err === 'object' && err !== null ? fromFastifyError(err, bodyTooLarge) : undefined;
    error = fastify?.error ?? new AirlockError('internal', 'internal error');
    status = fastify?.status;
  }
  const headers: Record<string, string> = {};
  if (error instanceof RetryableError) headers['retry-after'] = String(Math.max(1, Math.ceil(error.retryAfterMs / 1000)));
  if (error.code === 'unauthenticated') headers['www-authenticate'] = 'Bearer';
  const internal = error.code === 'internal';
  const body: GatewayErrorBody = {
    error: { code: error.code, message: internal ? "internal error in the task gateway — the worker's log has the details; retry" : error.message },
  };
  const field = error.details?.field;
  if (!internal && typeof field === 'string') body.error.field = field;
  const expected = error.details?.expected_seq;
  if (typeof expected === 'number') body.error.expected_seq = expected;
  return { status: status ?? STATUS_BY_CODE[error.code], headers, body, internal };
}
