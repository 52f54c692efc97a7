/**
 * OpenAI and OpenAI-compatible endpoints (vLLM, Ollama, LM Studio, gateways), and Azure OpenAI.
 * OpenAI-style providers speak Chat Completions and Responses at `<base_url>/chat/completions`
 * and `<base_url>/responses` (base_url includes `/v1`) with a Bearer key; Azure speaks Chat
 * Completions at its deployment URL with an `api-key` header (Responses clients are translated).
 */
import type { ProviderConfig } from '../config.js';
import type { Upstream } from '../upstream.js';
import { displayUrl, pickHeaders, postJson } from './http.js';

const OPENAI_BASE_URL = 'https://api.openai.com/v1';
const FORWARDED = ['openai-beta'];

type OpenAiConfig = Extract<ProviderConfig, { type: 'openai' | 'openai-compatible' }>;
type AzureConfig = Extract<ProviderConfig, { type: 'azure-openai' }>;

export function openAiUpstream(config: OpenAiConfig, apiKey: string | undefined): Upstream {
  const base = config.base_url ?? OPENAI_BASE_URL;
  return {
    apis: config.api ? [config.api] : ['chat', 'responses'],
    target: displayUrl(base),
    send: (call) =>
      postJson(`${base}${call.api === 'responses' ? '/responses' : '/chat/completions'}`, call, {
        ...pickHeaders(call.headers, FORWARDED),
        ...config.headers,
        ...(apiKey === undefined ? {} : { authorization: `Bearer ${apiKey}` }),
      }),
  };
}

export function azureOpenAiUpstream(config: AzureConfig, apiKey: string | undefined): Upstream {
  const url = `${config.base_url}/openai/deployments/${encodeURIComponent(config.deployment)}/chat/completions?api-version=${encodeURIComponent(config.api_version)}`;
  return {
    apis: ['chat'],
    target: displayUrl(url),
    send: (call) =>
      postJson(url, call, {
        ...config.headers,
        ...(apiKey === undefined ? {} : { 'api-key': apiKey }),
      }),
  };
}
