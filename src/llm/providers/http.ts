/**
 * The one HTTP call every HTTP provider makes: POST a JSON body with the provider's headers on
 * the call's signal, over node:http(s) with keep-alive (lib/http-post.ts: fetch costs several
 * milliseconds of CPU per request on this hot path). Invariant: credentials go only into the
 * headers of the outgoing request, never into a URL, an error message or a log.
 */
import { httpPost } from '../../lib/http-post.js';
import type { UpstreamAnswer, UpstreamCall } from '../upstream.js';

export function postJson(url: string, call: UpstreamCall, headers: Record<string, string>): Promise<UpstreamAnswer> {
  return httpPost(url, {
    headers: {
      'content-type': 'application/json',
      accept: call.body.stream === true ? 'text/event-stream' : 'application/json',
      ...headers,
    },
    body: JSON.stringify(call.body),
    signal: call.signal,
  });
}

/** Only the named client headers, when the client sent them. */
export function pickHeaders(headers: Record<string, string>, names: readonly string[]): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const name of names) {
    const value = headers[name];
    if (value !== undefined) picked[name] = value;
  }
  return picked;
}

/** The URL without credentials or query, for error messages. */
export function displayUrl(url: string): string {
  const parsed = new URL(url);
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
}
