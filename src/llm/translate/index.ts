/**
 * Translation between the three wire APIs through the canonical representation: requests
 * (client API → provider API), non-streaming answers and streams (provider API → client API).
 * Any pair works because each API only converts to and from the canonical form.
 * Invariant: the translated request keeps the client's intent (conversation, tools, limits);
 * what cannot be carried is refused with a ValidationError naming the field.
 */
import type { SseEvent } from '../sse.js';
import type { LlmApi } from '../types.js';
import type { CanonicalRequest, CanonicalResponse } from './canonical.js';
import { canonicalToChatBody, canonicalToChatRequest, chatBodyToCanonical, chatRequestToCanonical } from './chat.js';
import { createDecoder } from './decode-stream.js';
import { createEncoder } from './encode-stream.js';
import { canonicalToMessagesBody, canonicalToMessagesRequest, messagesBodyToCanonical, messagesRequestToCanonical } from './messages.js';
import { canonicalToResponsesBody, canonicalToResponsesRequest, responsesBodyToCanonical, responsesRequestToCanonical } from './responses.js';

export type * from './canonical.js';

export interface StreamTranslator {
  /** One upstream event (and its parsed data) in; client SSE text out (possibly empty). */
  push(event: SseEvent, data: unknown): string;
  /** The upstream broke off: the client's stream error event. */
  fail(message: string): string;
  /** The upstream ended properly: anything still owed to the client. */
  end(): string;
}

export function requestToCanonical(api: LlmApi, body: Record<string, unknown>): CanonicalRequest {
  return api === 'chat' ? chatRequestToCanonical(body) : api === 'responses' ? responsesRequestToCanonical(body) : messagesRequestToCanonical(body);
}

export function canonicalToRequest(api: LlmApi, request: CanonicalRequest): Record<string, unknown> {
  return api === 'chat' ? canonicalToChatRequest(request) : api === 'responses' ? canonicalToResponsesRequest(request) : canonicalToMessagesRequest(request);
}

export function bodyToCanonical(api: LlmApi, body: Record<string, unknown>): CanonicalResponse {
  return api === 'chat' ? chatBodyToCanonical(body) : api === 'responses' ? responsesBodyToCanonical(body) : messagesBodyToCanonical(body);
}

export function canonicalToBody(api: LlmApi, answer: CanonicalResponse): Record<string, unknown> {
  return api === 'chat' ? canonicalToChatBody(answer) : api === 'responses' ? canonicalToResponsesBody(answer) : canonicalToMessagesBody(answer);
}

/** A client request in `from`'s format, rewritten for a provider speaking `to`. */
export function translateRequest(from: LlmApi, to: LlmApi, body: Record<string, unknown>): Record<string, unknown> {
  return canonicalToRequest(to, requestToCanonical(from, body));
}

/** A provider's non-streaming answer in `from`'s format, rewritten for a client speaking `to`. */
export function translateBody(from: LlmApi, to: LlmApi, body: Record<string, unknown>): Record<string, unknown> {
  return canonicalToBody(to, bodyToCanonical(from, body));
}

/**
 * A provider stream in `from`'s format, rewritten event by event for a client speaking `to`.
 * `clientBody` is the client's request: its model names the answer until the provider names
 * one, and a Chat Completions client's `stream_options.include_usage` decides the usage chunk.
 */
export function createStreamTranslator(from: LlmApi, to: LlmApi, clientBody: Record<string, unknown> = {}): StreamTranslator {
  const decoder = createDecoder(from);
  const streamOptions = clientBody.stream_options;
  const includeUsage = typeof streamOptions === 'object' && streamOptions !== null && (streamOptions as Record<string, unknown>).include_usage === true;
  const encoder = createEncoder(to, { model: typeof clientBody.model === 'string' ? clientBody.model : '', includeUsage });
  return {
    push: (event, data) =>
      decoder
        .decode(event, data)
        .map((e) => encoder.encode(e))
        .join(''),
    fail: (message) => encoder.fail(message, 502),
    end: () => encoder.end(),
  };
}
