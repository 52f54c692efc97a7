/**
 * The store's queries for LLM gateway usage (migration 0004), kept apart from kysely-store.ts:
 * the Store delegates its two usage methods here.
 *
 * Invariant: counters only grow, by one upsert per model request (SQLite and PostgreSQL both
 * speak `ON CONFLICT … DO UPDATE`); sums read back through `Number(...)` (PostgreSQL returns
 * bigint sums as strings).
 */
import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.js';

export interface LlmUsageIncrement {
  teamId: string;
  taskId: string;
  executionId: string;
  /** The model that answered (as the provider reported it), or the one requested. */
  model: string;
  requests: number;
  errors: number;
  inputTokens: number;
  outputTokens: number;
  now: number;
}

export interface LlmUsageTotals {
  input_tokens: number;
  output_tokens: number;
  requests: number;
  errors: number;
}

export interface LlmUsageReport {
  total: LlmUsageTotals;
  by_task: Array<LlmUsageTotals & { task_id: string }>;
  by_model: Array<LlmUsageTotals & { model: string }>;
}

export interface LlmUsageFilter {
  taskId?: string;
  executionId?: string;
}

export async function recordLlmUsage(db: Kysely<Database>, row: LlmUsageIncrement): Promise<void> {
  await db
    .insertInto('llm_usage')
    .values({
      execution_id: row.executionId,
      model: row.model,
      team_id: row.teamId,
      task_id: row.taskId,
      requests: row.requests,
      errors: row.errors,
      input_tokens: row.inputTokens,
      output_tokens: row.outputTokens,
      updated_at: row.now,
    })
    .onConflict((oc) =>
      oc.columns(['execution_id', 'model']).doUpdateSet({
        requests: sql`llm_usage.requests + excluded.requests`,
        errors: sql`llm_usage.errors + excluded.errors`,
        input_tokens: sql`llm_usage.input_tokens + excluded.input_tokens`,
        output_tokens: sql`llm_usage.output_tokens + excluded.output_tokens`,
        updated_at: sql`excluded.updated_at`,
      }),
    )
    .execute();
}

const totals = (row: { input_tokens: unknown; output_tokens: unknown; requests: unknown; errors: unknown }): LlmUsageTotals => ({
  input_tokens: Number(row.input_tokens ?? 0),
  output_tokens: Number(row.output_tokens ?? 0),
  requests: Number(row.requests ?? 0),
  errors: Number(row.errors ?? 0),
});

export async function llmUsageReport(db: Kysely<Database>, teamId: string, filter: LlmUsageFilter = {}): Promise<LlmUsageReport> {
  let base = db.selectFrom('llm_usage').where('team_id', '=', teamId);
  if (filter.taskId !== undefined) base = base.where('task_id', '=', filter.taskId);
  if (filter.executionId !== undefined) base = base.where('execution_id', '=', filter.executionId);
  const sums = [
    sql<string | number>`sum(input_tokens)`.as('input_tokens'),
    sql<string | number>`sum(output_tokens)`.as('output_tokens'),
    sql<string | number>`sum(requests)`.as('requests'),
    sql<string | number>`sum(errors)`.as('errors'),
  ] as const;
  const [byTask, byModel] = await Promise.all([
    base.select(['task_id', ...sums]).groupBy('task_id').orderBy('task_id').execute(),
    base.select(['model', ...sums]).groupBy('model').orderBy('model').execute(),
  ]);
  const total: LlmUsageTotals = { input_tokens: 0, output_tokens: 0, requests: 0, errors: 0 };
  const tasks = byTask.map((row) => ({ task_id: row.task_id, ...totals(row) }));
  for (const task of tasks) {
    total.input_tokens += task.input_tokens;
    total.output_tokens += task.output_tokens;
    total.requests += task.requests;
    total.errors += task.errors;
  }
  return { total, by_task: tasks, by_model: byModel.map((row) => ({ model: row.model, ...totals(row) })) };
}
