/**
 * Migration 0002: environments, a team's named recipes for tasks. Lists (repositories, setup
 * commands, variable names) are JSON text like every other JSON column: they are read and
 * written whole, never queried inside.
 *
 * Invariant: a name is unique within its team (the unique index is what makes a concurrent
 * duplicate create fail instead of both succeeding). A released migration is never edited.
 */
import type { Kysely, Migration } from 'kysely';

export function environmentsSchema(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('environments')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('team_id', 'text', (c) => c.notNull().references('teams.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('image', 'text')
        .addColumn('repositories', 'text', (c) => c.notNull())
        .addColumn('setup_commands', 'text', (c) => c.notNull())
        .addColumn('setup_timeout_seconds', 'integer')
        .addColumn('secret_names', 'text', (c) => c.notNull())
        .addColumn('env_names', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      // Unique names per team; also serves listEnvironments (a team's environments by name).
      await db.schema.createIndex('environments_team_name').on('environments').columns(['team_id', 'name']).unique().execute();
    },
  };
}
