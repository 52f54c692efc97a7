/**
 * Translation between the three wire APIs through one canonical representation (canonical.ts):
 * requests (client API → provider API), non-streaming bodies and streams (provider API → client
 * API). Placeholder until the translators land: every pair but the identity is refused.
 */
import { ValidationError } from '../../protocol/errors.js';
import type { SseEvent } from '../sse.js';
import type { LlmApi } from '../types.js';

export interface StreamTranslator {
  /** One upstream event (and its parsed data) in; client SSE text out (possibly empty). */
  push(event: SseEvent, data: unknown): string;
  /** The upstream broke off: the client's stream error event. */
  fail(message: string): string;
  /** The upstream ended properly: anything still owed to the client. */
  end(): string;
}

const unsupported = (from: LlmApi, to: LlmApi): ValidationError => new ValidationError(`translating ${from} to ${to} is not supported yet — configure a provider that speaks ${from}`);

export function translateRequest(from: LlmApi, to: LlmApi, _body: Record<string, unknown>): Record<string, unknown> {
  throw unsupported(from, to);
}

export function translateBody(from: LlmApi, to: LlmApi, _body: Record<string, unknown>): unknown {
  throw unsupported(from, to);
}

export function createStreamTranslator(from: LlmApi, to: LlmApi): StreamTranslator {
  throw unsupported(from, to);
}
