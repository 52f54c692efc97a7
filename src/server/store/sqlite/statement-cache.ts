/**
 * Kysely's SQLite driver prepares every query anew; on the dispatch hot path preparing costs
 * about as much as running. This wraps a better-sqlite3 database so `prepare` returns a cached
 * statement for SQL text it has seen recently (least recently used evicted).
 *
 * Invariant: safe because Kysely only calls `all`/`run` to completion on the one connection
 * (a cached statement is never re-entered while iterating), and SQLite re-prepares a cached
 * statement by itself if a migration changed the schema under it.
 */
import type { Database as BetterSqliteDatabase, Statement } from 'better-sqlite3';
import type { SqliteDatabase } from 'kysely';
import type { GroupCommit } from './group-commit.js';

/**
 * ~30 distinct statements make up the hot path; the rest of the room absorbs statements that
 * differ only by the length of an IN list or a VALUES batch, which would otherwise evict them.
 */
export const STATEMENT_CACHE_SIZE = 256;

export function withStatementCache(db: BetterSqliteDatabase, size = STATEMENT_CACHE_SIZE, group?: GroupCommit): SqliteDatabase {
  const cache = new Map<string, Statement>();
  return {
    close: () => {
      cache.clear();
      db.close();
    },
    prepare: (sql: string) => {
      if (group) {
        const control = group.control(sql);
        if (control) return control as unknown as Statement;
        group.ensureOpen();
      }
      const hit = cache.get(sql);
      if (hit) {
        // Re-insert to mark it most recently used (a Map iterates in insertion order).
        cache.delete(sql);
        cache.set(sql, hit);
        return hit;
      }
      const statement = db.prepare(sql);
      cache.set(sql, statement);
      if (cache.size > size) cache.delete(cache.keys().next().value!);
      return statement;
    },
  };
}
