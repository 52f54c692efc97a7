/**
 * POST over node:http(s) with keep-alive, answered with node:http's own response stream — the
 * hot path of every model call. Why not fetch: measured on the reference machine under load,
 * Node 20's fetch (undici) added ~8–10 ms per request over loopback where node:http with a
 * keep-alive agent took ~1 ms; and wrapping the answer in a WHATWG `Response` (web streams) cost
 * another ~0.4 ms of CPU per request and hop (bench/gateway.js).
 *
 * Invariants: a connection failure rejects like fetch does (a TypeError whose `cause` carries the
 * system error and its `code`); aborting `signal` destroys the request and the response body;
 * ending the iteration of `body` early destroys the response stream (and its socket).
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';

/** Sockets kept open per host: enough for the concurrent model calls of a busy worker. */
const MAX_FREE_SOCKETS = 64;
const agents = {
  'http:': new http.Agent({ keepAlive: true, maxFreeSockets: MAX_FREE_SOCKETS }),
  'https:': new https.Agent({ keepAlive: true, maxFreeSockets: MAX_FREE_SOCKETS }),
};

export interface HttpPostInit {
  headers: Record<string, string>;
  body: string;
  signal?: AbortSignal;
}

export interface HttpAnswer {
  readonly status: number;
  readonly statusText: string;
  /** A response header by lower-case name (repeated headers joined with ", "). */
  header(name: string): string | undefined;
  /** The body, unread. */
  readonly body: IncomingMessage;
}

export function httpPost(url: string, init: HttpPostInit): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const protocol = target.protocol === 'https:' ? 'https:' : 'http:';
    const request = (protocol === 'https:' ? https : http).request(
      target,
      {
        method: 'POST',
        agent: agents[protocol],
        headers: { ...init.headers, 'content-length': String(Buffer.byteLength(init.body)) },
        ...(init.signal ? { signal: init.signal } : {}),
      },
      (res) => {
        resolve({
          status: res.statusCode ?? 502,
          statusText: res.statusMessage ?? '',
          header(name) {
            const value = res.headers[name];
            return Array.isArray(value) ? value.join(', ') : value;
          },
          body: res,
        });
      },
    );
    request.on('error', (err) => reject(new TypeError(`request to ${target.origin} failed: ${err.message}`, { cause: err })));
    request.end(init.body);
  });
}
