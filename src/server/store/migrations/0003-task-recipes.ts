/**
 * Migration 0003: tasks carry their resolved recipe, budget, model and push/pull-request choice;
 * executions carry what they produced (artifacts) and the model tokens they used.
 *
 * - `tasks.recipe` is the environment's recipe merged with the task's inline fields, frozen at
 *   creation (JSON; NULL for a task without one): editing the environment later does not change
 *   a queued task. `environment_id` only records where it came from (no foreign key: deleting
 *   the environment must not touch its tasks).
 * - `budget` and `pull_request` are JSON, NULL when not asked for; `push` is a 0/1 flag.
 * - `executions.artifacts` is JSON (NULL until a finish reports some); usage is three integer
 *   counters, 0 until reported.
 *
 * Portable SQL only (ADD COLUMN with constant defaults works on SQLite — also on the
 * WITHOUT ROWID executions table — and PostgreSQL). A released migration is never edited.
 */
import type { Kysely, Migration } from 'kysely';

export function taskRecipesSchema(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      // SQLite allows one column per ALTER TABLE.
      await db.schema.alterTable('tasks').addColumn('environment_id', 'text').execute();
      await db.schema.alterTable('tasks').addColumn('recipe', 'text').execute();
      await db.schema.alterTable('tasks').addColumn('budget', 'text').execute();
      await db.schema.alterTable('tasks').addColumn('model', 'text').execute();
      await db.schema.alterTable('tasks').addColumn('push', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('tasks').addColumn('pull_request', 'text').execute();

      await db.schema.alterTable('executions').addColumn('artifacts', 'text').execute();
      await db.schema.alterTable('executions').addColumn('input_tokens', 'bigint', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('executions').addColumn('output_tokens', 'bigint', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('executions').addColumn('requests', 'integer', (c) => c.notNull().defaultTo(0)).execute();
    },
  };
}
