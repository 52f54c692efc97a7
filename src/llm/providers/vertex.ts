/**
 * Google Vertex AI, Anthropic models: `:rawPredict` / `:streamRawPredict` on
 * `<base>/v1/projects/<project>/locations/<location>/publishers/anthropic/models/<model>`, the
 * Anthropic Messages body with `anthropic_version: vertex-2023-10-16`, and a bearer token from
 * `google-auth-library` (a credentials file — service account, external account — or
 * Application Default Credentials). The answer is Anthropic's own wire format, so Messages
 * clients pass through. Invariant: tokens are fetched and cached by the auth library, never kept
 * or logged here.
 */
import { GoogleAuth } from 'google-auth-library';
import type { ProviderConfig } from '../config.js';
import type { Upstream } from '../upstream.js';
import { anthropicErrorResponse, platformBody } from './anthropic-body.js';
import { displayUrl, postJson } from './http.js';

export const VERTEX_ANTHROPIC_VERSION = 'vertex-2023-10-16';
const SCOPE = 'https://www.googleapis.com/auth/cloud-platform';

type VertexConfig = Extract<ProviderConfig, { type: 'vertex' }>;

export function vertexBaseUrl(config: VertexConfig): string {
  if (config.base_url) return config.base_url;
  return config.location === 'global' ? 'https://aiplatform.googleapis.com' : `https://${config.location}-aiplatform.googleapis.com`;
}

export function vertexUpstream(name: string, config: VertexConfig, env: NodeJS.ProcessEnv): Upstream {
  const keyFile = config.credentials_file ?? env.GOOGLE_APPLICATION_CREDENTIALS;
  const auth = new GoogleAuth({ scopes: [SCOPE], ...(keyFile ? { keyFile } : {}) });
  const base = `${vertexBaseUrl(config)}/v1/projects/${encodeURIComponent(config.project_id)}/locations/${encodeURIComponent(config.location)}/publishers/anthropic/models`;
  return {
    apis: ['messages'],
    target: displayUrl(base),
    send: async (call) => {
      let token: string | null | undefined;
      try {
        token = await auth.getAccessToken();
      } catch (error) {
        return anthropicErrorResponse(502, `could not get a Google access token for provider "${name}": ${(error as Error).message} — check models.providers.${name}.credentials_file or GOOGLE_APPLICATION_CREDENTIALS`);
      }
      if (!token) return anthropicErrorResponse(502, `Google returned no access token for provider "${name}"`);
      const method = call.body.stream === true ? 'streamRawPredict' : 'rawPredict';
      const url = `${base}/${encodeURIComponent(String(call.body.model))}:${method}`;
      const body = platformBody(call.body, VERTEX_ANTHROPIC_VERSION, call.headers, { keepStream: true });
      return postJson(url, { ...call, body }, { ...config.headers, authorization: `Bearer ${token}` });
    },
  };
}
