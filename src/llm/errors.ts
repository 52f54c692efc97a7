/**
 * Errors in the client's own wire format. Every failure a client can meet — a bad request, an
 * unknown provider, an upstream HTTP error, a timeout, a stream that breaks half-way — reaches it
 * as the error body (or in-stream error event) of the API it speaks, so its SDK raises the error
 * it knows. Invariant: messages here carry no request or response body, only what went wrong.
 */
import { WholeBody } from './body.js';
import type { LlmApi, LlmResponse } from './types.js';
import { encodeSse, isRecord, tryJson, utf8 } from './sse.js';

/** OpenAI's `error.type` / `error.code` by status. */
function openAiErrorKind(status: number): { type: string; code: string | null } {
  if (status === 401) return { type: 'invalid_request_error', code: 'invalid_api_key' };
  if (status === 403) return { type: 'invalid_request_error', code: 'unsupported_country_region_territory' };
  if (status === 404) return { type: 'invalid_request_error', code: 'model_not_found' };
  if (status === 429) return { type: 'requests', code: 'rate_limit_exceeded' };
  if (status === 504) return { type: 'server_error', code: 'timeout' };
  if (status >= 500) return { type: 'server_error', code: null };
  return { type: 'invalid_request_error', code: null };
}

/** Anthropic's `error.type` by status (its documented error table). */
export function anthropicErrorType(status: number): string {
  const table: Record<number, string> = {
    400: 'invalid_request_error',
    401: 'authentication_error',
    402: 'billing_error',
    403: 'permission_error',
    404: 'not_found_error',
    413: 'request_too_large',
    429: 'rate_limit_error',
    500: 'api_error',
    504: 'timeout_error',
    529: 'overloaded_error',
  };
  return table[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error');
}

/** The error body of `api` for an HTTP status. */
export function errorBody(api: LlmApi, status: number, message: string): Record<string, unknown> {
  if (api === 'messages') return { type: 'error', error: { type: anthropicErrorType(status), message } };
  const { type, code } = openAiErrorKind(status);
  return { error: { message, type, param: null, code } };
}

/** A complete error response (JSON body, usage null) in the client's format. */
export function errorResponse(api: LlmApi, status: number, message: string): LlmResponse {
  const bytes = utf8(JSON.stringify(errorBody(api, status, message)));
  return {
    status,
    headers: { 'content-type': 'application/json' },
    body: new WholeBody(bytes),
    usage: Promise.resolve(null),
  };
}

/**
 * The in-stream error event of `api`, as SSE text: Chat Completions sends `data: {"error":…}`
 * (no [DONE] follows), Responses an `error` event, Messages `event: error`.
 */
export function streamErrorEvent(api: LlmApi, message: string, options: { status?: number; sequenceNumber?: number } = {}): string {
  const status = options.status ?? 500;
  if (api === 'chat') return encodeSse({ data: JSON.stringify(errorBody('chat', status, message)) });
  if (api === 'responses') {
    const { code } = openAiErrorKind(status);
    return encodeSse({ event: 'error', data: JSON.stringify({ type: 'error', code: code ?? 'server_error', message, param: null, sequence_number: options.sequenceNumber ?? 0 }) });
  }
  const type = status === 500 ? 'api_error' : anthropicErrorType(status);
  return encodeSse({ event: 'error', data: JSON.stringify({ type: 'error', error: { type, message } }) });
}

/**
 * The message of an error body from any of the three APIs (or a plain-text body), for relaying
 * an upstream failure in the client's format. Cut to a sane length: providers sometimes answer
 * errors with whole HTML pages.
 */
export function upstreamErrorMessage(text: string): string | undefined {
  const parsed = tryJson(text);
  const candidates: unknown[] = [];
  if (isRecord(parsed)) {
    const error = parsed.error;
    if (isRecord(error)) candidates.push(error.message);
    else candidates.push(error);
    candidates.push(parsed.message, parsed.Message, parsed.detail);
  }
  if (Array.isArray(parsed) && isRecord(parsed[0]) && isRecord(parsed[0].error)) candidates.push(parsed[0].error.message);
  const found = candidates.find((c): c is string => typeof c === 'string' && c.trim() !== '');
  if (found) return found.slice(0, MAX_RELAYED_MESSAGE);
  if (parsed === undefined && text.trim() !== '' && !/^\s*</.test(text)) return text.trim().slice(0, MAX_RELAYED_MESSAGE);
  return undefined;
}

/** Long enough for any real provider error message, short enough to never relay a page. */
const MAX_RELAYED_MESSAGE = 2000;
