/**
 * What a provider adapter supplies: the wire APIs it speaks natively and one call that sends a
 * request body in one of them and returns the raw HTTP answer (an `UpstreamAnswer`: node:http's
 * response as it comes, or one built from parts by adapters whose transport is an SDK).
 * Everything else — timeouts, pass-through with the usage tap, translation, errors in the
 * client's format — is shared (provider.ts).
 *
 * Why not a WHATWG `Response`: wrapping node:http's stream in web streams costs about 0.4 ms of
 * CPU per request and hop (bench/gateway.js), on the path every model call of every task takes.
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
  send(call: UpstreamCall): Promise<UpstreamAnswer>;
}

/** A provider's HTTP answer, body not yet read. */
export interface UpstreamAnswer {
  readonly status: number;
  readonly statusText: string;
  /** A response header by lower-case name. */
  header(name: string): string | undefined;
  /**
   * The body chunk by chunk, read at most once. Ending the iteration early (`return()`, as a
   * `break` out of `for await` does) releases the connection.
   */
  readonly body: AsyncIterable<Uint8Array>;
}

/** An answer built from parts: a whole body, or a stream of chunks. */
export function upstreamAnswer(status: number, headers: Record<string, string>, body: string | Uint8Array | AsyncIterable<Uint8Array>): UpstreamAnswer {
  const lower = new Map(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
  const whole = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  return {
    status,
    statusText: '',
    header: (name) => lower.get(name),
    body: whole instanceof Uint8Array ? oneChunk(whole) : whole,
  };
}

async function* oneChunk(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  if (bytes.byteLength > 0) yield bytes;
}

/** Upstream response headers worth relaying to the client: request ids and rate-limit hints. */
export const RELAYED_HEADERS = ['x-request-id', 'request-id', 'retry-after', 'openai-processing-ms', 'anthropic-ratelimit-requests-remaining', 'x-ratelimit-remaining-requests', 'x-ratelimit-remaining-tokens'];

export function relayedHeaders(response: UpstreamAnswer): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of RELAYED_HEADERS) {
    const value = response.header(name);
    if (value !== undefined) headers[name] = value;
  }
  return headers;
}
