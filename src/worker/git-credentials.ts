/**
 * The worker's git credentials (`git_credentials:` in its config) and the task gateway's answer
 * to `POST /v1/git/credential`.
 *
 * Each rule names a URL prefix, a username and the NAME of an environment variable of the worker
 * holding the password/token — never the value, which is looked up when the worker starts.
 *
 * Invariants:
 * - A credential is handed out only for an https URL that is one of THIS execution's
 *   repositories (same host, same path, ".git" and trailing "/" ignored) and starts with a
 *   configured prefix; the longest matching prefix wins. Anything else is null (the gateway
 *   answers 404): a task cannot fish for the token of another repository or host.
 * - The values are secrets: the runner redacts them from everything the task reports.
 */
import { z } from 'zod';
import { ValidationError } from '../protocol/errors.js';
import type { GitCredential, GitCredentialQuery } from '../protocol/gateway.js';
import type { Repository } from '../protocol/environment.js';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** One entry of `git_credentials:` as written in the YAML file. */
export const GitCredentialConfig = z.strictObject({
  url_prefix: z
    .string()
    .refine((s) => {
      try {
        const url = new URL(s);
        return url.protocol === 'https:' && url.username === '' && url.password === '' && !url.search && !url.hash;
      } catch {
        return false;
      }
    }, 'must be an https URL prefix without credentials, like https://github.com/org/')
    .describe('credentials apply to repository URLs starting with this'),
  username: z.string().min(1).max(256).describe('the username git sends (x-access-token for GitHub tokens, oauth2 for GitLab)'),
  password_env: z.string().regex(ENV_NAME, 'must be the NAME of an environment variable of the worker (the value is read from it)').describe('environment variable holding the token'),
});
export type GitCredentialConfig = z.infer<typeof GitCredentialConfig>;

/** A resolved rule: the token read from the worker's environment. */
export interface GitCredentialRule {
  urlPrefix: string;
  username: string;
  password: string;
  /** The variable it came from (for redaction markers and log lines). */
  passwordEnv: string;
}

/** Look each rule's token up in `env`; throws naming the variable when one is missing. */
export function resolveGitCredentials(rules: readonly GitCredentialConfig[], env: NodeJS.ProcessEnv): GitCredentialRule[] {
  return rules.map((rule, i) => {
    const password = env[rule.password_env];
    if (password === undefined || password === '') {
      throw new ValidationError(
        `git_credentials[${i}] (${rule.url_prefix}): the worker's environment has no ${rule.password_env} — export it before starting the worker (the config names the variable, never the token)`,
      );
    }
    return { urlPrefix: rule.url_prefix, username: rule.username, password, passwordEnv: rule.password_env };
  });
}

/** "https://Host:443/org/repo.git/" → "https://host/org/repo": the form URLs are compared in. */
export function normalizeHttpsUrl(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if (parsed.protocol !== 'https:') return undefined;
  const pathname = decodeURIComponent(parsed.pathname).replace(/\/+$/, '').replace(/\.git$/, '');
  return `https://${parsed.host.toLowerCase()}${pathname}`;
}

function prefixMatches(prefix: string, url: string): boolean {
  const normalizedPrefix = normalizeHttpsUrl(prefix);
  if (normalizedPrefix === undefined) return false;
  // A prefix "https://h/org/" matches "https://h/org/x" but not "https://h/organisation/x".
  const withSlash = prefix.endsWith('/') ? `${normalizedPrefix}/` : normalizedPrefix;
  return url === normalizedPrefix || url.startsWith(withSlash);
}

/** The credential for `query` if it names one of `repositories` and a rule covers it; else null. */
export function answerGitCredential(rules: readonly GitCredentialRule[], repositories: readonly Repository[], query: GitCredentialQuery): GitCredential | null {
  if (query.protocol !== 'https' || query.path === undefined) return null;
  const asked = normalizeHttpsUrl(`https://${query.host}/${query.path.replace(/^\/+/, '')}`);
  if (!asked) return null;
  const isTaskRepository = repositories.some((r) => normalizeHttpsUrl(r.url) === asked);
  if (!isTaskRepository) return null;
  let best: GitCredentialRule | undefined;
  for (const rule of rules) {
    if (prefixMatches(rule.urlPrefix, asked) && (!best || rule.urlPrefix.length > best.urlPrefix.length)) best = rule;
  }
  return best ? { username: best.username, password: best.password } : null;
}
