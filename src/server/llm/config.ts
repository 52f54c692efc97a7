/**
 * The server's configuration file (`airlock server --config FILE`, `airlock up --config FILE`),
 * parsed once at the edge. Today it holds the control-plane LLM gateway's settings: the providers
 * every team uses, per-team overrides, and the lifetime of task-scoped LLM tokens.
 *
 * Invariants: unknown keys are errors naming the key; a team override replaces the global
 * `models:` block for that team as a whole (providers are never merged across blocks, so a team
 * can never reach a provider it was not given); bodies are never retained — `retain_bodies: true`
 * is refused until body retention exists, rather than silently ignored.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseDuration } from '../../lib/durations.js';
import { ModelsConfig } from '../../llm/config.js';
import { ValidationError } from '../../protocol/errors.js';
import { parseOrThrow } from '../../protocol/zod-errors.js';
import { DEFAULT_LLM_TOKEN_TTL_MS } from './tokens.js';

/** Below a minute a token could expire between two heartbeats of a slow server; above a day it is no longer short-lived. */
const MIN_TOKEN_TTL_MS = 60_000;
const MAX_TOKEN_TTL_MS = 24 * 3_600_000;

const tokenTtl = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === undefined || ms < MIN_TOKEN_TTL_MS || ms > MAX_TOKEN_TTL_MS) {
    ctx.addIssue({ code: 'custom', message: `"${value}" must be a duration from 1m to 24h, written like 15m or 1h` });
    return z.NEVER;
  }
  return ms;
});

const TeamOverride = z.strictObject({
  /** This team's providers instead of the global `models:` block. */
  models: ModelsConfig.optional(),
  /** Zero data retention is the default; retention of bodies is not built yet. */
  retain_bodies: z
    .boolean()
    .optional()
    .refine((value) => value !== true, 'storing prompt and response bodies is not supported yet — remove retain_bodies (bodies are never stored)'),
});

export const ServerFileConfig = z.strictObject({
  /** Providers of the control plane's LLM gateway, for every team without its own. */
  models: ModelsConfig.optional(),
  /** Lifetime of a task-scoped LLM token (renewed on heartbeats once half of it is gone). */
  llm_token_ttl: tokenTtl.optional(),
  /** Per-team settings, by team name. */
  teams: z.record(z.string().min(1), TeamOverride).optional(),
});
export type ServerFileConfig = z.output<typeof ServerFileConfig>;

/** The resolved settings of the LLM gateway. */
export interface LlmGatewayConfig {
  models: ModelsConfig | null;
  /** Team name → its own `models:` block. */
  teams: Record<string, { models: ModelsConfig | null }>;
  tokenTtlMs: number;
}

export function loadServerConfigFile(path: string): ServerFileConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ValidationError(`cannot read the server config file ${path}: ${(err as Error).message} — check the path given to --config`);
  }
  let data: unknown;
  try {
    data = parseYaml(text) ?? {};
  } catch (err) {
    throw new ValidationError(`the server config file ${path} is not valid YAML: ${(err as Error).message}`);
  }
  return parseOrThrow(ServerFileConfig, data, `server config file ${path}`);
}

export function resolveLlmGatewayConfig(file: ServerFileConfig = {}): LlmGatewayConfig {
  const teams: LlmGatewayConfig['teams'] = {};
  for (const [name, team] of Object.entries(file.teams ?? {})) teams[name] = { models: team.models ?? null };
  return { models: file.models ?? null, teams, tokenTtlMs: file.llm_token_ttl ?? DEFAULT_LLM_TOKEN_TTL_MS };
}
