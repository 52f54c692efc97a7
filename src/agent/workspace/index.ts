/**
 * The workspace steps of `airlock agent run`, as run.ts uses them: `prepare` before the harness
 * (clones, working branch, setup commands) and `collect` after it (commit, diff, push). Both
 * turn their failures into words in the transcript; `prepare` also into the harness result the
 * execution ends with.
 */
import type { AgentResult } from '../../protocol/gateway.js';
import type { EventKind, ExecutionSpec, RepositoryArtifacts } from '../../protocol/task.js';
import type { HarnessResult } from '../harness/harness.js';
import type { GitCredentials } from './credentials.js';
import { WorkspaceCancelled, WorkspaceError, prepareWorkspace, type PreparedRepository } from './prepare.js';
import { collectResults } from './results.js';

export { gatewayCredentialSource } from './credentials.js';
export type { PreparedRepository } from './prepare.js';

export interface WorkspaceStepContext {
  workdir: string;
  env: NodeJS.ProcessEnv;
  emit(kind: EventKind, data: Record<string, unknown>): void;
  signal: AbortSignal;
  credentials: GitCredentials;
  /** Hands the worker a repository's full diff when the reported one was cut (the task gateway's PUT /v1/diff). */
  keepDiff?: (index: number, diff: Buffer) => Promise<void>;
}

/** Exit status of an execution whose workspace could not be prepared. */
export const EXIT_WORKSPACE = 1;

export type Preparation =
  | { ok: true; repositories: PreparedRepository[] }
  | { ok: false; result: HarnessResult; failureReason: AgentResult['failure_reason'] };

export async function prepare(spec: ExecutionSpec, context: WorkspaceStepContext): Promise<Preparation> {
  if ((spec.repositories ?? []).length === 0 && (spec.setup_commands ?? []).length === 0) return { ok: true, repositories: [] };
  try {
    const repositories = await prepareWorkspace(spec, context);
    context.emit('lifecycle', { phase: 'workspace_ready', repositories: repositories.map((r) => ({ url: r.url, path: r.path, branch: r.branch, base_commit: r.baseCommit })) });
    return { ok: true, repositories };
  } catch (err) {
    if (err instanceof WorkspaceCancelled || context.signal.aborted) {
      const reason = context.signal.reason instanceof Error ? context.signal.reason.message : 'cancelled';
      return { ok: false, result: { outcome: 'cancelled', exitCode: null, summary: `${reason} (while preparing the workspace)` }, failureReason: undefined };
    }
    const failure = err instanceof WorkspaceError ? err : new WorkspaceError('repo_clone', `could not prepare the workspace: ${err instanceof Error ? err.message : String(err)}`);
    context.emit('error', { message: failure.message, failure_reason: failure.reason });
    return { ok: false, result: { outcome: 'failed', exitCode: EXIT_WORKSPACE, summary: failure.message }, failureReason: failure.reason };
  }
}

/**
 * Commit, measure and (when asked) push the work in each repository. After a cancel the branch
 * is committed and measured but not pushed: a cancelled task does not act on its remotes.
 */
export async function collect(
  spec: ExecutionSpec,
  repositories: PreparedRepository[],
  harness: HarnessResult,
  context: Omit<WorkspaceStepContext, 'workdir' | 'signal'>,
): Promise<RepositoryArtifacts[]> {
  if (repositories.length === 0) return [];
  const push = spec.push === true && harness.outcome !== 'cancelled';
  try {
    return await collectResults({ ...spec, push }, repositories, harness.summary, context);
  } catch (err) {
    context.emit('error', { message: `could not collect the results: ${err instanceof Error ? err.message : String(err)}` });
    return [];
  }
}
