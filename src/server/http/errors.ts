/**
 * The API edge's one mapping from errors to HTTP. Every failure a client sees — ours
 * (AirlockError), fastify's own (bad JSON, wrong content type, body too large, unknown route) and
 * unexpected ones — leaves as `{"error":{"code","message"}}` with a status chosen here.
 *
 * Invariant: an `internal` error never carries internals to the client (no stack, no driver
 * message): the client gets a request id to quote, the log gets the details.
 */
import { z } from 'zod';
import { AirlockError, RetryableError, isAirlockError } from '../../protocol/errors.js';
import { HTTP_STATUS_BY_CODE, fromFastifyError } from '../../protocol/fastify-errors.js';
import { MAX_REQUEST_BODY_BYTES, MAX_PROMPT_BYTES } from '../../protocol/task.js';

/** The wire shape of every error response (also published in the OpenAPI document). */
export const ErrorBody = z
  .object({
    error: z.object({
      code: z.string().describe('stable, machine-readable: validation, unauthenticated, forbidden, not_found, conflict, …'),
      message: z.string().describe('what went wrong and what to do about it, in words (naming the offending field or limit)'),
    }),
  });
export type ErrorBody = z.infer<typeof ErrorBody>;

const STATUS_BY_CODE = HTTP_STATUS_BY_CODE;

export interface HttpError {
  status: number;
  headers: Record<string, string>;
  body: ErrorBody;
  /** True when the cause is ours, not the client's: log it with its stack. */
  internal: boolean;
}

function kib(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${bytes / (1024 * 1024)} MiB` : `${bytes / 1024} KiB`;
}

/** The request body was larger than MAX_REQUEST_BODY_BYTES. */
export function bodyTooLargeError(): AirlockError {
  return new AirlockError(
    'payload_too_large',
    `the request body is over the server's limit of ${kib(MAX_REQUEST_BODY_BYTES)} (${MAX_REQUEST_BODY_BYTES} bytes) — send less (a task's prompt may be at most ${kib(MAX_PROMPT_BYTES)})`,
  );
}

/**
 * The one function that turns anything thrown into an HTTP response. `requestId` is quoted in
 * internal errors so an operator can find the log line.
 */
export function toHttpError(err: unknown, requestId: string): HttpError {
  let error: AirlockError;
  let status: number | undefined;
  if (isAirlockError(err)) {
    error = err;
  } else {
    const fastify = typeof err === 'object' && err !== null ? fromFastifyError(err, bodyTooLargeError) : undefined;
    if (fastify) {
      error = fastify.error;
      status = fastify.status;
    } else {
      error = new AirlockError('internal', 'internal error');
    }
  }
  const headers: Record<string, string> = {};
  if (error instanceof RetryableError) {
    // Retry-After is in whole seconds; never 0, which some clients read as "hammer now".
    headers['retry-after'] = String(Math.max(1, Math.ceil(error.retryAfterMs / 1000)));
  } else if (error.code === 'retryable') {
    headers['retry-after'] = '1';
  }
  if (error.code === 'unauthenticated') headers['www-authenticate'] = 'Bearer';
  const internal = error.code === 'internal';
  const message = internal
    ? `internal error (request ${requestId}) — the server's log has the details under this request id; retry, and report it if it persists`
    : error.message;
  // Exactly code and message: the contract clients and other tests rely on.
  const body: ErrorBody = { error: { code: error.code, message } };
  return { status: status ?? STATUS_BY_CODE[error.code], headers, body, internal };
}
