/**
 * The model router: one entry point for every model request, on the worker (BYOLLM) and on the
 * server (LLM gateway). It checks the request's minimal shape, picks the provider — the
 * `<provider>/` prefix of `model` when it names one, the default provider otherwise — sets the
 * model the provider should run (its configured `model` wins over the client's), and hands over.
 * Invariant: `handle` never rejects; every failure is an error response in the client's API.
 */
import { ValidationError } from '../protocol/errors.js';
import type { ModelsConfig } from './config.js';
import { errorResponse } from './errors.js';
import { createProviderFromConfig } from './providers/index.js';
import { isRecord } from './sse.js';
import type { LlmApi, LlmProvider, LlmRequest, LlmResponse } from './types.js';

export interface ModelRouterOptions {
  /** Where API keys are read (`api_key_env`) and cloud credentials found. */
  env: NodeJS.ProcessEnv;
  /** Silence timeout for providers that set no timeout_seconds (default 600 s). */
  timeoutMs?: number;
}

export interface ModelRouter {
  handle(request: LlmRequest): Promise<LlmResponse>;
  /** The configured providers by name. */
  readonly providers: ReadonlyMap<string, LlmProvider>;
  readonly defaultProvider: string;
}

export interface Route {
  provider: string;
  /** The model name to send the provider. */
  model: string;
}

/**
 * Where a model name goes: `<provider>/<rest>` picks that provider (split on the first `/`, so
 * `local/meta-llama/Llama-3` sends `meta-llama/Llama-3` to `local`); a name without `/` goes to
 * the default provider. A prefix that names no provider is an error naming the configured ones.
 * `default` (what agents send when the task names no model) means the provider's configured
 * `model`; a provider without one cannot answer it, and says so rather than pass "default" on.
 */
export function routeModel(config: ModelsConfig, model: string): Route {
  const slash = model.indexOf('/');
  let provider = config.default;
  let name = model;
  if (slash >= 0) {
    provider = model.slice(0, slash);
    name = model.slice(slash + 1);
    if (!(provider in config.providers)) {
      throw new ValidationError(
        `model "${model}": no provider named "${provider}" is configured (configured: ${Object.keys(config.providers).join(', ')}) — write "<provider>/<model>", e.g. "${config.default}/${model}", or a model name without "/" for the default provider`,
        { field: 'model' },
      );
    }
    if (name === '') throw new ValidationError(`model "${model}": the model name after "${provider}/" is empty — write "${provider}/<model>"`, { field: 'model' });
  }
  const configured = config.providers[provider]!.model;
  if (configured === undefined && name === DEFAULT_MODEL) {
    throw new ValidationError(
      `model "${model}": provider "${provider}" has no default model — set models.providers.${provider}.model in the config, or give the task a model (airlock task create --model NAME)`,
      { field: 'model' },
    );
  }
  return { provider, model: configured ?? name };
}

/** The model name that stands for "whatever the route is configured with". */
export const DEFAULT_MODEL = 'default';

/** The minimal shape every provider rejects with a 400 — checked here so the client hears it in its own format. */
export function checkRequestBody(api: LlmApi, body: unknown): string | undefined {
  if (!isRecord(body)) return 'the request body must be a JSON object';
  if (typeof body.model !== 'string' || body.model.trim() === '') return 'model: required — name the model to use (a string, e.g. "gpt-4o" or "<provider>/<model>")';
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean') return 'stream: must be true or false';
  if (api === 'responses') {
    if (typeof body.input !== 'string' && !Array.isArray(body.input)) return 'input: required — a string or a list of input items';
    return undefined;
  }
  if (!Array.isArray(body.messages)) return 'messages: required — a list of messages';
  if (body.messages.length === 0) return 'messages: must contain at least one message';
  if (api === 'messages' && body.max_tokens !== undefined && (typeof body.max_tokens !== 'number' || !Number.isInteger(body.max_tokens) || body.max_tokens < 1)) {
    return 'max_tokens: must be a positive integer';
  }
  return undefined;
}

export function createModelRouter(config: ModelsConfig, options: ModelRouterOptions): ModelRouter {
  const providers = new Map<string, LlmProvider>();
  for (const [name, providerConfig] of Object.entries(config.providers)) {
    providers.set(name, createProviderFromConfig(name, providerConfig, { env: options.env, ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }) }));
  }

  const handle = async (request: LlmRequest): Promise<LlmResponse> => {
    const problem = checkRequestBody(request.api, request.body);
    if (problem !== undefined) return errorResponse(request.api, 400, problem);
    let route: Route;
    try {
      route = routeModel(config, request.body.model as string);
    } catch (error) {
      return errorResponse(request.api, 400, (error as Error).message);
    }
    const provider = providers.get(route.provider)!;
    try {
      return await provider.handle({ ...request, body: { ...request.body, model: route.model } });
    } catch (error) {
      // Providers answer failures as responses; this is the last guard of the never-rejects rule.
      return errorResponse(request.api, 500, `the provider "${route.provider}" failed unexpectedly: ${(error as Error).message}`);
    }
  };

  return { handle, providers, defaultProvider: config.default };
}
