/**
 * The SQLite adapter: one file, opened with better-sqlite3 through Kysely's SqliteDialect, and
 * the shared KyselyStore on top. The default store: nothing to run besides the server.
 *
 * Invariants: WAL mode, so readers (the dashboard, `airlock admin` in another process) never
 * block the writer; `busy_timeout` so a second process waits for the write lock instead of
 * failing; foreign keys enforced; WAL checkpoints mostly done by a background thread
 * (checkpointer.ts). The returned store is migrated and ready; `close()` stops the thread.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { describeError } from '../../../protocol/errors.js';
import { createKyselyStore } from '../kysely-store.js';
import type { Database } from '../schema.js';
import type { Store } from '../store.js';
import { startCheckpointer, type Checkpointer } from './checkpointer.js';
import { GroupCommit } from './group-commit.js';
import { withStatementCache } from './statement-cache.js';

/**
 * How long a connection waits for another process's write lock before failing with
 * SQLITE_BUSY. Our write transactions take milliseconds; 5 s absorbs a slow disk or a large
 * admin operation without letting a wedged process hang the server for long.
 */
export const BUSY_TIMEOUT_MS = 5000;

/**
 * WAL pages between the main connection's own checkpoints (SQLite's default is 1,000). The
 * background checkpointer does the bulk; this one bounds the WAL (~40 MiB) and resets it, which
 * a PASSIVE checkpoint cannot do while writes continue. With the default, the copy and fsync of
 * every ~35 tasks' pages ran on the event loop and dominated the dispatcher's wall time.
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
  const group = new GroupCommit(raw);
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(raw, undefined, group) }) });
  let checkpointer: Checkpointer | undefined;
  const inner = createKyselyStore(db, {
    dialect: 'sqlite',
    onClose: async () => {
      group.flush();
      await checkpointer?.stop();
    },
  });
  const store = durableAfterEachCall(inner, group);
  try {
    await store.migrate();
  } catch (err) {
    await store.close();
    throw err;
  }
  if (file !== ':memory:') checkpointer = startCheckpointer(file);
  return store;
}

/**
 * Every store call answers only once what it wrote is committed (see group-commit.ts): the
 * caller never acknowledges anything a crash could still take back.
 */
function durableAfterEachCall(store: Store, group: GroupCommit): Store {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      // Methods use private fields: call them on the store itself, not on the proxy.
      if (property === 'close') return (value as () => Promise<void>).bind(target);
      return async (...args: unknown[]) => {
        const result: unknown = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        await group.durable();
        return result;
      };
    },
  });
}
