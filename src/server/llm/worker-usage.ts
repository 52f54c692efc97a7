/**
 * Usage a worker reports on `execution.finished` covers every model call of the execution, over
 * both routes. The gateway already metered the calls that went through it; what the worker
 * reports beyond that went straight to the team's own provider (BYOLLM) and is recorded under the
 * model name `(byollm)`, so a team's usage report is complete whichever route its workers use.
 *
 * Invariant: called once per execution (on the first `finished` the store applied, never on a
 * replay), so nothing is counted twice; a remainder is clamped at zero (a worker never makes
 * the gateway's own count smaller).
 */
import type { Usage } from '../../protocol/task.js';
import type { Store } from '../store/store.js';

export const BYOLLM_MODEL = '(byollm)';

export async function recordWorkerReportedUsage(
  store: Store,
  input: { teamId: string; taskId: string; executionId: string; usage: Usage; now: number },
): Promise<void> {
  const gateway = (await store.llmUsageReport(input.teamId, { executionId: input.executionId })).total;
  const requests = Math.max(0, input.usage.requests - gateway.requests);
  const inputTokens = Math.max(0, input.usage.input_tokens - gateway.input_tokens);
  const outputTokens = Math.max(0, input.usage.output_tokens - gateway.output_tokens);
  if (requests === 0 && inputTokens === 0 && outputTokens === 0) return;
  await store.recordLlmUsage({
    teamId: input.teamId,
    taskId: input.taskId,
    executionId: input.executionId,
    model: BYOLLM_MODEL,
    requests,
    errors: 0,
    inputTokens,
    outputTokens,
    now: input.now,
  });
}
