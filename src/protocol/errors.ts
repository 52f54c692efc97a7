/**
 * The small, named set of errors every plane uses. Each has a stable `code` (what machines
 * branch on) and a message that names the cause and the fix (what people read). The API edge
 * maps them to HTTP in one place (server/http/errors.ts); the worker protocol sends the same
 * codes in `ack`/`error` messages.
 */

export type ErrorCode =
  | 'validation'
  | 'payload_too_large'
  | 'unauthenticated'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'lease_lost'
  | 'retryable'
  | 'unavailable'
  | 'protocol'
  | 'internal';

export class AirlockError extends Error {
  readonly code: ErrorCode;
  /** Extra machine-readable detail (for validation: the offending field path). */
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AirlockError';
    this.code = code;
    this.details = options?.details;
  }
}

export class ValidationError extends AirlockError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('validation', message, details ? { details } : undefined);
  }
}

export class NotFoundError extends AirlockError {
  constructor(what: string) {
    super('not_found', `${what} was not found (or belongs to another team)`);
  }
}

export class ConflictError extends AirlockError {
  constructor(message: string) {
    super('conflict', message);
  }
}

/** A worker tried to act on an execution it no longer owns (stale epoch, expired lease). */
export class LeaseLostError extends AirlockError {
  constructor(message: string) {
    super('lease_lost', message);
  }
}

/** A transient failure: the caller may try again after `retryAfterMs`. */
export class RetryableError extends AirlockError {
  readonly retryAfterMs: number;
  constructor(message: string, retryAfterMs: number, cause?: unknown) {
    super('retryable', message, { cause });
    this.retryAfterMs = retryAfterMs;
  }
}

export function isAirlockError(err: unknown): err is AirlockError {
  return err instanceof AirlockError;
}

/** A one-line description of any thrown value, for logs and failure messages. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
