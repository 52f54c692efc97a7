/**
 * Builds one `LlmProvider` from its config entry: resolves the API key from the environment now
 * (a missing key fails at startup, naming the variable, not at the first request) and picks the
 * adapter for its type.
 */
import { resolveApiKey, type ProviderConfig } from '../config.js';
import { createProvider, DEFAULT_TIMEOUT_MS } from '../provider.js';
import type { LlmProvider } from '../types.js';
import type { Upstream } from '../upstream.js';
import { anthropicUpstream } from './anthropic.js';
import { azureOpenAiUpstream, openAiUpstream } from './openai.js';
import { bedrockUpstream } from './bedrock.js';
import { vertexUpstream } from './vertex.js';

export interface ProviderFactoryOptions {
  env: NodeJS.ProcessEnv;
  /** Silence timeout for providers without timeout_seconds. */
  timeoutMs?: number;
}

export function upstreamFor(name: string, config: ProviderConfig, env: NodeJS.ProcessEnv): Upstream {
  const apiKey = resolveApiKey(name, config, env);
  switch (config.type) {
    case 'openai':
    case 'openai-compatible':
      return openAiUpstream(config, apiKey);
    case 'azure-openai':
      return azureOpenAiUpstream(config, apiKey);
    case 'anthropic':
      return anthropicUpstream(config, apiKey);
    case 'bedrock':
      return bedrockUpstream(config, env);
    case 'vertex':
      return vertexUpstream(name, config, env);
  }
}

export function createProviderFromConfig(name: string, config: ProviderConfig, options: ProviderFactoryOptions): LlmProvider {
  const timeoutMs = config.timeout_seconds !== undefined ? config.timeout_seconds * 1000 : (options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  return createProvider({ name, type: config.type, upstream: upstreamFor(name, config, options.env), timeoutMs });
}
