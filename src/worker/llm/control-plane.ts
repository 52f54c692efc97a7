/**
 * The worker's route to the control plane's LLM gateway (the default when the worker has no
 * `models:`): a provider whose upstream is `<server>/llm/v1/…`, which speaks all three APIs, so
 * every request and stream passes through untouched (no translation on the worker). The shared
 * provider machinery (llm/provider.ts) supplies the usage tap, the silence timeout and errors in
 * the client's format.
 *
 * Invariants: the execution's LLM token goes only into the Authorization header of the request
 * to the server — never to the agent, a URL, a log or an error message; the worker's API key is
 * never sent on this route.
 */
import { httpPost } from '../../lib/http-post.js';
import { errorResponse } from '../../llm/errors.js';
import { createProvider } from '../../llm/provider.js';
import type { LlmProvider, LlmRequest, LlmResponse } from '../../llm/types.js';
import { LLM_API_PATHS } from '../../llm/types.js';
import type { Upstream } from '../../llm/upstream.js';

/** The server gateway's path prefix (server/llm/gateway.ts serves the three APIs under it). */
export const CONTROL_PLANE_LLM_PREFIX = '/llm';
/**
 * Silence allowed from the server before the worker gives up: above the longest provider timeout
 * a server can configure (timeout_seconds ≤ 3600), so the server's own timeout — with the
 * provider's name and the fix in its message — always answers first.
 */
export const CONTROL_PLANE_TIMEOUT_MS = 3_660_000;

/** The server's base URL for HTTP (a worker may be configured with ws:// or wss://). */
export function httpBase(serverUrl: string): string {
  const url = new URL(serverUrl);
  if (url.protocol === 'ws:') url.protocol = 'http:';
  if (url.protocol === 'wss:') url.protocol = 'https:';
  return url.origin;
}

/**
 * A provider that relays one execution's model requests to the control plane with that
 * execution's current LLM token (`token()` is read per request: renewals take effect at once).
 */
export function controlPlaneProvider(serverUrl: string, token: () => string | null, timeoutMs = CONTROL_PLANE_TIMEOUT_MS): LlmProvider {
  const base = httpBase(serverUrl);
  const upstream: Upstream = {
    apis: ['chat', 'responses', 'messages'],
    target: `${base}${CONTROL_PLANE_LLM_PREFIX}/v1 (the control plane's LLM gateway)`,
    send(call) {
      return httpPost(`${base}${CONTROL_PLANE_LLM_PREFIX}${LLM_API_PATHS[call.api]}`, {
        headers: {
          'content-type': 'application/json',
          accept: call.body.stream === true ? 'text/event-stream' : 'application/json',
          ...call.headers,
          authorization: `Bearer ${token() ?? ''}`,
        },
        body: JSON.stringify(call.body),
        signal: call.signal,
      });
    },
  };
  const provider = createProvider({ name: 'control-plane', type: 'openai-compatible', upstream, timeoutMs });
  return {
    name: provider.name,
    type: provider.type,
    async handle(request: LlmRequest): Promise<LlmResponse> {
      if (token() === null) {
        return errorResponse(
          request.api,
          503,
          'this worker holds no LLM token for the execution — the server sends one with the claim (servers older than this worker do not); upgrade the server, or configure `models:` on the worker (BYOLLM)',
        );
      }
      return provider.handle(request);
    },
  };
}
