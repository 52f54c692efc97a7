/**
 * Migration 0001: the initial schema. Written with Kysely's schema builder so one definition
 * serves SQLite and PostgreSQL; the only dialect difference is the audit log's generated id.
 *
 * Invariants: every time column is `bigint` milliseconds (SQLite gives it INTEGER affinity;
 * PostgreSQL needs 64 bits for milliseconds), flags are integer 0/1, JSON is text. Indexes exist
 * for the hot paths only — each one is paid for on every write of the dispatch loop.
 * A released migration is never edited: change the schema with a new numbered migration.
 */
import { sql, type Kysely, type Migration } from 'kysely';
import type { StoreDialect } from '../schema.js';

/**
 * The state lists the partial indexes are defined on, frozen here as they were when this
 * migration was written: a migration must not change meaning when lifecycle.ts evolves.
 */
const ACTIVE_EXECUTION_STATES = ['offered', 'claimed', 'running'] as const;
const LEASED_EXECUTION_STATES = ['claimed', 'running'] as const;

export function initialSchema(dialect: StoreDialect): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('teams')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('api_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('team_id', 'text', (c) => c.notNull().references('teams.id'))
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('name', 'text')
        .addColumn('hash', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint')
        .execute();
      await db.schema.createIndex('api_keys_team').on('api_keys').columns(['team_id', 'created_at']).execute();

      await db.schema
        .createTable('workers')
        .addColumn('team_id', 'text', (c) => c.notNull().references('teams.id'))
        .addColumn('worker_id', 'text', (c) => c.notNull())
        .addColumn('version', 'text', (c) => c.notNull())
        .addColumn('backend', 'text', (c) => c.notNull())
        .addColumn('labels', 'text', (c) => c.notNull())
        .addColumn('capacity', 'integer', (c) => c.notNull())
        .addColumn('connected', 'integer', (c) => c.notNull())
        .addColumn('draining', 'integer', (c) => c.notNull())
        .addColumn('connected_at', 'bigint')
        .addColumn('last_seen_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('workers_pk', ['team_id', 'worker_id'])
        .execute();

      await db.schema
        .createTable('tasks')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('team_id', 'text', (c) => c.notNull().references('teams.id'))
        .addColumn('title', 'text')
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('prompt', 'text', (c) => c.notNull())
        .addColumn('harness', 'text', (c) => c.notNull())
        .addColumn('worker_id', 'text')
        .addColumn('timeout_seconds', 'integer')
        .addColumn('failure_reason', 'text')
        .addColumn('message', 'text')
        .addColumn('exit_code', 'integer')
        .addColumn('cancel_requested', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('epoch', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('started_at', 'bigint')
        .addColumn('finished_at', 'bigint')
        .execute();
      // offerTasks: the oldest queued tasks of a team, in (created_at, id) order without a sort
      // (id breaks ties); read backwards it also serves listTasks filtered by state.
      await db.schema.createIndex('tasks_queue').on('tasks').columns(['team_id', 'state', 'created_at', 'id']).execute();
      // listTasks: newest first with a (created_at, id) keyset cursor.
      await db.schema.createIndex('tasks_list').on('tasks').columns(['team_id', 'created_at desc', 'id desc']).execute();

      await db.schema
        .createTable('executions')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('task_id', 'text', (c) => c.notNull().references('tasks.id'))
        .addColumn('team_id', 'text', (c) => c.notNull())
        .addColumn('ordinal', 'integer', (c) => c.notNull())
        .addColumn('worker_id', 'text', (c) => c.notNull())
        .addColumn('epoch', 'integer', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('offer_id', 'text', (c) => c.notNull())
        .addColumn('offer_deadline', 'bigint', (c) => c.notNull())
        .addColumn('lease_expires_at', 'bigint')
        .addColumn('failure_reason', 'text')
        .addColumn('message', 'text')
        .addColumn('exit_code', 'integer')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('started_at', 'bigint')
        .addColumn('finished_at', 'bigint')
        // SQLite: store rows in the primary key's b-tree instead of a rowid table plus a
        // separate index on `id` (rows are small): one page less to write per offer.
        .$call((t) => (dialect === 'sqlite' ? t.modifyEnd(sql`without rowid`) : t))
        .execute();
      // A task's executions in order; unique so two executions can never share an ordinal.
      await db.schema.createIndex('executions_task').on('executions').columns(['task_id', 'ordinal']).unique().execute();
      // claimOffer / declineOffer look executions up by the offer id the worker echoes.
      await db.schema.createIndex('executions_offer').on('executions').column('offer_id').unique().execute();
      // The three indexes below are partial: they hold active executions only, so they stay a
      // few pages small however long the history grows, and an execution that ends leaves them
      // instead of moving inside them (every page a commit touches costs a WAL write).
      // Queries must repeat the index's condition literally (see ACTIVE_SQL in kysely-store.ts)
      // for SQLite to use them.
      // reconcileWorker, expireOffersOfWorker, pendingCancels: a worker's active executions
      // (worker ids are team-scoped, hence the team first).
      await db.schema
        .createIndex('executions_worker')
        .on('executions')
        .columns(['team_id', 'worker_id', 'state'])
        .where(sql.ref('state'), 'in', ACTIVE_EXECUTION_STATES.map((s) => sql.lit(s)))
        .execute();
      // The sweepers: leases and offers that ran out.
      await db.schema
        .createIndex('executions_lease')
        .on('executions')
        .columns(['state', 'lease_expires_at'])
        .where(sql.ref('state'), 'in', LEASED_EXECUTION_STATES.map((s) => sql.lit(s)))
        .execute();
      await db.schema
        .createIndex('executions_offer_deadline')
        .on('executions')
        .columns(['state', 'offer_deadline'])
        .where(sql.ref('state'), '=', sql.lit('offered'))
        .execute();

      await db.schema
        .createTable('events')
        .addColumn('execution_id', 'text', (c) => c.notNull().references('executions.id'))
        .addColumn('seq', 'integer', (c) => c.notNull())
        .addColumn('task_id', 'text', (c) => c.notNull())
        .addColumn('ordinal', 'integer', (c) => c.notNull())
        .addColumn('ts', 'bigint', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('data', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('events_pk', ['execution_id', 'seq'])
        .execute();
      // listEvents: a task's transcript across executions, in (ordinal, seq) order.
      await db.schema.createIndex('events_task').on('events').columns(['task_id', 'ordinal', 'seq']).execute();

      await db.schema
        .createTable('messages')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('task_id', 'text', (c) => c.notNull().references('tasks.id'))
        .addColumn('text', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('messages_task').on('messages').columns(['task_id', 'created_at']).execute();

      // No foreign key to teams: the audit log also records actions without a team
      // (`admin-cli`, `system`) and must outlive anything it mentions.
      let audit = db.schema.createTable('audit_log');
      audit =
        dialect === 'postgres'
          ? audit.addColumn('id', 'bigint', (c) => c.primaryKey().generatedByDefaultAsIdentity())
          : audit.addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement());
      await audit
        .addColumn('team_id', 'text')
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('target', 'text')
        .addColumn('detail', 'text', (c) => c.notNull())
        .addColumn('at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('audit_log_team').on('audit_log').columns(['team_id', 'id']).execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      for (const table of ['audit_log', 'messages', 'events', 'executions', 'tasks', 'workers', 'api_keys', 'teams']) {
        await db.schema.dropTable(table).execute();
      }
    },
  };
}
