/**
 * The worker's forges (`forges:` in its config): where to open pull/merge requests for pushed
 * branches. Each entry names the forge's type, the repository URLs it covers, its REST API and
 * the NAME of the environment variable holding its token (the value is read at start-up and
 * never enters a task environment).
 */
import { z } from 'zod';
import { ValidationError } from '../../protocol/errors.js';

export const FORGE_TYPES = ['github', 'gitlab'] as const;
export type ForgeType = (typeof FORGE_TYPES)[number];

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function isHttpUrl(s: string): boolean {
  try {
    const url = new URL(s);
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.username === '' && url.password === '';
  } catch {
    return false;
  }
}

export const ForgeConfig = z.strictObject({
  type: z.enum(FORGE_TYPES),
  url_prefix: z
    .string()
    .refine((s) => isHttpUrl(s) && new URL(s).protocol === 'https:', 'must be an https URL prefix like https://github.com/org/ (it also covers ssh URLs of the same host and path)'),
  api_url: z.string().refine(isHttpUrl, 'must be an http(s) URL without credentials, like https://api.github.com or https://gitlab.example.com/api/v4').optional(),
  token_env: z.string().regex(ENV_NAME, 'must be the NAME of an environment variable of the worker (the token is read from it)'),
});
export type ForgeConfig = z.infer<typeof ForgeConfig>;

export interface ForgeRule {
  type: ForgeType;
  /** "host/path" form of url_prefix (see repositoryLocation). */
  prefix: string;
  apiUrl: string;
  token: string;
  tokenEnv: string;
}

/** "host/path" of a repository URL in any accepted form (https, ssh://, user@host:path); undefined for local paths. */
export function repositoryLocation(url: string): { host: string; path: string } | undefined {
  let host: string;
  let pathname: string;
  if (/^[a-z]+:\/\//i.test(url)) {
    try {
      const parsed = new URL(url);
      host = parsed.hostname.toLowerCase();
      pathname = decodeURIComponent(parsed.pathname);
    } catch {
      return undefined;
    }
  } else {
    const scp = /^[^@/]+@([^:/]+):(.+)$/.exec(url);
    if (!scp) return undefined;
    host = scp[1]!.toLowerCase();
    pathname = scp[2]!;
  }
  const path = pathname.replace(/^\/+/, '').replace(/\/+$/, '').replace(/\.git$/, '');
  return path ? { host, path } : undefined;
}

function defaultApiUrl(type: ForgeType, prefix: string): string {
  const origin = new URL(prefix).origin;
  if (type === 'github') return new URL(prefix).hostname === 'github.com' ? 'https://api.github.com' : `${origin}/api/v3`;
  return `${origin}/api/v4`;
}

export function resolveForges(forges: readonly ForgeConfig[], env: NodeJS.ProcessEnv): ForgeRule[] {
  return forges.map((forge, i) => {
    const token = env[forge.token_env];
    if (token === undefined || token === '') {
      throw new ValidationError(`forges[${i}] (${forge.type} ${forge.url_prefix}): the worker's environment has no ${forge.token_env} — export it before starting the worker (the config names the variable, never the token)`);
    }
    const location = repositoryLocation(forge.url_prefix);
    return {
      type: forge.type,
      prefix: location ? `${location.host}/${location.path}` : new URL(forge.url_prefix).hostname.toLowerCase(),
      apiUrl: (forge.api_url ?? defaultApiUrl(forge.type, forge.url_prefix)).replace(/\/+$/, ''),
      token,
      tokenEnv: forge.token_env,
    };
  });
}

/** The forge covering `url` (longest prefix wins), and the repository's path on it. */
export function forgeFor(rules: readonly ForgeRule[], url: string): { rule: ForgeRule; path: string } | undefined {
  const location = repositoryLocation(url);
  if (!location) return undefined;
  const full = `${location.host}/${location.path}`;
  let best: ForgeRule | undefined;
  for (const rule of rules) {
    if ((full === rule.prefix || full.startsWith(`${rule.prefix}/`)) && (!best || rule.prefix.length > best.prefix.length)) best = rule;
  }
  return best ? { rule: best, path: location.path } : undefined;
}
