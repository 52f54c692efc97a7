/**
 * Migration 0005: a task's size — the CPUs and memory its container gets instead of the worker's
 * defaults — as an environment recipe field. Two nullable columns on `environments` (NULL: the
 * worker's default), so a PATCH of one size field is one column write, never a read-modify-write
 * of the other.
 *
 * - `cpus` is `double precision` (fractions such as 0.5): PostgreSQL's `real` is a 4-byte float
 *   that keeps ~7 significant digits, so not every number the API accepts would read back as
 *   given; SQLite gives the name REAL affinity, an 8-byte float like a JS number.
 * - `memory` is JSON text like every other JSON column: the size as written (`"2g"`) or a number
 *   of bytes, so either form reads back as it was given.
 * - Tasks need no column: their size is part of the resolved recipe they already keep as JSON
 *   (`tasks.recipe`, migration 0003); recipes written before this migration read as no size.
 *
 * Portable SQL only (nullable ADD COLUMN works on both dialects). A released migration is never
 * edited.
 */
import type { Kysely, Migration } from 'kysely';

export function taskSizeSchema(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      // SQLite allows one column per ALTER TABLE.
      await db.schema.alterTable('environments').addColumn('cpus', 'double precision').execute();
      await db.schema.alterTable('environments').addColumn('memory', 'text').execute();
    },
  };
}
