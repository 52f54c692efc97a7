/**
 * What a provider adapter supplies: the wire APIs it speaks natively and one call that sends a
 * request body in one of them and returns the raw HTTP answer (a fetch `Response`; adapters that
 * use an SDK build one). Everything else — timeouts, pass-through with the usage tap,
 * translation, errors in the client's format — is shared (provider.ts).
 */
import type { LlmApi } from './types.js';

export interface UpstreamCall {
  api: LlmApi;
  /** The body to send, model already resolved. */
  body: Record<string, unknown>;
  /** Forwardable client headers (anthropic-version, anthropic-beta, openai-beta), lower-case. */
  headers: Record<string, string>;
  signal: AbortSignal;
}

export interface Upstream {
  /** Natively spoken APIs; the first is the one translation targets. */
  readonly apis: readonly LlmApi[];
  /** Where requests go, for error messages (no credentials in it). */
  readonly target: string;
  send(call: UpstreamCall): Promise<Response>;
}

/** Upstream response headers worth relaying to the client: request ids and rate-limit hints. */
export const RELAYED_HEADERS = ['x-request-id', 'request-id', 'retry-after', 'openai-processing-ms', 'anthropic-ratelimit-requests-remaining', 'x-ratelimit-remaining-requests', 'x-ratelimit-remaining-tokens'];

export function relayedHeaders(response: Response): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of RELAYED_HEADERS) {
    const value = response.headers.get(name);
    if (value !== null) headers[name] = value;
  }
  return headers;
}
