/**
 * HTTP statuses of our error codes, and the errors fastify raises before a route handler runs (body parsing, content type, size), in our
 * words. Shared by the control plane's API and the worker's task gateway, which both speak
 * `{"error": {"code", "message"}}`.
 */
import { AirlockError, type ErrorCode } from './errors.js';

/** The HTTP status of each error code: one table for the API and the task gateway. */
export const HTTP_STATUS_BY_CODE: Readonly<Record<ErrorCode, number>> = {
  validation: 400,
  payload_too_large: 413,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  lease_lost: 409,
  retryable: 503,
  unavailable: 503,
  // The worker protocol's code for a malformed message; on HTTP it is the client's fault too.
  protocol: 400,
  internal: 500,
};

export interface FastifyLikeError {
  code?: unknown;
  statusCode?: unknown;
  message?: unknown;
}

/** `tooLarge` is the caller's own 413 error: each server names its own limit and remedy. */
export function fromFastifyError(err: FastifyLikeError, tooLarge: () => AirlockError): { error: AirlockError; status?: number } | undefined {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { error: tooLarge() };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { error: new AirlockError('validation', 'the request body is not valid JSON — check quoting and commas, and send Content-Type: application/json') };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { error: new AirlockError('validation', 'the request body is empty but Content-Type is application/json — send a JSON body, or no Content-Type header') };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      // The ErrorCode set has no media-type code; the status says what HTTP clients expect.
      return { error: new AirlockError('validation', 'unsupported Content-Type — send the body as JSON with Content-Type: application/json'), status: 415 };
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { error: new AirlockError('validation', 'the request body does not match its Content-Length header — resend the request') };
    default:
      break;
  }
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    // Any other client error fastify detected (its message is about the request, not our internals).
    const message = typeof err.message === 'string' ? err.message : 'bad request';
    return { error: new AirlockError(err.statusCode === 404 ? 'not_found' : 'validation', message), status: err.statusCode };
  }
  return undefined;
}
