/**
 * Group commit for the SQLite store. Every store operation is its own Kysely transaction; on a
 * busy dispatcher that means thousands of commits a second, each writing its own copy of the
 * same hot pages (queue index, task row pages) to the WAL. Here the operations that run in one
 * turn of the event loop share one SQLite transaction: each operation's `begin`/`commit`/
 * `rollback` becomes a savepoint inside it, and the shared transaction commits at the end of
 * the turn (setImmediate).
 *
 * Invariant: an operation's caller is answered only after the shared transaction committed
 * (`durable()`), so nothing is acknowledged — an HTTP 201, a worker's ack — that a crash could
 * still take back. An operation that fails rolls back to its own savepoint and leaves the
 * others in the batch untouched; if the shared COMMIT itself fails, every operation of the batch
 * fails.
 */
import type { Database as BetterSqliteDatabase } from 'better-sqlite3';

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** What Kysely's SQLite driver needs of a statement for `begin`/`commit`/`rollback`. */
interface ControlStatement {
  reader: false;
  run(): { changes: number; lastInsertRowid: number };
}

export class GroupCommit {
  private open = false;
  private waiters: Waiter[] = [];
  private savepoints = 0;

  constructor(private readonly db: BetterSqliteDatabase) {}

  private statement(run: () => void): ControlStatement {
    return {
      reader: false,
      run: () => {
        run();
        return { changes: 0, lastInsertRowid: 0 };
      },
    };
  }

  /** The statement Kysely's driver runs for `sql`, if it is a transaction control statement. */
  control(sql: string): ControlStatement | undefined {
    switch (sql.toLowerCase()) {
      case 'begin':
      case 'begin immediate':
        return this.statement(() => {
          this.ensureOpen();
          this.db.exec(`SAVEPOINT op${++this.savepoints}`);
        });
      case 'commit':
        return this.statement(() => this.db.exec(`RELEASE op${this.savepoints--}`));
      case 'rollback':
        return this.statement(() => {
          const name = `op${this.savepoints--}`;
          this.db.exec(`ROLLBACK TO ${name}`);
          this.db.exec(`RELEASE ${name}`);
        });
      default:
        return undefined;
    }
  }

  /** Before any statement outside an operation's transaction: join the shared one. */
  ensureOpen(): void {
    if (this.open) return;
    this.db.exec('BEGIN IMMEDIATE');
    this.open = true;
    setImmediate(() => this.flush());
  }

  /** Resolves once everything written so far is committed. */
  durable(): Promise<void> {
    if (!this.open) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Commit the shared transaction now (end of the turn, or before closing). */
  flush(): void {
    if (!this.open) return;
    const waiters = this.waiters;
    this.waiters = [];
    this.open = false;
    try {
      this.db.exec('COMMIT');
    } catch (err) {
      try {
        this.db.exec('ROLLBACK');
      } catch {
        /* already rolled back by SQLite */
      }
      for (const w of waiters) w.reject(err);
      return;
    }
    for (const w of waiters) w.resolve();
  }
}
