/**
 * The `models:` block of a worker's or server's YAML config: named providers and the default one.
 * Parsed once, at the edge, into a `ModelsConfig`; every error names the field and the fix.
 * Invariants: `default` names a configured provider; provider names contain no `/` (the router
 * splits `<provider>/<model>` on the first one); `api_key_env` and `headers` never carry a
 * credential value — keys are read from the environment when the provider is created.
 */
import { z } from 'zod';
import { ValidationError } from '../protocol/errors.js';
import { parseOrThrow } from '../protocol/zod-errors.js';
import { isValidEnvName } from '../lib/env-name.js';
import type { ProviderType } from './types.js';

const PROVIDER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** Headers that carry credentials: they belong in the environment (api_key_env), never in a config file. */
const CREDENTIAL_HEADERS = new Set(['authorization', 'x-api-key', 'api-key', 'proxy-authorization', 'cookie', 'x-goog-api-key']);

const httpUrl = z
  .string()
  .refine((value) => {
    try {
      const url = new URL(value);
      return url.protocol === 'http:' || url.protocol === 'https:';
    } catch {
      return false;
    }
  }, 'must be an http(s) URL, e.g. http://127.0.0.1:8000/v1')
  .transform((value) => value.replace(/\/+$/, ''));

const envName = z.string().refine(isValidEnvName, 'must name an environment variable (letters, digits and "_", not starting with a digit) — put the variable\'s name here, never the key itself');

const headers = z.record(z.string(), z.string()).check((ctx) => {
  for (const name of Object.keys(ctx.value)) {
    if (CREDENTIAL_HEADERS.has(name.toLowerCase())) {
      ctx.issues.push({ code: 'custom', input: ctx.value, path: [name], message: `a credential header does not belong in the config file — name the variable holding the key in api_key_env instead` });
    } else if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) {
      ctx.issues.push({ code: 'custom', input: ctx.value, path: [name], message: 'is not a valid HTTP header name' });
    }
  }
});

/** Seconds a provider may take to start answering, and to send each further chunk of a stream. */
const timeoutSeconds = z.number().positive('must be a positive number of seconds').max(3600, 'must be at most 3600 seconds');

const common = {
  model: z.string().min(1).optional(),
  timeout_seconds: timeoutSeconds.optional(),
  headers: headers.optional(),
};

/**
 * The one API an OpenAI-style endpoint speaks, when it lacks the other (many compatible servers
 * have no /responses): clients of the other API are translated. Absent: both pass through.
 */
const openAiApi = z.enum(['chat', 'responses'], { error: 'must be chat or responses (the API this endpoint serves; leave it out when it serves both)' });

const openai = z.strictObject({ type: z.literal('openai'), base_url: httpUrl.optional(), api_key_env: envName.optional(), api: openAiApi.optional(), ...common });
const openaiCompatible = z.strictObject({ type: z.literal('openai-compatible'), base_url: httpUrl, api_key_env: envName.optional(), api: openAiApi.optional(), ...common });
const azureOpenai = z.strictObject({
  type: z.literal('azure-openai'),
  base_url: httpUrl,
  api_key_env: envName.optional(),
  deployment: z.string().regex(/^[A-Za-z0-9._-]+$/, 'must be the deployment name (letters, digits, ".", "_", "-")'),
  api_version: z.string().min(1, 'must be an Azure OpenAI api-version, e.g. 2024-10-21'),
  ...common,
});
const anthropic = z.strictObject({ type: z.literal('anthropic'), base_url: httpUrl.optional(), api_key_env: envName.optional(), ...common });
const bedrock = z.strictObject({
  type: z.literal('bedrock'),
  region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'must be an AWS region, e.g. us-east-1'),
  /** Endpoint override (a VPC endpoint, or a fake in tests); the regional endpoint otherwise. */
  base_url: httpUrl.optional(),
  ...common,
});
const vertex = z.strictObject({
  type: z.literal('vertex'),
  project_id: z.string().min(1, 'must be the Google Cloud project id'),
  location: z.string().regex(/^[a-z0-9-]+$/, 'must be a Vertex AI location, e.g. us-east5 or global'),
  /** Service-account JSON file; Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, metadata server) otherwise. */
  credentials_file: z.string().min(1).optional(),
  base_url: httpUrl.optional(),
  ...common,
});

const providerSchema = z.discriminatedUnion('type', [openai, openaiCompatible, azureOpenai, anthropic, bedrock, vertex], {
  error: (issue) =>
    issue.code === 'invalid_union' ? 'type must be one of openai, openai-compatible, azure-openai, anthropic, bedrock, vertex' : undefined,
});

export const modelsConfigSchema = z
  .strictObject({
    default: z.string().min(1, 'must name one of the providers'),
    providers: z.record(z.string(), providerSchema).check((ctx) => {
      for (const name of Object.keys(ctx.value)) {
        if (!PROVIDER_NAME.test(name)) {
          ctx.issues.push({ code: 'custom', input: ctx.value, path: [name], message: 'a provider name uses letters, digits, ".", "_" and "-" (no "/": clients pick a provider with "<provider>/<model>")' });
        }
      }
    }),
  })
  .check((ctx) => {
    const names = Object.keys(ctx.value.providers);
    if (names.length === 0) {
      ctx.issues.push({ code: 'custom', input: ctx.value, path: ['providers'], message: 'configure at least one provider' });
    } else if (!names.includes(ctx.value.default)) {
      ctx.issues.push({ code: 'custom', input: ctx.value, path: ['default'], message: `"${ctx.value.default}" is not a configured provider — use one of ${names.join(', ')}` });
    }
  });

export type ModelsConfig = z.output<typeof modelsConfigSchema>;
export type ProviderConfig = ModelsConfig['providers'][string];
/** The same schema under the name the contract uses. */
export const ModelsConfig = modelsConfigSchema;

/** Parse a `models:` block; throws a ValidationError naming `models.<field>` and the fix. */
export function parseModelsConfig(input: unknown, prefix = 'models'): ModelsConfig {
  return parseOrThrow(modelsConfigSchema, input, 'models configuration', prefix);
}

/** Key variables assumed when a provider sets no `api_key_env` (the providers' own SDK conventions). */
export const DEFAULT_API_KEY_ENV: Partial<Record<ProviderType, string>> = {
  openai: 'OPENAI_API_KEY',
  anthropic: 'ANTHROPIC_API_KEY',
  'azure-openai': 'AZURE_OPENAI_API_KEY',
};

/**
 * The API key of a provider, read from `env` now. Returns undefined for a provider that needs
 * none (openai-compatible without api_key_env); throws a ValidationError naming the variable
 * when it is required but unset.
 */
export function resolveApiKey(name: string, config: ProviderConfig, env: NodeJS.ProcessEnv): string | undefined {
  if (config.type === 'bedrock' || config.type === 'vertex') return undefined;
  const variable = config.api_key_env ?? DEFAULT_API_KEY_ENV[config.type];
  if (variable === undefined) return undefined;
  const value = env[variable];
  if (value === undefined || value.trim() === '') {
    const field = `models.providers.${name}.api_key_env`;
    throw new ValidationError(
      `${field}: the environment variable ${variable} is ${value === undefined ? 'not set' : 'empty'} — set it to the ${config.type} API key in the environment of this process${config.api_key_env === undefined ? ` (or name another variable in ${field})` : ''}`,
      { field },
    );
  }
  return value.trim();
}
