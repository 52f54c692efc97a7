/**
 * The store's migrations, listed statically (no file-system scanning, so the server bundles
 * into one file) and run by Kysely's Migrator.
 *
 * Invariant: names sort in the order they must run (`0001-…`, `0002-…`), and an applied
 * migration is never edited or renamed — the Migrator refuses a database whose applied list
 * does not match this one, which is what protects an operator from running an old binary on a
 * newer database.
 */
import { Migrator, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import { describeError } from '../../../protocol/errors.js';
import type { Database, StoreDialect } from '../schema.js';
import { initialSchema } from './0001-initial.js';
import { environmentsSchema } from './0002-environments.js';
import { taskRecipesSchema } from './0003-task-recipes.js';
import { llmUsageSchema } from './0004-llm-usage.js';
import { taskSizeSchema } from './0005-task-size.js';

/** Our own table names, so an operator reading the schema knows whose bookkeeping it is. */
export const MIGRATION_TABLE = 'airlock_migration';
export const MIGRATION_LOCK_TABLE = 'airlock_migration_lock';

export function migrationProvider(dialect: StoreDialect): MigrationProvider {
  const migrations: Record<string, Migration> = {
    '0001-initial': initialSchema(dialect),
    '0002-environments': environmentsSchema(),
    '0003-task-recipes': taskRecipesSchema(),
    '0004-llm-usage': llmUsageSchema(),
    '0005-task-size': taskSizeSchema(),
  };
  return { getMigrations: async () => migrations };
}

/**
 * Two processes opening one SQLite file at once (the server and `airlock admin`) can race: the
 * loser's read snapshot goes stale and SQLite answers SQLITE_BUSY at once, without waiting.
 * Running again then finds the migrations applied. Three attempts, 100 ms apart, cover it.
 */
const BUSY_ATTEMPTS = 3;
const BUSY_RETRY_DELAY_MS = 100;

function isSqliteBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

/**
 * Apply every pending migration. Kysely runs them in order inside one transaction on both
 * dialects (both have transactional DDL), so a failure leaves the schema as it was.
 */
export async function migrateToLatest(db: Kysely<Database>, dialect: StoreDialect): Promise<void> {
  const migrator = new Migrator({
    db,
    provider: migrationProvider(dialect),
    migrationTableName: MIGRATION_TABLE,
    migrationLockTableName: MIGRATION_LOCK_TABLE,
  });
  for (let attempt = 1; ; attempt++) {
    let outcome;
    try {
      outcome = await migrator.migrateToLatest();
    } catch (err) {
      // Creating the bookkeeping tables happens outside the result object.
      outcome = { error: err, results: undefined };
    }
    const { error, results } = outcome;
    if (error === undefined) return;
    if (isSqliteBusy(error) && attempt < BUSY_ATTEMPTS) {
      await new Promise((r) => setTimeout(r, BUSY_RETRY_DELAY_MS));
      continue;
    }
    const failed = results?.find((r) => r.status === 'Error');
    const which = failed ? `migration "${failed.migrationName}"` : 'the migration run';
    throw new Error(
      `the ${dialect} store could not be migrated: ${which} failed (${describeError(error)}) — ` +
        'no change was applied; if this database was created by a newer airlock, run that version instead',
      { cause: error },
    );
  }
}
