/**
 * The SQLite adapter: one file, opened with better-sqlite3 through Kysely's SqliteDialect, and
 * the shared KyselyStore on top. The default store: nothing to run besides the server.
 *
 * Invariants: WAL mode, so readers (the dashboard, `airlock admin` in another process) never
 * block the writer; `busy_timeout` so a second process waits for the write lock instead of
 * failing; foreign keys enforced. The returned store is migrated and ready.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { describeError } from '../../../protocol/errors.js';
import { createKyselyStore } from '../kysely-store.js';
import type { Database } from '../schema.js';
import type { Store } from '../store.js';
import { withStatementCache } from './statement-cache.js';

/**
 * How long a connection waits for another process's write lock before failing with
 * SQLITE_BUSY. Our write transactions take milliseconds; 5 s absorbs a slow disk or a large
 * admin operation without letting a wedged process hang the server for long.
 */
export const BUSY_TIMEOUT_MS = 5000;

/**
 * WAL pages between automatic checkpoints (SQLite's default is 1,000). Each checkpoint copies
 * the WAL into the database file and fsyncs both; at the dispatcher's ~28 pages per task the
 * default checkpointed every ~35 tasks and that fsync dominated wall time. 10,000 pages (a
 * ~40 MiB WAL at most) measured ~1.4× more tasks/s, and hot pages rewritten many times between
 * checkpoints are copied once.
 */
export const WAL_AUTOCHECKPOINT_PAGES = 10_000;

export interface SqliteStoreOptions {
  /** Database file (created if missing; its directory must exist), or `:memory:` for a private in-memory store. */
  path: string;
}

/**
 * Open (and migrate) the store in `options.path`. The directory is not created here: a typo in
 * a configured path should fail loudly rather than scatter databases over the disk.
 */
export async function openSqliteStore(options: SqliteStoreOptions): Promise<Store> {
  const file = options.path === ':memory:' ? ':memory:' : resolve(options.path);
  if (file !== ':memory:') {
    const dir = dirname(file);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      throw new Error(`the SQLite store's directory ${dir} does not exist — create it (mkdir -p ${dir}) or point the store at another path`);
    }
  }
  let raw: BetterSqlite3.Database;
  try {
    raw = new BetterSqlite3(file);
  } catch (err) {
    throw new Error(`the SQLite store ${file} could not be opened: ${describeError(err)} — check the file's permissions and that it is a SQLite database`, {
      cause: err,
    });
  }
  try {
    // busy_timeout first, so switching to WAL waits for another process instead of failing.
    raw.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    raw.pragma('journal_mode = WAL');
    // NORMAL in WAL mode: a power loss may drop the last transactions, never corrupt the file;
    // FULL would fsync on every commit and cap the dispatcher at the disk's fsync rate.
    raw.pragma('synchronous = NORMAL');
    raw.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
    raw.pragma('foreign_keys = ON');
  } catch (err) {
    raw.close();
    throw new Error(`the SQLite store ${file} could not be configured: ${describeError(err)}`, { cause: err });
  }
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(raw) }) });
  const store = createKyselyStore(db, { dialect: 'sqlite' });
  try {
    await store.migrate();
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}
