/**
 * What a task's executions produced, as the task shows it: the latest artifacts, usage summed
 * over every execution, the words for a run a budget stopped, and the diff a client downloads.
 *
 * Invariant: pure functions of records — the store keeps what the worker reported, unchanged;
 * everything derived is derived here, so the view, the diff route and the finish path agree.
 */
import { MAX_REPORTED_DIFF_BYTES, workingBranch, type Artifacts, type Budget, type StopReason, type Usage } from '../../protocol/task.js';
import type { ExecutionRecord } from '../store/store.js';

/** The artifacts of the latest execution that reported any (executions in any order). */
export function latestArtifacts(executions: readonly ExecutionRecord[]): Artifacts | null {
  let best: ExecutionRecord | undefined;
  for (const execution of executions) {
    if (execution.artifacts !== null && (!best || execution.ordinal > best.ordinal)) best = execution;
  }
  return best?.artifacts ?? null;
}

/** Token usage summed over the task's executions. */
export function totalUsage(executions: readonly ExecutionRecord[]): Usage {
  const total: Usage = { input_tokens: 0, output_tokens: 0, requests: 0 };
  for (const { usage } of executions) {
    total.input_tokens += usage.input_tokens;
    total.output_tokens += usage.output_tokens;
    total.requests += usage.requests;
  }
  return total;
}

const BUDGETS: Partial<Record<StopReason, { words: string; field: keyof Budget }>> = {
  max_turns: { words: 'turn budget', field: 'max_turns' },
  max_seconds: { words: 'time budget', field: 'max_seconds' },
  max_tokens: { words: 'token budget', field: 'max_tokens' },
};

export function isBudgetStop(reason: StopReason | null | undefined): boolean {
  return reason !== null && reason !== undefined && BUDGETS[reason] !== undefined;
}

/**
 * "stopped at the turn budget (max_turns 20); work so far committed on airlock/abcd1234", or
 * undefined when the run did not stop at a budget. The worker's own message, if any, follows.
 */
export function budgetStopMessage(taskId: string, budget: Budget | null, artifacts: Artifacts | null | undefined, workerMessage: string | null): string | undefined {
  const reason = artifacts?.stop_reason;
  const which = reason ? BUDGETS[reason] : undefined;
  if (!which) return undefined;
  const limit = budget?.[which.field];
  const branch = artifacts?.branch ?? workingBranch(taskId);
  const work = artifacts?.commit ? `work so far committed on ${branch}${artifacts.pushed ? ' and pushed' : ''}` : 'nothing was committed';
  const text = `stopped at the ${which.words} (${which.field}${limit === undefined ? '' : ` ${limit}`}); ${work} — raise budget.${which.field} to let it run further`;
  return workerMessage ? `${text}. ${workerMessage}` : text;
}

/**
 * Artifacts as the store keeps them: every diff at most MAX_REPORTED_DIFF_BYTES (cut at a line
 * end, and marked truncated), whatever the worker sent. Workers cut diffs themselves; this is
 * the control plane not trusting that a row stays small.
 */
export function capArtifacts(artifacts: Artifacts): Artifacts {
  const over = (diff: string | null) => diff !== null && Buffer.byteLength(diff, 'utf8') > MAX_REPORTED_DIFF_BYTES;
  if (!over(artifacts.diff) && !artifacts.repositories.some((r) => over(r.diff))) return artifacts;
  const top = artifacts.diff !== null && over(artifacts.diff) ? cutDiff(artifacts.diff) : undefined;
  return {
    ...artifacts,
    ...(top === undefined ? {} : { diff: top, diff_truncated: true }),
    repositories: artifacts.repositories.map((r) =>
      over(r.diff) ? { ...r, diff: cutDiff(r.diff), diff_truncated: true, diff_bytes: Math.max(r.diff_bytes, Buffer.byteLength(r.diff, 'utf8')) } : r,
    ),
  };
}

function cutDiff(diff: string): string {
  const head = Buffer.from(diff, 'utf8').subarray(0, MAX_REPORTED_DIFF_BYTES).toString('utf8');
  const lastLine = head.lastIndexOf('\n');
  // Without any line end, drop a possibly split last character (decoded as U+FFFD).
  return lastLine === -1 ? head.replace(/\uFFFD$/, '') : head.slice(0, lastLine + 1);
}

/** A diff as `GET /api/v1/tasks/{id}/diff` serves it. */
export interface DiffDocument {
  text: string;
  truncated: boolean;
}

/**
 * The reported unified diff: one repository's as is; several repositories' one after the other,
 * each introduced by a `# repository:` comment line (git apply skips text before a diff). A
 * truncated diff ends with a comment line saying so. Undefined when there is no diff at all.
 */
export function diffDocument(artifacts: Artifacts | null): DiffDocument | undefined {
  if (!artifacts) return undefined;
  const repositories = artifacts.repositories.filter((r) => r.diff !== '');
  if (repositories.length === 0) {
    if (!artifacts.diff) return undefined;
    return finish([{ text: artifacts.diff, truncated: artifacts.diff_truncated, bytes: null, label: null }]);
  }
  const several = repositories.length > 1;
  return finish(
    repositories.map((r) => ({
      text: r.diff,
      truncated: r.diff_truncated,
      bytes: r.diff_bytes,
      label: several ? `# repository: ${r.url} (directory ${r.path})\n` : null,
    })),
  );
}

function finish(parts: Array<{ text: string; truncated: boolean; bytes: number | null; label: string | null }>): DiffDocument {
  let text = '';
  let truncated = false;
  for (const part of parts) {
    text += part.label ?? '';
    text += part.text.endsWith('\n') ? part.text : `${part.text}\n`;
    if (part.truncated) {
      truncated = true;
      const of = part.bytes === null ? '' : ` of ${part.bytes}`;
      text += `# airlock: diff truncated at ${MAX_REPORTED_DIFF_BYTES} bytes${of} — the full diff is in the pushed branch, or under the worker's state directory\n`;
    }
  }
  return { text, truncated };
}
