/**
 * Anthropic's Messages API at `<base_url>/v1/messages` (base_url without `/v1`, as Anthropic's
 * SDKs take it) with `x-api-key` and `anthropic-version`. The client's `anthropic-version` and
 * `anthropic-beta` are forwarded; clients of other APIs get the default version.
 */
import type { ProviderConfig } from '../config.js';
import type { Upstream } from '../upstream.js';
import { displayUrl, pickHeaders, postJson } from './http.js';

const ANTHROPIC_BASE_URL = 'https://api.anthropic.com';
/** The Messages API version every current Anthropic feature is available under. */
export const ANTHROPIC_VERSION = '2023-06-01';

type AnthropicConfig = Extract<ProviderConfig, { type: 'anthropic' }>;

export function anthropicUpstream(config: AnthropicConfig, apiKey: string | undefined): Upstream {
  const base = (config.base_url ?? ANTHROPIC_BASE_URL).replace(/\/v1$/, '');
  return {
    apis: ['messages'],
    target: displayUrl(`${base}/v1/messages`),
    send: (call) =>
      postJson(`${base}/v1/messages`, call, {
        'anthropic-version': ANTHROPIC_VERSION,
        ...pickHeaders(call.headers, ['anthropic-version', 'anthropic-beta']),
        ...config.headers,
        ...(apiKey === undefined ? {} : { 'x-api-key': apiKey }),
      }),
  };
}
