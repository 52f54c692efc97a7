/**
 * Opening a pull request (GitHub: `POST /repos/{owner}/{repo}/pulls`) or a merge request
 * (GitLab: `POST /projects/:id/merge_requests`) for a branch the agent pushed. The worker does
 * this itself, after the agent's result: the forge token never enters a task environment.
 *
 * Invariants: every request has a timeout; errors name the forge's answer and what to do, and
 * never contain the token.
 */
import type { ForgeRule } from './config.js';

const REQUEST_TIMEOUT_MS = 30_000;
const MAX_ERROR_CHARS = 500;

export interface PullRequestInput {
  /** The repository's path on the forge: owner/repo (GitHub) or group/…/project (GitLab). */
  path: string;
  head: string;
  /** Branch to merge into; undefined: the repository's default branch (asked of the forge). */
  base: string | undefined;
  title: string;
  body: string;
  draft: boolean;
}

export class ForgeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ForgeError';
  }
}

async function call(rule: ForgeRule, method: 'GET' | 'POST', route: string, body?: unknown): Promise<Record<string, unknown>> {
  const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'airlock-worker' };
  if (rule.type === 'github') {
    headers.authorization = `Bearer ${rule.token}`;
    headers.accept = 'application/vnd.github+json';
    headers['x-github-api-version'] = '2022-11-28';
  } else {
    headers['private-token'] = rule.token;
  }
  if (body !== undefined) headers['content-type'] = 'application/json';
  const url = `${rule.apiUrl}${route}`;
  let response: Response;
  try {
    response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  } catch (err) {
    throw new ForgeError(`could not reach ${rule.apiUrl} (${method} ${route}): ${err instanceof Error ? err.message : String(err)} — check api_url in the worker's forges`);
  }
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    parsed = undefined;
  }
  if (response.ok && parsed && typeof parsed === 'object') return parsed as Record<string, unknown>;
  const said = forgeMessage(parsed) ?? text.slice(0, MAX_ERROR_CHARS);
  const hint =
    response.status === 401 || response.status === 403
      ? ` — the token in ${rule.tokenEnv} is missing the permission to open ${rule.type === 'github' ? 'pull requests' : 'merge requests'} (or has expired)`
      : response.status === 404
        ? ' — check that the repository exists on this forge and that the token can see it'
        : '';
  throw new ForgeError(`${rule.type} answered ${method} ${route} with ${response.status}: ${said.split(rule.token).join('[REDACTED]')}${hint}`);
}

/** The forges' error bodies: {message, errors:[{message}]} (GitHub) or {message|error} (GitLab). */
function forgeMessage(body: unknown): string | undefined {
  if (!body || typeof body !== 'object') return undefined;
  const record = body as { message?: unknown; error?: unknown; errors?: unknown };
  const parts: string[] = [];
  if (typeof record.message === 'string') parts.push(record.message);
  else if (Array.isArray(record.message)) parts.push(record.message.map(String).join('; '));
  else if (record.message && typeof record.message === 'object') parts.push(JSON.stringify(record.message));
  if (typeof record.error === 'string') parts.push(record.error);
  if (Array.isArray(record.errors)) {
    for (const e of record.errors) parts.push(typeof e === 'string' ? e : typeof (e as { message?: unknown }).message === 'string' ? (e as { message: string }).message : JSON.stringify(e));
  }
  return parts.length > 0 ? parts.join('; ').slice(0, MAX_ERROR_CHARS) : undefined;
}

function githubRepo(path: string): string {
  const [owner, repo, ...rest] = path.split('/');
  if (!owner || !repo || rest.length > 0) throw new ForgeError(`"${path}" is not an owner/repo path on GitHub — check the repository URL and the forge's url_prefix`);
  return `${encodeURIComponent(owner)}/${encodeURIComponent(repo)}`;
}

async function defaultBranch(rule: ForgeRule, path: string): Promise<string> {
  const route = rule.type === 'github' ? `/repos/${githubRepo(path)}` : `/projects/${encodeURIComponent(path)}`;
  const info = await call(rule, 'GET', route);
  if (typeof info.default_branch !== 'string' || !info.default_branch) {
    throw new ForgeError(`${rule.type} did not say which branch is the default of ${path} — set pull_request.base on the task`);
  }
  return info.default_branch;
}

/** Open the pull/merge request; resolves with its web URL. */
export async function openPullRequest(rule: ForgeRule, input: PullRequestInput): Promise<string> {
  const base = input.base ?? (await defaultBranch(rule, input.path));
  if (rule.type === 'github') {
    const created = await call(rule, 'POST', `/repos/${githubRepo(input.path)}/pulls`, {
      title: input.title,
      head: input.head,
      base,
      body: input.body,
      draft: input.draft,
    });
    if (typeof created.html_url !== 'string') throw new ForgeError('github created the pull request but did not return its html_url');
    return created.html_url;
  }
  const created = await call(rule, 'POST', `/projects/${encodeURIComponent(input.path)}/merge_requests`, {
    source_branch: input.head,
    target_branch: base,
    title: input.draft && !/^draft:/i.test(input.title) ? `Draft: ${input.title}` : input.title,
    description: input.body,
  });
  if (typeof created.web_url !== 'string') throw new ForgeError('gitlab created the merge request but did not return its web_url');
  return created.web_url;
}
