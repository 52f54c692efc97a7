/**
 * Migration 0004: usage accounting of the control plane's LLM gateway. One row per execution and
 * model, its counters added to on every model request (an upsert): the table grows with
 * executions, not with requests.
 *
 * Invariant (zero data retention): no column holds a prompt, a response, or any part of a body —
 * only ids, the model's name and counters. A released migration is never edited.
 */
import type { Kysely, Migration } from 'kysely';

export function llmUsageSchema(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('llm_usage')
        .addColumn('execution_id', 'text', (c) => c.notNull())
        .addColumn('model', 'text', (c) => c.notNull())
        .addColumn('team_id', 'text', (c) => c.notNull().references('teams.id'))
        .addColumn('task_id', 'text', (c) => c.notNull())
        .addColumn('requests', 'bigint', (c) => c.notNull())
        .addColumn('errors', 'bigint', (c) => c.notNull())
        .addColumn('input_tokens', 'bigint', (c) => c.notNull())
        .addColumn('output_tokens', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('llm_usage_pk', ['execution_id', 'model'])
        .execute();
      // GET /api/v1/usage: a team's rows, grouped by task.
      await db.schema.createIndex('llm_usage_team_task').on('llm_usage').columns(['team_id', 'task_id']).execute();
    },
  };
}
