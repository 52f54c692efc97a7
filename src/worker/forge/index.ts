/**
 * The `artifacts` of `execution.finished`, built by the worker from the agent's result: the
 * repositories' commits and diffs as the agent reported them, plus the pull/merge requests the
 * worker opened for pushed branches (when the task asked for one). The top-level fields mirror
 * the first repository; `summary` and `stop_reason` come from the agent's result.
 *
 * Invariant: a pull request is attempted only for a branch that was pushed, only when the task
 * set `pull_request`, and a failure is recorded in `pull_request_error`, never thrown: the
 * execution's outcome does not depend on the forge.
 */
import type { AgentResult } from '../../protocol/gateway.js';
import { MAX_REPORTED_DIFF_BYTES, type Artifacts, type ExecutionSpec, type RepositoryArtifacts } from '../../protocol/task.js';
import { openPullRequest } from './client.js';
import { forgeFor, type ForgeRule } from './config.js';

export { ForgeConfig, FORGE_TYPES, resolveForges, forgeFor, repositoryLocation, type ForgeRule } from './config.js';
export { openPullRequest, ForgeError, type PullRequestInput } from './client.js';

const MAX_TITLE_CHARS = 250;

function pullRequestTitle(spec: ExecutionSpec): string {
  const first = spec.pull_request?.title ?? ((spec.title ?? '').trim() || spec.prompt.split('\n').find((l) => l.trim())?.trim() || `Airlock task ${spec.task_id}`);
  return first.length > MAX_TITLE_CHARS ? `${first.slice(0, MAX_TITLE_CHARS - 1)}…` : first;
}

function pullRequestBody(spec: ExecutionSpec, result: AgentResult, repository: RepositoryArtifacts): string {
  const { files_changed, insertions, deletions } = repository.diffstat;
  return [
    result.summary?.trim() || '',
    `${files_changed} file(s) changed, ${insertions} insertion(s), ${deletions} deletion(s).`,
    `Opened by Airlock for task ${spec.task_id}.`,
  ]
    .filter(Boolean)
    .join('\n\n');
}

/** A ref that names a commit cannot be a pull request's base: use the default branch then. */
function baseBranch(spec: ExecutionSpec, url: string): string | undefined {
  if (spec.pull_request?.base) return spec.pull_request.base;
  const ref = spec.repositories?.find((r) => r.url === url)?.ref;
  return ref && !/^[0-9a-f]{40}([0-9a-f]{24})?$/i.test(ref) ? ref : undefined;
}

/** Open the pull requests the task asked for; returns the repositories with their PR fields set. */
export async function openPullRequests(spec: ExecutionSpec, result: AgentResult, forges: readonly ForgeRule[]): Promise<RepositoryArtifacts[]> {
  const repositories = result.repositories ?? [];
  if (!spec.pull_request) return repositories;
  return Promise.all(
    repositories.map(async (repository) => {
      if (!repository.pushed) {
        if (!repository.commit) return repository; // nothing changed: nothing to propose
        return { ...repository, pull_request_error: `no pull request: the branch ${repository.branch} was not pushed (${repository.push_error ?? 'see push_error'})` };
      }
      const forge = forgeFor(forges, repository.url);
      if (!forge) {
        return { ...repository, pull_request_error: `no pull request: this worker has no forge configured for ${repository.url} — add it to the worker's forges (type, url_prefix, token_env)` };
      }
      try {
        const url = await openPullRequest(forge.rule, {
          path: forge.path,
          head: repository.branch,
          base: baseBranch(spec, repository.url),
          title: pullRequestTitle(spec),
          body: pullRequestBody(spec, result, repository),
          draft: spec.pull_request?.draft ?? false,
        });
        return { ...repository, pull_request_url: url };
      } catch (err) {
        return { ...repository, pull_request_error: `could not open a ${forge.rule.type === 'github' ? 'pull' : 'merge'} request: ${err instanceof Error ? err.message : String(err)}` };
      }
    }),
  );
}

/**
 * All repositories' diffs together stay under this (the first one's is also repeated at the top
 * level): one execution.finished message stays far below the worker protocol's frame limit.
 */
export const MAX_TOTAL_DIFF_BYTES = 2 * MAX_REPORTED_DIFF_BYTES;

function capTotal(repositories: RepositoryArtifacts[]): RepositoryArtifacts[] {
  let left = MAX_TOTAL_DIFF_BYTES;
  return repositories.map((repository) => {
    const bytes = Buffer.byteLength(repository.diff, 'utf8');
    if (bytes <= left) {
      left -= bytes;
      return repository;
    }
    const diff = Buffer.from(repository.diff, 'utf8').subarray(0, left).toString('utf8').replace(/\uFFFD$/, '');
    left = 0;
    return { ...repository, diff, diff_truncated: true };
  });
}

/** The execution's artifacts from the agent's result and the opened pull requests. */
export function artifactsFrom(result: AgentResult, all: RepositoryArtifacts[]): Artifacts {
  const repositories = capTotal(all);
  const first = repositories[0];
  return {
    branch: first?.branch ?? null,
    commit: first?.commit ?? null,
    diff: first ? first.diff : null,
    diff_truncated: first?.diff_truncated ?? false,
    diffstat: first ? first.diffstat : null,
    summary: result.summary,
    stop_reason: result.stop_reason ?? null,
    pushed: first?.pushed ?? false,
    pull_request_url: first?.pull_request_url ?? null,
    repositories,
  };
}
