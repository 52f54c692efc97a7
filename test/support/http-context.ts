/**
 * A real control-plane HTTP API for tests: SQLite store in a temp directory, the real hub,
 * metrics, authenticator and fastify app on an ephemeral loopback port. Only the dispatcher is
 * minimal (built on the store: cancel via requestCancel, messages via insertMessage), until the
 * real one is wired in by the server assembly.
 *
 * Also: helpers to create teams and keys, and to run a task's execution the way a worker would
 * (offer → claim → start → events → finish) through the real store.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { systemClock } from '../../src/lib/clock.js';
import { newId } from '../../src/lib/ids.js';
import type { Outcome } from '../../src/protocol/lifecycle.js';
import type { EventKind } from '../../src/protocol/task.js';
import { createAuthenticator, loadOrCreateServerSecret, mintApiKey } from '../../src/server/auth/keys.js';
import type { Dispatch, Principal, ServerContext } from '../../src/server/context.js';
import { buildHttpApp, type HttpAppOptions } from '../../src/server/http/app.js';
import { createServerMetrics } from '../../src/server/metrics.js';
import { openSqliteStore } from '../../src/server/store/sqlite/index.js';
import type { EventRecord, ExecutionRecord, Role, Store, TaskRecord, TeamRecord } from '../../src/server/store/store.js';
import { MemoryTranscriptHub } from '../../src/server/transcripts/hub.js';

export interface TestDispatch extends Dispatch {
  wakes: string[];
}

/** The dispatcher's user-facing half, on the store alone (no workers to tell). */
export function createTestDispatch(store: Store, hub: MemoryTranscriptHub): TestDispatch {
  const wakes: string[] = [];
  return {
    wakes,
    wake(reason) {
      wakes.push(reason);
    },
    async cancelTask(principal: Principal, taskId: string) {
      const result = await store.requestCancel({ teamId: principal.teamId, taskId, now: systemClock.now(), message: `cancelled by key:${principal.keyId}` });
      if (!result) return undefined;
      hub.publishTaskUpdate(result.task);
      return result.task;
    },
    async sendMessage(principal: Principal, taskId: string, text: string) {
      const task = await store.getTask(principal.teamId, taskId);
      if (!task) return undefined;
      const id = newId('msg');
      await store.insertMessage({ id, taskId, text, createdAt: systemClock.now() });
      return { id, delivered: false };
    },
  };
}

export interface TestApi {
  dir: string;
  url: string;
  app: FastifyInstance;
  ctx: ServerContext;
  /** The real store (the routes see `ctx.store`, which `wrapStore` may interpose on). */
  store: Store;
  hub: MemoryTranscriptHub;
  dispatch: TestDispatch;
  secret: Buffer;
  close(): Promise<void>;
}

export interface TestApiOptions extends HttpAppOptions {
  /** Use this data directory (kept afterwards) instead of a fresh temporary one. */
  dir?: string;
  /** Interpose on the real store as the routes see it (to widen race windows, count calls). */
  wrapStore?: (store: Store) => Store;
}

/** Forward every call to the real store (methods bound to it), overriding some. */
export function interpose(store: Store, overrides: Partial<Store>): Store {
  return new Proxy(store, {
    get(target, prop) {
      if (prop in overrides) return overrides[prop as keyof Store];
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

export async function startTestApi(options: TestApiOptions = {}): Promise<TestApi> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'airlock-http-'));
  const realStore = await openSqliteStore({ path: join(dir, 'airlock.db') });
  await realStore.migrate();
  const store = options.wrapStore ? options.wrapStore(realStore) : realStore;
  const secret = loadOrCreateServerSecret(dir);
  const hub = new MemoryTranscriptHub();
  const dispatch = createTestDispatch(store, hub);
  const ctx: ServerContext = {
    store,
    clock: systemClock,
    log: pino({ level: process.env.AIRLOCK_TEST_LOG ?? 'silent' }),
    metrics: createServerMetrics(),
    settings: { claimTimeoutMs: 10_000, leaseTtlMs: 30_000, cancelGraceMs: 10_000 },
    hub,
    dispatch,
    workers: { list: (teamId) => store.listWorkers(teamId) },
    authenticate: createAuthenticator(store, secret),
  };
  const app = await buildHttpApp(ctx, { ...(options.sseKeepAliveMs !== undefined ? { sseKeepAliveMs: options.sseKeepAliveMs } : {}) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('the test API has no TCP address');
  let closed = false;
  return {
    dir,
    url: `http://127.0.0.1:${address.port}`,
    app,
    ctx,
    store: realStore,
    hub,
    dispatch,
    secret,
    async close() {
      if (closed) return;
      closed = true;
      await app.close();
      await realStore.close();
      if (!options.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface TestTeam {
  team: TeamRecord;
  keys: Record<Role, string>;
  keyIds: Record<Role, string>;
}

/** A team with one key of each role. */
export async function createTeam(api: Pick<TestApi, 'store' | 'secret'>, name = `team-${newId('team').slice(5, 15)}`): Promise<TestTeam> {
  const now = systemClock.now();
  const team = await api.store.createTeam({ id: newId('team'), name, now });
  const keys = {} as Record<Role, string>;
  const keyIds = {} as Record<Role, string>;
  for (const role of ['admin', 'member', 'worker'] as const) {
    const minted = await mintApiKey(api.store, api.secret, { teamId: team.id, role, name: `${role} key`, now });
    keys[role] = minted.key;
    keyIds[role] = minted.record.id;
  }
  return { team, keys, keyIds };
}

/** Run a queued task the way a worker would, up to `running`: returns its execution. */
export async function startExecution(api: Pick<TestApi, 'store' | 'hub'>, teamId: string, taskId: string, workerId = 'w1'): Promise<ExecutionRecord> {
  const now = systemClock.now();
  await api.store.upsertWorker({
    teamId,
    workerId,
    version: 'test',
    backend: 'direct',
    labels: {},
    capacity: 4,
    connected: true,
    draining: false,
    connectedAt: now,
    lastSeenAt: now,
  });
  const offers = await api.store.offerTasks({
    teamId,
    workerId,
    limit: 100,
    now,
    offerDeadline: now + 60_000,
    newExecutionId: () => newId('exe'),
    newOfferId: () => newId('off'),
  });
  const offer = offers.find((o) => o.task.id === taskId);
  if (!offer) throw new Error(`task ${taskId} was not offered`);
  const claim = await api.store.claimOffer({ offerId: offer.execution.offerId, workerId, teamId, now, leaseExpiresAt: now + 60_000 });
  if (!claim.ok) throw new Error(`claim failed: ${claim.reason}`);
  const started = await api.store.markStarted({ executionId: offer.execution.id, epoch: offer.execution.epoch, workerId, now, leaseExpiresAt: now + 60_000 });
  if (started !== 'ok') throw new Error(`markStarted: ${started}`);
  const task = await api.store.getTask(teamId, taskId);
  if (task) api.hub.publishTaskUpdate(task);
  return (await api.store.getExecution(offer.execution.id))!;
}

export interface NewEvent {
  seq: number;
  kind?: EventKind;
  data?: Record<string, unknown>;
}

/** Store events of an execution and publish the new ones, as the worker connection does. */
export async function appendEvents(api: Pick<TestApi, 'store' | 'hub'>, execution: ExecutionRecord, events: NewEvent[]): Promise<EventRecord[]> {
  const records: EventRecord[] = events.map((e) => ({
    taskId: execution.taskId,
    executionId: execution.id,
    ordinal: execution.ordinal,
    seq: e.seq,
    ts: systemClock.now(),
    kind: e.kind ?? 'output',
    data: e.data ?? { stream: 'stdout', text: `line ${execution.ordinal}.${e.seq}\n` },
  }));
  await api.store.appendEvents(
    { executionId: execution.id, taskId: execution.taskId, ordinal: execution.ordinal },
    records.map(({ seq, ts, kind, data }) => ({ seq, ts, kind, data })),
  );
  api.hub.publish(execution.taskId, records);
  return records;
}

/** Finish an execution (and so its task) and publish the task update. */
export async function finishExecution(
  api: Pick<TestApi, 'store' | 'hub'>,
  execution: ExecutionRecord,
  outcome: Outcome,
  extra: { exitCode?: number | null; message?: string | null } = {},
): Promise<TaskRecord> {
  const result = await api.store.finishExecution({
    executionId: execution.id,
    epoch: execution.epoch,
    workerId: execution.workerId,
    outcome,
    exitCode: extra.exitCode ?? (outcome === 'succeeded' ? 0 : outcome === 'failed' ? 1 : null),
    failureReason: outcome === 'failed' ? 'exit_code' : null,
    message: extra.message ?? (outcome === 'failed' ? 'the shell script exited with status 1' : null),
    now: systemClock.now(),
  });
  if (result.result !== 'ok' || !result.ended) throw new Error(`finishExecution: ${result.result}`);
  api.hub.publishTaskUpdate(result.ended.task);
  return result.ended.task;
}
