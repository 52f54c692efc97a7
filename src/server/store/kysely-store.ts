/**
 * The one implementation of the Store port, over Kysely: SQLite (sqlite/) and PostgreSQL
 * (postgres/) adapters only open a connection, pick the dialect and hand it here.
 *
 * Invariants:
 * - Every dispatch operation runs in `tx()`: on SQLite a `BEGIN IMMEDIATE` transaction (the
 *   write lock is taken up front, so another process on the same file waits on busy_timeout
 *   instead of failing on a read→write upgrade); on PostgreSQL a transaction in which the
 *   *task row is the lock* for its executions — every writer of an execution first locks its
 *   task `FOR UPDATE` (in task-id order when it locks several), so there is one lock order
 *   and no deadlock, and `offerTasks` uses `SKIP LOCKED` so replicas never offer one task twice.
 * - Every state change goes through transitionTask/transitionExecution; an impossible change
 *   throws a ConflictError and rolls the transaction back.
 * - Rows become records only in rows.ts; queries here use no dialect-specific SQL except the
 *   locking clauses behind the `dialect` switch.
 */
import { sql, type Kysely, type RawBuilder } from 'kysely';
import { ConflictError, NotFoundError, ValidationError } from '../../protocol/errors.js';
import {
  ACTIVE_EXECUTION_STATES,
  TASK_STATES,
  TERMINAL_EXECUTION_STATES,
  TERMINAL_TASK_STATES,
  transitionExecution,
  transitionTask,
  type ExecutionState,
  type FailureReason,
  type Outcome,
  type TaskState,
} from '../../protocol/lifecycle.js';
import { BEGIN_IMMEDIATE, COMMIT, ROLLBACK, hotQueries, type HotQueries } from './hot-queries.js';
import { llmUsageReport, recordLlmUsage, type LlmUsageFilter, type LlmUsageIncrement, type LlmUsageReport } from './llm-usage.js';
import { rowLimit } from './prepared.js';
import { migrateToLatest } from './migrations/index.js';
import {
  apiKeyFromRow,
  auditFromRow,
  environmentFromRow,
  eventFromRow,
  executionFromRow,
  messageFromRow,
  taskFromRow,
  teamFromRow,
  workerFromRow,
} from './rows.js';
import type { Database, StoreDialect } from './schema.js';
import type {
  ApiKeyRecord,
  AuditRecord,
  CancelResult,
  ClaimResult,
  EndedExecution,
  EnvironmentPatch,
  EnvironmentRecord,
  EventRecord,
  ExecutionRecord,
  ExecutionRef,
  FenceResult,
  FinishInput,
  MessageRecord,
  NewEnvironment,
  NewTask,
  OfferTasksInput,
  Store,
  TaskListFilter,
  TaskPage,
  TaskRecord,
  TaskRecipe,
  TeamRecord,
  WorkerRecord,
} from './store.js';
import { emptyRecipe } from './store.js';

/**
 * Events per INSERT statement. 1,000 rows × 7 columns = 7,000 bound parameters: below SQLite's
 * 32,766 and PostgreSQL's 65,535, and twice the largest batch a worker sends
 * (MAX_EVENTS_PER_BATCH = 500), so a normal batch is one statement.
 */
const EVENTS_PER_STATEMENT = 1000;

/** Executions that hold a lease (an `offered` one holds only an offer deadline). */
const LEASED_STATES: readonly ExecutionState[] = ['claimed', 'running'];

/**
 * States as SQL literals, for conditions that must select a partial index (migration 0001):
 * SQLite uses one only when the query repeats the index's condition with the same constants,
 * which a bound parameter is not.
 */
function literally(states: readonly ExecutionState[]): Array<RawBuilder<ExecutionState>> {
  return states.map((state) => sql.lit(state));
}
const ACTIVE_SQL = literally(ACTIVE_EXECUTION_STATES);
const LEASED_SQL = literally(LEASED_STATES);
const OFFERED_SQL = sql.lit<ExecutionState>('offered');

export interface KyselyStoreOptions {
  dialect: StoreDialect;
  /** An adapter's own cleanup, run once by `close()` before the Kysely instance is destroyed. */
  onClose?: () => Promise<void> | void;
}

/** The Store over an already-configured Kysely instance. Call `migrate()` before use. */
export function createKyselyStore(db: Kysely<Database>, options: KyselyStoreOptions): Store {
  return new KyselyStore(db, options);
}

/** An execution and its task, read together (and, on PostgreSQL, with the task row locked). */
interface Pair {
  task: TaskRecord;
  execution: ExecutionRecord;
}

/** What ending an execution writes on it (and, when the task ends too, on the task). */
interface EndFields {
  failureReason: FailureReason | null;
  message: string | null;
  exitCode: number | null;
}

interface Cursor {
  createdAt: number;
  id: string;
}

class KyselyStore implements Store {
  readonly kind: StoreDialect;
  readonly #db: Kysely<Database>;
  readonly #pg: boolean;
  readonly #onClose: (() => Promise<void> | void) | undefined;
  readonly #q: HotQueries;
  #closed = false;

  constructor(db: Kysely<Database>, options: KyselyStoreOptions) {
    this.#db = db;
    this.kind = options.dialect;
    this.#pg = options.dialect === 'postgres';
    this.#onClose = options.onClose;
    this.#q = hotQueries(options.dialect);
  }

  // ── lifecycle of the store itself ──

  async migrate(): Promise<void> {
    await migrateToLatest(this.#db, this.kind);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#onClose?.();
    } finally {
      await this.#db.destroy();
    }
  }

  async ping(): Promise<void> {
    await sql`select 1`.execute(this.#db);
  }

  /**
   * One transaction. SQLite: `BEGIN IMMEDIATE` on the single connection (Kysely's connection
   * mutex already serialises this process; the immediate lock serialises other processes).
   */
  async #tx<T>(fn: (trx: Kysely<Database>) => Promise<T>): Promise<T> {
    if (this.#pg) return this.#db.transaction().execute(fn);
    return this.#db.connection().execute(async (conn) => {
      await conn.executeQuery(BEGIN_IMMEDIATE);
      let result: T;
      try {
        result = await fn(conn);
      } catch (err) {
        try {
          await conn.executeQuery(ROLLBACK);
        } catch {
          // SQLite already rolled back on its own (e.g. SQLITE_FULL); the first error is the one to report.
        }
        throw err;
      }
      await conn.executeQuery(COMMIT);
      return result;
    });
  }

  // ── teams and keys ──

  async createTeam(team: { id: string; name: string; now: number }): Promise<TeamRecord> {
    const result = await this.#db
      .insertInto('teams')
      .values({ id: team.id, name: team.name, created_at: team.now })
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    if (Number(result.numInsertedOrUpdatedRows ?? 0n) === 0) {
      const byName = await this.getTeamByName(team.name);
      throw new ConflictError(
        byName
          ? `a team named "${team.name}" already exists — choose another name`
          : `a team with id "${team.id}" already exists — create the team again to get a new id`,
      );
    }
    return { id: team.id, name: team.name, createdAt: team.now };
  }

  async getTeam(id: string): Promise<TeamRecord | undefined> {
    const row = await this.#db.selectFrom('teams').selectAll().where('id', '=', id).executeTakeFirst();
    return row && teamFromRow(row);
  }

  async getTeamByName(name: string): Promise<TeamRecord | undefined> {
    const row = await this.#db.selectFrom('teams').selectAll().where('name', '=', name).executeTakeFirst();
    return row && teamFromRow(row);
  }

  async insertApiKey(key: Omit<ApiKeyRecord, 'revokedAt'>): Promise<ApiKeyRecord> {
    await referencing(`team ${key.teamId}`, () =>
      this.#db
        .insertInto('api_keys')
        .values({ id: key.id, team_id: key.teamId, role: key.role, name: key.name, hash: key.hash, created_at: key.createdAt, revoked_at: null })
        .execute(),
    );
    return { ...key, revokedAt: null };
  }

  async getApiKey(id: string): Promise<ApiKeyRecord | undefined> {
    const row = await this.#db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirst();
    return row && apiKeyFromRow(row);
  }

  async listApiKeys(teamId: string): Promise<ApiKeyRecord[]> {
    const rows = await this.#db.selectFrom('api_keys').selectAll().where('team_id', '=', teamId).orderBy('created_at').orderBy('id').execute();
    return rows.map(apiKeyFromRow);
  }

  async revokeApiKey(teamId: string, id: string, now: number): Promise<boolean> {
    // coalesce: revoking twice keeps the first revocation time.
    const result = await this.#db
      .updateTable('api_keys')
      .set({ revoked_at: sql<number>`coalesce(revoked_at, ${now})` })
      .where('team_id', '=', teamId)
      .where('id', '=', id)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  // ── workers ──

  async upsertWorker(worker: WorkerRecord): Promise<void> {
    const values = {
      version: worker.version,
      backend: worker.backend,
      labels: JSON.stringify(worker.labels),
      capacity: worker.capacity,
      connected: worker.connected ? 1 : 0,
      draining: worker.draining ? 1 : 0,
      connected_at: worker.connectedAt,
      last_seen_at: worker.lastSeenAt,
    };
    await referencing(`team ${worker.teamId}`, () =>
      this.#db
        .insertInto('workers')
        .values({ team_id: worker.teamId, worker_id: worker.workerId, ...values })
        .onConflict((oc) => oc.columns(['team_id', 'worker_id']).doUpdateSet(values))
        .execute(),
    );
  }

  /** `connectedAt` means "connected since", so it is cleared with the connection. */
  async markWorkerDisconnected(teamId: string, workerId: string, now: number): Promise<void> {
    await this.#db
      .updateTable('workers')
      .set({ connected: 0, connected_at: null, last_seen_at: now })
      .where('team_id', '=', teamId)
      .where('worker_id', '=', workerId)
      .execute();
  }

  /**
   * `lastSeenAt` is left as it was: at server start nobody has seen these workers, and their
   * last heartbeat to the previous server process is the truthful value.
   */
  async markAllWorkersDisconnected(_now: number): Promise<void> {
    await this.#db.updateTable('workers').set({ connected: 0, connected_at: null }).where('connected', '=', 1).execute();
  }

  async touchWorker(teamId: string, workerId: string, now: number, draining: boolean): Promise<void> {
    await this.#db
      .updateTable('workers')
      .set({ last_seen_at: now, draining: draining ? 1 : 0 })
      .where('team_id', '=', teamId)
      .where('worker_id', '=', workerId)
      .execute();
  }

  async listWorkers(teamId: string): Promise<WorkerRecord[]> {
    const rows = await this.#db.selectFrom('workers').selectAll().where('team_id', '=', teamId).orderBy('worker_id').execute();
    return rows.map(workerFromRow);
  }

  // ── tasks ──

  async createTask(task: NewTask): Promise<TaskRecord> {
    const record: TaskRecord = {
      id: task.id,
      teamId: task.teamId,
      title: task.title,
      state: 'queued',
      prompt: task.prompt,
      harness: task.harness,
      workerId: task.workerId,
      timeoutSeconds: task.timeoutSeconds,
      failureReason: null,
      message: null,
      exitCode: null,
      cancelRequested: false,
      epoch: 0,
      createdAt: task.now,
      updatedAt: task.now,
      startedAt: null,
      finishedAt: null,
      environmentId: task.environmentId ?? null,
      recipe: task.recipe ?? emptyRecipe(),
      budget: task.budget ?? null,
      model: task.model ?? null,
      push: task.push ?? false,
      pullRequest: task.pullRequest ?? null,
    };
    await referencing(`team ${task.teamId}`, () =>
      this.#q.insertTask.execute(this.#db, {
        id: task.id,
        teamId: task.teamId,
        title: task.title,
        prompt: task.prompt,
        harness: task.harness,
        workerId: task.workerId,
        timeoutSeconds: task.timeoutSeconds,
        now: task.now,
        environmentId: record.environmentId,
        recipe: isEmptyRecipe(record.recipe) ? null : JSON.stringify(record.recipe),
        budget: record.budget === null ? null : JSON.stringify(record.budget),
        model: record.model,
        push: record.push ? 1 : 0,
        pullRequest: record.pullRequest === null ? null : JSON.stringify(record.pullRequest),
      }),
    );
    return record;
  }

  async getTask(teamId: string, taskId: string): Promise<TaskRecord | undefined> {
    const row = await this.#db.selectFrom('tasks').selectAll().where('id', '=', taskId).where('team_id', '=', teamId).executeTakeFirst();
    return row && taskFromRow(row);
  }

  /**
   * Newest first, keyset-paginated on (created_at, id). The `workerId` filter matches the worker
   * of the task's latest execution — where it runs or last ran — and, for a task never offered
   * yet, the worker it is routed to.
   */
  async listTasks(teamId: string, filter: TaskListFilter): Promise<TaskPage> {
    if (!Number.isInteger(filter.limit) || filter.limit < 1) {
      throw new ValidationError(`limit must be a positive integer, got ${String(filter.limit)} — ask for at least one task per page`, { field: 'limit' });
    }
    const cursor = filter.cursor === undefined ? undefined : decodeCursor(filter.cursor);
    const rows = await this.#db
      .selectFrom('tasks')
      .selectAll()
      .where('team_id', '=', teamId)
      .$if(filter.state !== undefined, (q) => q.where('state', '=', filter.state!))
      .$if(filter.workerId !== undefined, (q) =>
        q.where(
          (eb) =>
            eb.fn.coalesce(
              eb
                .selectFrom('executions')
                .select('executions.worker_id')
                .whereRef('executions.task_id', '=', 'tasks.id')
                .orderBy('executions.ordinal', 'desc')
                .limit(rowLimit(1)),
              eb.ref('tasks.worker_id'),
            ),
          '=',
          filter.workerId!,
        ),
      )
      .$if(cursor !== undefined, (q) => q.where((eb) => eb(eb.refTuple('created_at', 'id'), '<', eb.tuple(cursor!.createdAt, cursor!.id))))
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(rowLimit(filter.limit + 1))
      .execute();
    const tasks = rows.slice(0, filter.limit).map(taskFromRow);
    const last = tasks[tasks.length - 1];
    const nextCursor = rows.length > filter.limit && last ? encodeCursor({ createdAt: last.createdAt, id: last.id }) : null;
    return { tasks, nextCursor };
  }

  async listExecutions(taskId: string): Promise<ExecutionRecord[]> {
    const rows = await this.#db.selectFrom('executions').selectAll().where('task_id', '=', taskId).orderBy('ordinal').execute();
    return rows.map(executionFromRow);
  }

  async getExecution(executionId: string): Promise<ExecutionRecord | undefined> {
    const row = await this.#db.selectFrom('executions').selectAll().where('id', '=', executionId).executeTakeFirst();
    return row && executionFromRow(row);
  }

  // ── dispatch ──

  async offerTasks(input: OfferTasksInput): Promise<Array<{ task: TaskRecord; execution: ExecutionRecord }>> {
    if (input.limit < 1) return [];
    return this.#tx(async (trx) => {
      const rows = await this.#q.queuedFor(input.limit).rows(trx, { teamId: input.teamId, workerId: input.workerId });
      if (rows.length === 0) return [];

      const state = transitionTask('queued', 'assigned');
      const offered: Array<{ task: TaskRecord; execution: ExecutionRecord }> = [];
      for (const row of rows) {
        const before = taskFromRow(row);
        // Every execution starts with an offer and every offer bumps the epoch, so the new
        // epoch is also the new execution's ordinal (the unique (task_id, ordinal) index
        // would refuse a second execution with the same number).
        const epoch = before.epoch + 1;
        const task: TaskRecord = { ...before, state, epoch, updatedAt: input.now };
        const execution: ExecutionRecord = {
          id: input.newExecutionId(),
          taskId: task.id,
          teamId: task.teamId,
          ordinal: epoch,
          workerId: input.workerId,
          epoch,
          state: 'offered',
          offerId: input.newOfferId(),
          offerDeadline: input.offerDeadline,
          leaseExpiresAt: null,
          failureReason: null,
          message: null,
          exitCode: null,
          createdAt: input.now,
          startedAt: null,
          finishedAt: null,
          artifacts: null,
          usage: { input_tokens: 0, output_tokens: 0, requests: 0 },
        };
        await this.#q.assignTask.execute(trx, { id: task.id, state, epoch, now: input.now });
        await this.#q.insertExecution.execute(trx, { ...execution, now: input.now });
        offered.push({ task, execution });
      }
      return offered;
    });
  }

  /**
   * A repeated claim of an offer this worker already holds (its first `ack` was lost) answers
   * `ok` again without changing anything: the worker protocol is at-least-once.
   */
  async claimOffer(input: { offerId: string; workerId: string; teamId: string; now: number; leaseExpiresAt: number }): Promise<ClaimResult> {
    return this.#tx(async (trx): Promise<ClaimResult> => {
      const pair = await this.#lockByExecution(trx, 'offer_id', input.offerId);
      if (!pair || pair.execution.teamId !== input.teamId || pair.execution.workerId !== input.workerId) {
        return { ok: false, reason: 'unknown' };
      }
      const { task, execution } = pair;
      switch (execution.state) {
        case 'claimed':
        case 'running':
          return { ok: true, task, execution };
        case 'expired':
          return { ok: false, reason: 'expired' };
        case 'cancelled':
          return { ok: false, reason: 'cancelled' };
        case 'succeeded':
        case 'failed':
          return { ok: false, reason: 'unknown' };
        case 'offered':
          break;
      }
      if (input.now >= execution.offerDeadline) {
        const ended = await this.#endOffer(trx, pair, input.now, 'the offer expired before the worker claimed it');
        return { ok: false, reason: ended.task.state === 'cancelled' ? 'cancelled' : 'expired' };
      }
      if (task.cancelRequested) {
        await this.#end(trx, pair, input.now, 'cancelled', 'cancelled', { failureReason: null, message: 'cancelled before the worker claimed it', exitCode: null });
        return { ok: false, reason: 'cancelled' };
      }
      const state = transitionExecution(execution.state, 'claimed');
      await this.#q.claimExecution.execute(trx, { id: execution.id, state, leaseExpiresAt: input.leaseExpiresAt });
      return { ok: true, task, execution: { ...execution, state, leaseExpiresAt: input.leaseExpiresAt } };
    });
  }

  async declineOffer(input: { offerId: string; workerId: string; teamId: string; now: number; message: string }): Promise<EndedExecution | undefined> {
    return this.#tx(async (trx) => {
      const pair = await this.#lockByExecution(trx, 'offer_id', input.offerId);
      if (!pair || pair.execution.teamId !== input.teamId || pair.execution.workerId !== input.workerId || pair.execution.state !== 'offered') {
        return undefined;
      }
      return this.#endOffer(trx, pair, input.now, input.message);
    });
  }

  async expireOffers(now: number): Promise<EndedExecution[]> {
    return this.#tx(async (trx) => {
      const rows = await trx
        .selectFrom('executions')
        .selectAll()
        .where('state', '=', OFFERED_SQL)
        .where('offer_deadline', '<=', now)
        .orderBy('task_id')
        .execute();
      const ended: EndedExecution[] = [];
      for (const row of rows) {
        const pair = await this.#lockTaskOf(trx, executionFromRow(row));
        // Another replica may have ended it while we waited for the lock.
        if (pair.execution.state !== 'offered' || pair.execution.offerDeadline > now) continue;
        ended.push(await this.#endOffer(trx, pair, now, 'the offer expired before the worker claimed it'));
      }
      return ended;
    });
  }

  async expireOffersOfWorker(teamId: string, workerId: string, now: number): Promise<EndedExecution[]> {
    return this.#tx(async (trx) => {
      const rows = await trx
        .selectFrom('executions')
        .selectAll()
        .where('team_id', '=', teamId)
        .where('worker_id', '=', workerId)
        .where('state', 'in', ACTIVE_SQL)
        .where('state', '=', OFFERED_SQL)
        .orderBy('task_id')
        .execute();
      const ended: EndedExecution[] = [];
      for (const row of rows) {
        const pair = await this.#lockTaskOf(trx, executionFromRow(row));
        if (pair.execution.state !== 'offered') continue;
        ended.push(await this.#endOffer(trx, pair, now, `worker "${workerId}" disconnected before claiming the offer`));
      }
      return ended;
    });
  }

  async markStarted(input: { executionId: string; epoch: number; workerId: string; now: number; leaseExpiresAt: number }): Promise<FenceResult> {
    return this.#tx(async (trx): Promise<FenceResult> => {
      const pair = await this.#lockByExecution(trx, 'id', input.executionId);
      if (!pair || !owns(pair, input.epoch, input.workerId)) return 'lease_lost';
      const { task, execution } = pair;
      if (execution.state === 'running') return 'duplicate';
      if (execution.state !== 'claimed') return 'lease_lost';
      await this.#q.startExecution.execute(trx, {
        id: execution.id,
        state: transitionExecution(execution.state, 'running'),
        now: input.now,
        leaseExpiresAt: input.leaseExpiresAt,
      });
      await this.#q.startTask.execute(trx, { id: task.id, state: transitionTask(task.state, 'running'), now: input.now });
      return 'ok';
    });
  }

  /**
   * A failure reported while a cancel was pending is recorded as `cancelled`: the failure was
   * the cancellation (the harness was signalled). Exit code, reason and message are kept as
   * the worker reported them. A repeat of the finish already recorded is a `duplicate`.
   */
  async finishExecution(input: FinishInput): Promise<{ result: FenceResult; ended?: EndedExecution }> {
    return this.#tx(async (trx): Promise<{ result: FenceResult; ended?: EndedExecution }> => {
      const pair = await this.#lockByExecution(trx, 'id', input.executionId);
      if (!pair || !owns(pair, input.epoch, input.workerId)) return { result: 'lease_lost' };
      const { task, execution } = pair;
      const outcome: Outcome = input.outcome === 'failed' && task.cancelRequested ? 'cancelled' : input.outcome;
      if (TERMINAL_EXECUTION_STATES.has(execution.state)) {
        const same = execution.state === outcome && execution.exitCode === input.exitCode && execution.failureReason === input.failureReason;
        return { result: same ? 'duplicate' : 'lease_lost' };
      }
      if (!LEASED_STATES.includes(execution.state)) return { result: 'lease_lost' };
      const results = input.artifacts || input.usage ? { artifacts: input.artifacts ?? null, usage: input.usage ?? pair.execution.usage } : undefined;
      const ended = await this.#end(
        trx,
        pair,
        input.now,
        outcome,
        outcome,
        { failureReason: input.failureReason, message: input.message, exitCode: input.exitCode },
        results,
      );
      return { result: 'ok', ended };
    });
  }

  /** One statement: the lease moves only where (id, epoch), worker and a leased state all match. */
  async renewLeases(input: { teamId: string; workerId: string; leases: ExecutionRef[]; now: number; leaseExpiresAt: number }): Promise<{
    renewed: string[];
    lost: string[];
  }> {
    if (input.leases.length === 0) return { renewed: [], lost: [] };
    const rows = await this.#db
      .updateTable('executions')
      .set({ lease_expires_at: input.leaseExpiresAt })
      .where('team_id', '=', input.teamId)
      .where('worker_id', '=', input.workerId)
      .where('state', 'in', LEASED_STATES)
      .where((eb) =>
        eb(
          eb.refTuple('id', 'epoch'),
          'in',
          input.leases.map((l) => eb.tuple(l.executionId, l.epoch)),
        ),
      )
      .returning('id')
      .execute();
    const renewedIds = new Set(rows.map((r) => r.id));
    const renewed: string[] = [];
    const lost: string[] = [];
    for (const lease of input.leases) (renewedIds.has(lease.executionId) ? renewed : lost).push(lease.executionId);
    return { renewed, lost };
  }

  async expireLeases(now: number, message: (execution: ExecutionRecord) => string): Promise<EndedExecution[]> {
    return this.#tx(async (trx) => {
      const rows = await trx
        .selectFrom('executions')
        .selectAll()
        .where('state', 'in', LEASED_SQL)
        .where('lease_expires_at', '<=', now)
        .orderBy('task_id')
        .execute();
      const ended: EndedExecution[] = [];
      for (const row of rows) {
        const pair = await this.#lockTaskOf(trx, executionFromRow(row));
        const lease = pair.execution.leaseExpiresAt;
        if (!LEASED_STATES.includes(pair.execution.state) || lease === null || lease > now) continue;
        ended.push(await this.#endLost(trx, pair, now, message(pair.execution)));
      }
      return ended;
    });
  }

  /**
   * `offered` executions of the worker are leftovers of its previous connection: they expire
   * (the task is offered again) and are reported in `ended`; if the worker named one, it is
   * also told to abandon it, since it never held a claim.
   */
  async reconcileWorker(input: {
    teamId: string;
    workerId: string;
    running: ExecutionRef[];
    now: number;
    leaseExpiresAt: number;
    lostMessage: string;
  }): Promise<{ keep: string[]; abandon: string[]; ended: EndedExecution[] }> {
    return this.#tx(async (trx) => {
      const named = new Map(input.running.map((r) => [r.executionId, r.epoch]));
      const rows = await trx
        .selectFrom('executions')
        .selectAll()
        .where('team_id', '=', input.teamId)
        .where('worker_id', '=', input.workerId)
        .where('state', 'in', ACTIVE_SQL)
        .orderBy('task_id')
        .execute();
      const keep: string[] = [];
      const abandon: string[] = [];
      const ended: EndedExecution[] = [];
      for (const row of rows) {
        const pair = await this.#lockTaskOf(trx, executionFromRow(row));
        const { execution } = pair;
        if (!ACTIVE_EXECUTION_STATES.includes(execution.state)) continue;
        const namedEpoch = named.get(execution.id);
        named.delete(execution.id);
        if (execution.state === 'offered') {
          ended.push(await this.#endOffer(trx, pair, input.now, `worker "${input.workerId}" reconnected without having claimed the offer`));
          if (namedEpoch !== undefined) abandon.push(execution.id);
        } else if (namedEpoch === execution.epoch) {
          keep.push(execution.id);
        } else {
          ended.push(await this.#endLost(trx, pair, input.now, input.lostMessage));
          if (namedEpoch !== undefined) abandon.push(execution.id);
        }
      }
      // Named, but not active on this worker here: finished, expired, or another worker's now.
      abandon.push(...named.keys());
      if (keep.length > 0) {
        await trx.updateTable('executions').set({ lease_expires_at: input.leaseExpiresAt }).where('id', 'in', keep).execute();
      }
      return { keep, abandon, ended };
    });
  }

  /**
   * `message` is recorded when the cancel takes effect here (queued or offered). A claimed or
   * running task only gets `cancelRequested`; its worker's finish report (or the lease
   * sweeper) writes the final message. Asking again returns the execution again.
   */
  async requestCancel(input: { teamId: string; taskId: string; now: number; message: string }): Promise<CancelResult | undefined> {
    return this.#tx(async (trx): Promise<CancelResult | undefined> => {
      const row = await trx
        .selectFrom('tasks')
        .selectAll()
        .where('id', '=', input.taskId)
        .where('team_id', '=', input.teamId)
        .$if(this.#pg, (q) => q.forUpdate())
        .executeTakeFirst();
      if (!row) return undefined;
      const task = taskFromRow(row);
      if (TERMINAL_TASK_STATES.has(task.state)) return { task, execution: null };

      const active = await trx
        .selectFrom('executions')
        .selectAll()
        .where('task_id', '=', task.id)
        .where('state', 'in', ACTIVE_EXECUTION_STATES)
        .orderBy('ordinal', 'desc')
        .limit(rowLimit(1))
        .executeTakeFirst();
      const fields: EndFields = { failureReason: null, message: input.message, exitCode: null };

      if (!active) {
        // queued (or an assigned task without an execution, which cannot happen: treated the same).
        const cancelled = await this.#endTask(trx, task, input.now, 'cancelled', fields);
        return { task: cancelled, execution: null };
      }
      const execution = executionFromRow(active);
      if (execution.state === 'offered') {
        const ended = await this.#end(trx, { task, execution }, input.now, 'cancelled', 'cancelled', fields);
        return { task: ended.task, execution: null };
      }
      if (!task.cancelRequested) {
        await trx.updateTable('tasks').set({ cancel_requested: 1, updated_at: input.now }).where('id', '=', task.id).execute();
      }
      return { task: { ...task, cancelRequested: true, updatedAt: task.cancelRequested ? task.updatedAt : input.now }, execution };
    });
  }

  async pendingCancels(teamId: string, workerId: string): Promise<ExecutionRecord[]> {
    const rows = await this.#db
      .selectFrom('executions')
      .innerJoin('tasks', 'tasks.id', 'executions.task_id')
      .selectAll('executions')
      .where('executions.team_id', '=', teamId)
      .where('executions.worker_id', '=', workerId)
      .where('executions.state', 'in', ACTIVE_SQL)
      .where('executions.state', 'in', LEASED_SQL)
      .where('tasks.cancel_requested', '=', 1)
      .orderBy('executions.created_at')
      .execute();
    return rows.map(executionFromRow);
  }

  // ── environments ──

  async createEnvironment(environment: NewEnvironment): Promise<EnvironmentRecord> {
    const { now, ...fields } = environment;
    const record: EnvironmentRecord = { ...fields, createdAt: now, updatedAt: now };
    await uniqueName(environment.name, () =>
      referencing(`team ${environment.teamId}`, () =>
        this.#db
          .insertInto('environments')
          .values({
            id: record.id,
            team_id: record.teamId,
            name: record.name,
            image: record.image,
            repositories: JSON.stringify(record.repositories),
            setup_commands: JSON.stringify(record.setupCommands),
            setup_timeout_seconds: record.setupTimeoutSeconds,
            secret_names: JSON.stringify(record.secretNames),
            env_names: JSON.stringify(record.envNames),
            cpus: record.cpus,
            memory: record.memory === null ? null : JSON.stringify(record.memory),
            created_at: now,
            updated_at: now,
          })
          .execute(),
      ),
    );
    return record;
  }

  async getEnvironment(teamId: string, id: string): Promise<EnvironmentRecord | undefined> {
    const row = await this.#db.selectFrom('environments').selectAll().where('team_id', '=', teamId).where('id', '=', id).executeTakeFirst();
    return row && environmentFromRow(row);
  }

  async listEnvironments(teamId: string): Promise<EnvironmentRecord[]> {
    const rows = await this.#db.selectFrom('environments').selectAll().where('team_id', '=', teamId).orderBy('name').execute();
    return rows.map(environmentFromRow);
  }

  async updateEnvironment(teamId: string, id: string, patch: EnvironmentPatch, now: number): Promise<EnvironmentRecord | undefined> {
    const set: Record<string, unknown> = { updated_at: now };
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.image !== undefined) set.image = patch.image;
    if (patch.repositories !== undefined) set.repositories = JSON.stringify(patch.repositories);
    if (patch.setupCommands !== undefined) set.setup_commands = JSON.stringify(patch.setupCommands);
    if (patch.setupTimeoutSeconds !== undefined) set.setup_timeout_seconds = patch.setupTimeoutSeconds;
    if (patch.secretNames !== undefined) set.secret_names = JSON.stringify(patch.secretNames);
    if (patch.envNames !== undefined) set.env_names = JSON.stringify(patch.envNames);
    if (patch.cpus !== undefined) set.cpus = patch.cpus;
    if (patch.memory !== undefined) set.memory = patch.memory === null ? null : JSON.stringify(patch.memory);
    const result = await uniqueName(patch.name ?? '', () =>
      this.#db.updateTable('environments').set(set).where('team_id', '=', teamId).where('id', '=', id).executeTakeFirst(),
    );
    if (Number(result.numUpdatedRows) === 0) return undefined;
    return this.getEnvironment(teamId, id);
  }

  async deleteEnvironment(teamId: string, id: string): Promise<boolean> {
    const result = await this.#db.deleteFrom('environments').where('team_id', '=', teamId).where('id', '=', id).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  // ── transcripts ──

  async appendEvents(
    execution: { executionId: string; taskId: string; ordinal: number },
    events: Array<Omit<EventRecord, 'taskId' | 'executionId' | 'ordinal'>>,
  ): Promise<number> {
    if (events.length === 0) return 0;
    const rows = events.map((e) => ({
      execution_id: execution.executionId,
      seq: e.seq,
      task_id: execution.taskId,
      ordinal: execution.ordinal,
      ts: e.ts,
      kind: e.kind,
      data: JSON.stringify(e.data),
    }));
    const insert = async (db: Kysely<Database>, chunk: typeof rows): Promise<number> => {
      const result = await db
        .insertInto('events')
        .values(chunk)
        .onConflict((oc) => oc.columns(['execution_id', 'seq']).doNothing())
        .executeTakeFirst();
      return Number(result.numInsertedOrUpdatedRows ?? 0n);
    };
    return referencing(`execution ${execution.executionId}`, async () => {
      if (rows.length <= EVENTS_PER_STATEMENT) return insert(this.#db, rows);
      return this.#tx(async (trx) => {
        let stored = 0;
        for (let i = 0; i < rows.length; i += EVENTS_PER_STATEMENT) stored += await insert(trx, rows.slice(i, i + EVENTS_PER_STATEMENT));
        return stored;
      });
    });
  }

  async listEvents(taskId: string, after: { ordinal: number; seq: number } | null, limit: number): Promise<EventRecord[]> {
    const rows = await this.#db
      .selectFrom('events')
      .selectAll()
      .where('task_id', '=', taskId)
      .$if(after !== null, (q) => q.where((eb) => eb(eb.refTuple('ordinal', 'seq'), '>', eb.tuple(after!.ordinal, after!.seq))))
      .orderBy('ordinal')
      .orderBy('seq')
      .limit(rowLimit(limit))
      .execute();
    return rows.map(eventFromRow);
  }

  // ── follow-up messages ──

  async insertMessage(message: MessageRecord): Promise<void> {
    await referencing(`task ${message.taskId}`, () =>
      this.#db.insertInto('messages').values({ id: message.id, task_id: message.taskId, text: message.text, created_at: message.createdAt }).execute(),
    );
  }

  async listMessages(taskId: string): Promise<MessageRecord[]> {
    const rows = await this.#db.selectFrom('messages').selectAll().where('task_id', '=', taskId).orderBy('created_at').orderBy('id').execute();
    return rows.map(messageFromRow);
  }

  // ── audit and metrics ──

  async appendAudit(entry: Omit<AuditRecord, 'id'>): Promise<void> {
    await this.#db
      .insertInto('audit_log')
      .values({ team_id: entry.teamId, actor: entry.actor, action: entry.action, target: entry.target, detail: JSON.stringify(entry.detail), at: entry.at })
      .execute();
  }

  /** Newest first. */
  async listAudit(teamId: string, limit: number): Promise<AuditRecord[]> {
    const rows = await this.#db.selectFrom('audit_log').selectAll().where('team_id', '=', teamId).orderBy('id', 'desc').limit(rowLimit(limit)).execute();
    return rows.map(auditFromRow);
  }

  async recordLlmUsage(increment: LlmUsageIncrement): Promise<void> {
    await recordLlmUsage(this.#db, increment);
  }

  async llmUsageReport(teamId: string, filter?: LlmUsageFilter): Promise<LlmUsageReport> {
    return llmUsageReport(this.#db, teamId, filter);
  }

  async countTasksByState(): Promise<Record<TaskState, number>> {
    const rows = await this.#db
      .selectFrom('tasks')
      .select((eb) => ['state', eb.fn.countAll().as('count')])
      .groupBy('state')
      .execute();
    const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<TaskState, number>;
    for (const row of rows) counts[row.state as TaskState] = Number(row.count);
    return counts;
  }

  // ── helpers: reading and locking a pair ──

  async #lockByExecution(trx: Kysely<Database>, column: 'id' | 'offer_id', value: string): Promise<Pair | undefined> {
    const row = column === 'id' ? await this.#q.executionById.first(trx, { id: value }) : await this.#q.executionByOffer.first(trx, { offerId: value });
    return row && this.#lockTaskOf(trx, executionFromRow(row));
  }

  /**
   * Read (on PostgreSQL: lock) the execution's task. On PostgreSQL the execution is read again
   * after the lock, since another transaction may have changed it while we waited; on SQLite
   * the transaction already excludes every other writer.
   */
  async #lockTaskOf(trx: Kysely<Database>, execution: ExecutionRecord): Promise<Pair> {
    const taskRow = await this.#q.taskForUpdate.first(trx, { id: execution.taskId });
    if (!taskRow) throw new Error(`execution ${execution.id} names task ${execution.taskId}, which does not exist — the store is inconsistent`);
    if (!this.#pg) return { task: taskFromRow(taskRow), execution };
    const fresh = await this.#q.executionById.first(trx, { id: execution.id });
    if (!fresh) throw new Error(`execution ${execution.id} disappeared while its task was locked — the store is inconsistent`);
    return { task: taskFromRow(taskRow), execution: executionFromRow(fresh) };
  }

  // ── helpers: ending executions ──

  /** An offer ends unclaimed: the execution expires, the task is queued again (or cancelled if a cancel is pending). */
  async #endOffer(trx: Kysely<Database>, pair: Pair, now: number, message: string): Promise<EndedExecution> {
    const taskState: TaskState = pair.task.cancelRequested ? 'cancelled' : 'queued';
    return this.#end(trx, pair, now, 'expired', taskState, { failureReason: null, message, exitCode: null });
  }

  /** A leased execution whose worker is gone: failed/worker_lost, or cancelled if a cancel is pending. */
  async #endLost(trx: Kysely<Database>, pair: Pair, now: number, message: string): Promise<EndedExecution> {
    const state: Outcome = pair.task.cancelRequested ? 'cancelled' : 'failed';
    return this.#end(trx, pair, now, state, state, { failureReason: 'worker_lost', message, exitCode: null });
  }

  /** End the execution in `executionState` and move its task to `taskState` (terminal or back to `queued`). */
  async #end(
    trx: Kysely<Database>,
    pair: Pair,
    now: number,
    executionState: ExecutionState,
    taskState: TaskState,
    fields: EndFields,
    results?: Pick<ExecutionRecord, 'artifacts' | 'usage'>,
  ): Promise<EndedExecution> {
    const state = transitionExecution(pair.execution.state, executionState);
    if (results) {
      await this.#q.endExecutionWithResults.execute(trx, {
        id: pair.execution.id,
        state,
        ...fields,
        now,
        artifacts: results.artifacts === null ? null : JSON.stringify(results.artifacts),
        inputTokens: results.usage.input_tokens,
        outputTokens: results.usage.output_tokens,
        requests: results.usage.requests,
      });
    } else {
      await this.#q.endExecution.execute(trx, { id: pair.execution.id, state, ...fields, now });
    }
    const execution: ExecutionRecord = { ...pair.execution, state, ...fields, finishedAt: now, ...results };
    const task = await this.#endTask(trx, pair.task, now, taskState, fields);
    return { task, execution };
  }

  /** Move a task to `to`; a terminal state also records the outcome fields and `finishedAt`. */
  async #endTask(trx: Kysely<Database>, before: TaskRecord, now: number, to: TaskState, fields: EndFields): Promise<TaskRecord> {
    const state = transitionTask(before.state, to);
    const terminal = TERMINAL_TASK_STATES.has(state);
    // A cancel that takes effect here was requested too: the flag says so in the record.
    const cancelRequested = before.cancelRequested || state === 'cancelled';
    if (terminal) {
      await this.#q.endTask.execute(trx, { id: before.id, state, ...fields, cancelRequested: cancelRequested ? 1 : 0, now });
    } else {
      await this.#q.setTaskState.execute(trx, { id: before.id, state, now });
    }
    return terminal ? { ...before, state, ...fields, cancelRequested, finishedAt: now, updatedAt: now } : { ...before, state, updatedAt: now };
  }
}

/**
 * Run an insert whose row references `what` (a team, task or execution) and turn the
 * database's foreign-key violation into a NotFoundError naming it, on either dialect.
 */
async function referencing<T>(what: string, insert: () => Promise<T>): Promise<T> {
  try {
    return await insert();
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    // SQLite (better-sqlite3) and PostgreSQL (SQLSTATE foreign_key_violation).
    if (code === 'SQLITE_CONSTRAINT_FOREIGNKEY' || code === '23503') throw new NotFoundError(what);
    throw err;
  }
}

/** A unique-index violation on an environment's (team, name) becomes a ConflictError naming it. */
async function uniqueName<T>(name: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    // SQLite (better-sqlite3) and PostgreSQL (SQLSTATE unique_violation).
    if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === '23505') {
      throw new ConflictError(`an environment named "${name}" already exists in this team — choose another name, or update that environment`);
    }
    throw err;
  }
}

/** Stored as NULL: most tasks have no recipe, and NULL costs nothing to write or read. */
function isEmptyRecipe(recipe: TaskRecipe): boolean {
  return (
    recipe.image === null &&
    recipe.repositories.length === 0 &&
    recipe.setupCommands.length === 0 &&
    recipe.setupTimeoutSeconds === null &&
    recipe.secretNames.length === 0 &&
    recipe.envNames.length === 0 &&
    recipe.cpus === null &&
    recipe.memory === null
  );
}

/** The fence: the caller names the current epoch of the task and the worker that holds it. */
function owns(pair: Pair, epoch: number, workerId: string): boolean {
  return pair.execution.epoch === epoch && pair.task.epoch === epoch && pair.execution.workerId === workerId;
}

function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify([cursor.createdAt, cursor.id]), 'utf8').toString('base64url');
}

function decodeCursor(text: string): Cursor {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    value = undefined;
  }
  if (!Array.isArray(value) || value.length !== 2 || !Number.isSafeInteger(value[0]) || typeof value[1] !== 'string') {
    throw new ValidationError('cursor is not one this server issued — pass the `nextCursor` of the previous page unchanged, or omit it to start from the newest task', {
      field: 'cursor',
    });
  }
  return { createdAt: value[0] as number, id: value[1] };
}
