/**
 * The statements the dispatcher runs for every task (create → offer → claim → start → finish),
 * precompiled once per store (prepared.ts). Everything else in kysely-store.ts is built per call.
 *
 * Invariant: on PostgreSQL, reading a task for a change locks it (`FOR UPDATE`): the task row
 * is the lock for its executions (see kysely-store.ts).
 */
import { CompiledQuery } from 'kysely';
import { Prepared, rowLimit } from './prepared.js';
import type { Selectable } from 'kysely';
import type { StoreDialect, TasksTable } from './schema.js';

/** Transaction control for SQLite, compiled once (the text never changes). */
export const BEGIN_IMMEDIATE = CompiledQuery.raw('begin immediate');
export const COMMIT = CompiledQuery.raw('commit');
export const ROLLBACK = CompiledQuery.raw('rollback');

export interface TaskInsert extends Record<string, unknown> {
  id: string;
  teamId: string;
  title: string | null;
  prompt: string;
  harness: string;
  workerId: string | null;
  timeoutSeconds: number | null;
  now: number;
  environmentId: string | null;
  /** JSON text, or null. */
  recipe: string | null;
  budget: string | null;
  model: string | null;
  push: number;
  pullRequest: string | null;
}

/** What a finish that reported results writes on the execution besides its end fields. */
export interface ExecutionEnd extends Record<string, unknown> {
  id: string;
  state: string;
  failureReason: string | null;
  message: string | null;
  exitCode: number | null;
  now: number;
}

/**
 * Compiled offer queries kept per LIMIT value (the limit is inlined, see rowLimit). Limits are a
 * worker's free slots, so few distinct values occur; beyond this many, compile per call.
 */
const MAX_CACHED_LIMITS = 64;

export function hotQueries(dialect: StoreDialect) {
  const pg = dialect === 'postgres';
  const queued = new Map<number, Prepared<{ teamId: string; workerId: string }, Selectable<TasksTable>>>();
  const queuedQuery = (limit: number) =>
    new Prepared((db, p: { teamId: string; workerId: string }) =>
      db
        .selectFrom('tasks')
        .selectAll()
        .where('team_id', '=', p.teamId)
        .where('state', '=', 'queued')
        .where((eb) => eb.or([eb('worker_id', 'is', null), eb('worker_id', '=', p.workerId)]))
        .orderBy('created_at')
        .orderBy('id')
        .limit(rowLimit(limit))
        // PostgreSQL: concurrent offers (other replicas) skip the rows this one is offering.
        .$if(pg, (q) => q.forUpdate().skipLocked()),
    );
  return {
    /** offerTasks: the oldest queued tasks of the team this worker may run (unrouted or routed to it). */
    queuedFor(limit: number) {
      let query = queued.get(limit);
      if (!query) {
        query = queuedQuery(limit);
        if (queued.size < MAX_CACHED_LIMITS) queued.set(limit, query);
      }
      return query;
    },

    insertTask: new Prepared((db, p: TaskInsert) =>
      db.insertInto('tasks').values({
        id: p.id,
        team_id: p.teamId,
        title: p.title,
        state: 'queued',
        prompt: p.prompt,
        harness: p.harness,
        worker_id: p.workerId,
        timeout_seconds: p.timeoutSeconds,
        failure_reason: null,
        message: null,
        exit_code: null,
        cancel_requested: 0,
        epoch: 0,
        created_at: p.now,
        updated_at: p.now,
        started_at: null,
        finished_at: null,
        environment_id: p.environmentId,
        recipe: p.recipe,
        budget: p.budget,
        model: p.model,
        push: p.push,
        pull_request: p.pullRequest,
      }),
    ),

    /** Read a task to change it: locked on PostgreSQL. */
    taskForUpdate: new Prepared((db, p: { id: string }) =>
      db
        .selectFrom('tasks')
        .selectAll()
        .where('id', '=', p.id)
        .$if(pg, (q) => q.forUpdate()),
    ),

    executionById: new Prepared((db, p: { id: string }) => db.selectFrom('executions').selectAll().where('id', '=', p.id)),
    executionByOffer: new Prepared((db, p: { offerId: string }) => db.selectFrom('executions').selectAll().where('offer_id', '=', p.offerId)),

    /** offerTasks, one task at a time (offers are a handful per call: a worker's free slots). */
    assignTask: new Prepared((db, p: { id: string; state: string; epoch: number; now: number }) =>
      db.updateTable('tasks').set({ state: p.state, epoch: p.epoch, updated_at: p.now }).where('id', '=', p.id),
    ),
    insertExecution: new Prepared(
      (
        db,
        p: {
          id: string;
          taskId: string;
          teamId: string;
          ordinal: number;
          workerId: string;
          epoch: number;
          state: string;
          offerId: string;
          offerDeadline: number;
          now: number;
        },
      ) =>
        db.insertInto('executions').values({
          id: p.id,
          task_id: p.taskId,
          team_id: p.teamId,
          ordinal: p.ordinal,
          worker_id: p.workerId,
          epoch: p.epoch,
          state: p.state,
          offer_id: p.offerId,
          offer_deadline: p.offerDeadline,
          lease_expires_at: null,
          failure_reason: null,
          message: null,
          exit_code: null,
          created_at: p.now,
          started_at: null,
          finished_at: null,
        }),
    ),

    claimExecution: new Prepared((db, p: { id: string; state: string; leaseExpiresAt: number }) =>
      db.updateTable('executions').set({ state: p.state, lease_expires_at: p.leaseExpiresAt }).where('id', '=', p.id),
    ),
    startExecution: new Prepared((db, p: { id: string; state: string; now: number; leaseExpiresAt: number }) =>
      db.updateTable('executions').set({ state: p.state, started_at: p.now, lease_expires_at: p.leaseExpiresAt }).where('id', '=', p.id),
    ),
    startTask: new Prepared((db, p: { id: string; state: string; now: number }) =>
      db.updateTable('tasks').set({ state: p.state, started_at: p.now, updated_at: p.now }).where('id', '=', p.id),
    ),

    endExecution: new Prepared((db, p: ExecutionEnd) =>
      db
        .updateTable('executions')
        .set({ state: p.state, failure_reason: p.failureReason, message: p.message, exit_code: p.exitCode, finished_at: p.now })
        .where('id', '=', p.id),
    ),
    /** A finish that reported artifacts or usage: the same end, and the results, in one statement. */
    endExecutionWithResults: new Prepared(
      (db, p: ExecutionEnd & { artifacts: string | null; inputTokens: number; outputTokens: number; requests: number }) =>
        db
          .updateTable('executions')
          .set({
            state: p.state,
            failure_reason: p.failureReason,
            message: p.message,
            exit_code: p.exitCode,
            finished_at: p.now,
            artifacts: p.artifacts,
            input_tokens: p.inputTokens,
            output_tokens: p.outputTokens,
            requests: p.requests,
          })
          .where('id', '=', p.id),
    ),
    endTask: new Prepared(
      (
        db,
        p: { id: string; state: string; failureReason: string | null; message: string | null; exitCode: number | null; cancelRequested: number; now: number },
      ) =>
        db
          .updateTable('tasks')
          .set({
            state: p.state,
            failure_reason: p.failureReason,
            message: p.message,
            exit_code: p.exitCode,
            cancel_requested: p.cancelRequested,
            finished_at: p.now,
            updated_at: p.now,
          })
          .where('id', '=', p.id),
    ),
    /** A non-terminal task change (back to `queued`). */
    setTaskState: new Prepared((db, p: { id: string; state: string; now: number }) =>
      db.updateTable('tasks').set({ state: p.state, updated_at: p.now }).where('id', '=', p.id),
    ),
  };
}

export type HotQueries = ReturnType<typeof hotQueries>;
