/**
 * The Store port's conformance suite: every adapter (SQLite now, PostgreSQL later) runs it
 * through `describeStoreConformance`. It speaks only the Store interface — no SQL, no file
 * paths — so it cannot pass by accident on one database.
 *
 * Invariant: each test gets a fresh, migrated, empty store from `open()` and hands it back to
 * `cleanup()`; time is a plain counter the test advances, never the wall clock.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newId } from '../../src/lib/ids.js';
import { ACTIVE_EXECUTION_STATES, TASK_STATES, TERMINAL_TASK_STATES } from '../../src/protocol/lifecycle.js';
import type { Artifacts } from '../../src/protocol/task.js';
import type { ExecutionRecord, NewEnvironment, Store, TaskRecord } from '../../src/server/store/store.js';
import { sampleArtifacts } from '../support/artifacts.js';

/** What a task created without any recipe, budget, model or push settings stores. */
export const NO_TASK_SETTINGS = {
  environmentId: null,
  recipe: { image: null, repositories: [], setupCommands: [], setupTimeoutSeconds: null, secretNames: [], envNames: [], cpus: null, memory: null },
  budget: null,
  model: null,
  push: false,
  pullRequest: null,
};

export interface OpenedStore {
  store: Store;
  cleanup: () => Promise<void>;
}

/** An arbitrary fixed start (2023-11-14): times in the store are whatever the caller says. */
const T0 = 1_700_000_000_000;
const OFFER_TTL = 10_000;
const LEASE_TTL = 30_000;

export function describeStoreConformance(name: string, open: () => Promise<OpenedStore>): void {
  describe(`Store conformance: ${name}`, () => {
    let store: Store;
    let cleanup: () => Promise<void>;
    let now: number;

    beforeEach(async () => {
      ({ store, cleanup } = await open());
      now = T0;
    });
    afterEach(async () => {
      await cleanup();
    });

    // ── fixtures ──

    const tick = (ms = 1): number => (now += ms);

    async function team(name = `team-${newId('team').slice(5, 15)}`) {
      return store.createTeam({ id: newId('team'), name, now: tick() });
    }

    async function task(teamId: string, options: { workerId?: string | null; at?: number; title?: string } = {}): Promise<TaskRecord> {
      return store.createTask({
        id: newId('tsk'),
        teamId,
        title: options.title ?? null,
        prompt: 'echo hello',
        harness: 'shell',
        workerId: options.workerId ?? null,
        timeoutSeconds: null,
        now: options.at ?? tick(),
      });
    }

    async function offer(teamId: string, workerId: string, limit = 1) {
      const at = tick();
      return store.offerTasks({
        teamId,
        workerId,
        limit,
        now: at,
        offerDeadline: at + OFFER_TTL,
        newExecutionId: () => newId('exe'),
        newOfferId: () => newId('off'),
      });
    }

    async function offerOne(teamId: string, workerId: string) {
      const offered = await offer(teamId, workerId, 1);
      expect(offered).toHaveLength(1);
      return offered[0]!;
    }

    async function claim(execution: ExecutionRecord, workerId = execution.workerId) {
      const at = tick();
      return store.claimOffer({ offerId: execution.offerId, workerId, teamId: execution.teamId, now: at, leaseExpiresAt: at + LEASE_TTL });
    }

    async function start(execution: ExecutionRecord, overrides: { epoch?: number; workerId?: string } = {}) {
      const at = tick();
      return store.markStarted({
        executionId: execution.id,
        epoch: overrides.epoch ?? execution.epoch,
        workerId: overrides.workerId ?? execution.workerId,
        now: at,
        leaseExpiresAt: at + LEASE_TTL,
      });
    }

    async function finish(
      execution: ExecutionRecord,
      outcome: 'succeeded' | 'failed' | 'cancelled',
      overrides: { epoch?: number; workerId?: string; exitCode?: number | null; failureReason?: 'exit_code' | 'workspace' | null; message?: string | null } = {},
    ) {
      return store.finishExecution({
        executionId: execution.id,
        epoch: overrides.epoch ?? execution.epoch,
        workerId: overrides.workerId ?? execution.workerId,
        outcome,
        exitCode: overrides.exitCode === undefined ? (outcome === 'succeeded' ? 0 : 1) : overrides.exitCode,
        failureReason: overrides.failureReason === undefined ? (outcome === 'failed' ? 'exit_code' : null) : overrides.failureReason,
        message: overrides.message === undefined ? null : overrides.message,
        now: tick(),
      });
    }

    /** A task with a claimed execution on `workerId` (create it before queueing others the worker may run). */
    async function claimedTask(teamId: string, workerId = 'w1') {
      const created = await task(teamId, { workerId });
      const offered = await offerOne(teamId, workerId);
      expect(offered.task.id, 'fixture: an older queued task was offered instead').toBe(created.id);
      const claimed = await claim(offered.execution);
      if (!claimed.ok) throw new Error(`claim failed: ${claimed.reason}`);
      return claimed;
    }

    /** A task with a running execution on `workerId`. */
    async function runningTask(teamId: string, workerId = 'w1') {
      const claimed = await claimedTask(teamId, workerId);
      expect(await start(claimed.execution)).toBe('ok');
      return { task: (await store.getTask(teamId, claimed.task.id))!, execution: (await store.getExecution(claimed.execution.id))! };
    }

    /**
     * What must hold for every task at rest: at most one active execution, whose state matches
     * the task's; the epoch counts the executions (one per offer); a finished task has none active.
     */
    async function expectConsistent(teamId: string, taskId: string): Promise<void> {
      const t = (await store.getTask(teamId, taskId))!;
      const executions = await store.listExecutions(taskId);
      const active = executions.filter((e) => ACTIVE_EXECUTION_STATES.includes(e.state));
      expect(active.length).toBeLessThanOrEqual(1);
      expect(t.epoch).toBe(executions.length);
      expect(executions.map((e) => e.ordinal)).toEqual(executions.map((_, i) => i + 1));
      const current = active[0];
      if (t.state === 'queued') expect(current).toBeUndefined();
      if (t.state === 'assigned') expect(['offered', 'claimed']).toContain(current?.state);
      if (t.state === 'running') expect(current?.state).toBe('running');
      if (TERMINAL_TASK_STATES.has(t.state)) {
        expect(current).toBeUndefined();
        expect(t.finishedAt).not.toBeNull();
      }
      if (current) expect(current.epoch).toBe(t.epoch);
    }

    // ── the store itself ──

    it('answers ping and migrates again without harm', async () => {
      await store.ping();
      await store.migrate();
      await store.ping();
      expect(['sqlite', 'postgres']).toContain(store.kind);
    });

    it('refuses rows that name a team, task or execution that does not exist, with a NotFoundError naming it', async () => {
      const notFound = (what: string) => ({ code: 'not_found', message: expect.stringContaining(what) });
      await expect(task('team_missing')).rejects.toMatchObject(notFound('team team_missing'));
      await expect(store.insertApiKey({ id: 'key_x', teamId: 'team_missing', role: 'admin', name: null, hash: 'x', createdAt: 1 })).rejects.toMatchObject(
        notFound('team team_missing'),
      );
      await expect(
        store.upsertWorker({ teamId: 'team_missing', workerId: 'w1', version: '1', backend: 'direct', labels: {}, capacity: 1, connected: true, draining: false, connectedAt: 1, lastSeenAt: 1 }),
      ).rejects.toMatchObject(notFound('team team_missing'));
      await expect(store.insertMessage({ id: 'msg_x', taskId: 'tsk_missing', text: 'hi', createdAt: 1 })).rejects.toMatchObject(notFound('task tsk_missing'));
      await expect(store.appendEvents({ executionId: 'exe_missing', taskId: 'tsk_missing', ordinal: 1 }, [{ seq: 1, ts: 1, kind: 'output', data: {} }])).rejects.toMatchObject(
        notFound('execution exe_missing'),
      );
    });

    // ── teams and keys ──

    describe('teams', () => {
      it('creates a team and finds it by id and by name', async () => {
        const created = await store.createTeam({ id: 'team_aaaaaaaaaaaaaaaaaaaa', name: 'platform', now: 123 });
        expect(created).toEqual({ id: 'team_aaaaaaaaaaaaaaaaaaaa', name: 'platform', createdAt: 123 });
        expect(await store.getTeam(created.id)).toEqual(created);
        expect(await store.getTeamByName('platform')).toEqual(created);
        expect(await store.getTeam('team_nope')).toBeUndefined();
        expect(await store.getTeamByName('nope')).toBeUndefined();
      });

      it('refuses a second team with the same name with a ConflictError naming it', async () => {
        await store.createTeam({ id: newId('team'), name: 'platform', now: 1 });
        const again = store.createTeam({ id: newId('team'), name: 'platform', now: 2 });
        await expect(again).rejects.toMatchObject({ code: 'conflict', message: expect.stringContaining('"platform"') });
      });
    });

    describe('API keys', () => {
      it('stores, lists per team and revokes keys; revoking twice keeps the first time', async () => {
        const a = await team();
        const b = await team();
        const key = await store.insertApiKey({ id: 'key_a1', teamId: a.id, role: 'admin', name: 'ci', hash: 'ab'.repeat(32), createdAt: 10 });
        expect(key.revokedAt).toBeNull();
        await store.insertApiKey({ id: 'key_a2', teamId: a.id, role: 'worker', name: null, hash: 'cd'.repeat(32), createdAt: 11 });
        await store.insertApiKey({ id: 'key_b1', teamId: b.id, role: 'member', name: null, hash: 'ef'.repeat(32), createdAt: 12 });

        expect(await store.getApiKey('key_a1')).toEqual(key);
        expect((await store.listApiKeys(a.id)).map((k) => k.id)).toEqual(['key_a1', 'key_a2']);
        expect((await store.listApiKeys(b.id)).map((k) => k.id)).toEqual(['key_b1']);

        expect(await store.revokeApiKey(a.id, 'key_a1', 100)).toBe(true);
        expect(await store.revokeApiKey(a.id, 'key_a1', 200)).toBe(true);
        expect((await store.getApiKey('key_a1'))?.revokedAt).toBe(100);

        expect(await store.revokeApiKey(a.id, 'key_missing', 100)).toBe(false);
        expect(await store.revokeApiKey(a.id, 'key_b1', 100)).toBe(false);
        expect((await store.getApiKey('key_b1'))?.revokedAt).toBeNull();
        expect(await store.getApiKey('key_missing')).toBeUndefined();
      });
    });

    // ── workers ──

    describe('workers', () => {
      it('upserts, lists per team, touches and disconnects workers', async () => {
        const a = await team();
        const b = await team();
        const base = { teamId: a.id, version: '0.1.0', backend: 'docker', capacity: 4, connected: true, draining: false, connectedAt: 5, lastSeenAt: 5 };
        await store.upsertWorker({ ...base, workerId: 'w1', labels: { gpu: 'yes', zone: 'eu' } });
        await store.upsertWorker({ ...base, workerId: 'w2', labels: {} });
        await store.upsertWorker({ ...base, teamId: b.id, workerId: 'w1', labels: {} });
        await store.upsertWorker({ ...base, workerId: 'w1', version: '0.2.0', capacity: 8, labels: { gpu: 'no' }, connectedAt: 7, lastSeenAt: 7 });

        let workers = await store.listWorkers(a.id);
        expect(workers.map((w) => w.workerId)).toEqual(['w1', 'w2']);
        expect(workers[0]).toEqual({ ...base, workerId: 'w1', version: '0.2.0', capacity: 8, labels: { gpu: 'no' }, connectedAt: 7, lastSeenAt: 7 });

        await store.touchWorker(a.id, 'w1', 20, true);
        await store.markWorkerDisconnected(a.id, 'w2', 30);
        workers = await store.listWorkers(a.id);
        expect(workers[0]).toMatchObject({ lastSeenAt: 20, draining: true, connected: true });
        expect(workers[1]).toMatchObject({ connected: false, connectedAt: null, lastSeenAt: 30 });

        await store.markAllWorkersDisconnected(40);
        const all = [...(await store.listWorkers(a.id)), ...(await store.listWorkers(b.id))];
        expect(all.every((w) => !w.connected && w.connectedAt === null)).toBe(true);
        // Nobody saw the workers at server start: their last-seen time stays truthful.
        expect(all.find((w) => w.teamId === a.id && w.workerId === 'w1')?.lastSeenAt).toBe(20);
      });
    });

    // ── tasks ──

    describe('tasks', () => {
      it('creates a queued task and finds it only within its team', async () => {
        const a = await team();
        const b = await team();
        const created = await store.createTask({
          id: newId('tsk'),
          teamId: a.id,
          title: 'fix the build',
          prompt: 'make test',
          harness: 'shell',
          workerId: 'w7',
          timeoutSeconds: 600,
          now: 1000,
        });
        expect(created).toEqual({
          id: created.id,
          teamId: a.id,
          title: 'fix the build',
          state: 'queued',
          prompt: 'make test',
          harness: 'shell',
          workerId: 'w7',
          timeoutSeconds: 600,
          failureReason: null,
          message: null,
          exitCode: null,
          cancelRequested: false,
          epoch: 0,
          createdAt: 1000,
          updatedAt: 1000,
          startedAt: null,
          finishedAt: null,
          ...NO_TASK_SETTINGS,
        });
        expect(await store.getTask(a.id, created.id)).toEqual(created);
        expect(await store.getTask(b.id, created.id)).toBeUndefined();
        expect(await store.getTask(a.id, 'tsk_missing')).toBeUndefined();
        expect(await store.listExecutions(created.id)).toEqual([]);
        expect(await store.getExecution('exe_missing')).toBeUndefined();
      });

      it('counts tasks by state, all six states included', async () => {
        expect(await store.countTasksByState()).toEqual(Object.fromEntries(TASK_STATES.map((s) => [s, 0])));
        const a = await team();
        const r = await runningTask(a.id);
        await finish(r.execution, 'succeeded');
        await claimedTask(a.id);
        await task(a.id);
        await task(a.id);
        expect(await store.countTasksByState()).toEqual({ queued: 2, assigned: 1, running: 0, succeeded: 1, failed: 0, cancelled: 0 });
      });
    });

    describe('listTasks', () => {
      it('walks every page newest first without gaps or duplicates, ties broken by id', async () => {
        const a = await team();
        const other = await team();
        await task(other.id);
        const created: TaskRecord[] = [];
        // 23 tasks over 8 distinct timestamps: pages end in the middle of equal created_at runs.
        for (let i = 0; i < 23; i++) created.push(await task(a.id, { at: T0 + Math.floor(i / 3) }));
        const expected = [...created].sort((x, y) => y.createdAt - x.createdAt || (x.id < y.id ? 1 : -1)).map((t) => t.id);

        const seen: string[] = [];
        let cursor: string | undefined;
        let pages = 0;
        do {
          const page = await store.listTasks(a.id, { limit: 5, ...(cursor ? { cursor } : {}) });
          seen.push(...page.tasks.map((t) => t.id));
          cursor = page.nextCursor ?? undefined;
          pages++;
          expect(pages).toBeLessThan(10);
        } while (cursor);
        expect(seen).toEqual(expected);
        expect(pages).toBe(5);
      });

      it('returns no cursor when the page is the last one, even when exactly full', async () => {
        const a = await team();
        for (let i = 0; i < 4; i++) await task(a.id);
        const first = await store.listTasks(a.id, { limit: 2 });
        expect(first.nextCursor).not.toBeNull();
        const second = await store.listTasks(a.id, { limit: 2, cursor: first.nextCursor! });
        expect(second.tasks).toHaveLength(2);
        expect(second.nextCursor).toBeNull();
        expect((await store.listTasks(a.id, { limit: 10 })).nextCursor).toBeNull();
      });

      it('filters by state, paging within the filter', async () => {
        const a = await team();
        const r = await runningTask(a.id);
        const queued = [await task(a.id), await task(a.id), await task(a.id)];
        const page1 = await store.listTasks(a.id, { state: 'queued', limit: 2 });
        const page2 = await store.listTasks(a.id, { state: 'queued', limit: 2, cursor: page1.nextCursor! });
        expect([...page1.tasks, ...page2.tasks].map((t) => t.id)).toEqual(queued.map((t) => t.id).reverse());
        expect(page2.nextCursor).toBeNull();
        expect((await store.listTasks(a.id, { state: 'running', limit: 10 })).tasks.map((t) => t.id)).toEqual([r.task.id]);
        expect((await store.listTasks(a.id, { state: 'failed', limit: 10 })).tasks).toEqual([]);
      });

      it("filters by worker: the latest execution's worker, or the routing of a task never offered", async () => {
        const a = await team();
        const ranOnW1 = await runningTask(a.id, 'w1');
        const ranOnW2 = await runningTask(a.id, 'w2');
        // Offered to w1 first, expired, then offered to w2: it now belongs to w2.
        const moved = await task(a.id);
        const first = await offerOne(a.id, 'w1');
        expect(first.task.id).toBe(moved.id);
        await store.expireOffers(tick(OFFER_TTL + 1));
        const second = await offerOne(a.id, 'w2');
        expect(second.task.id).toBe(moved.id);
        const routedToW1 = await task(a.id, { workerId: 'w1' });
        await task(a.id); // unrouted, never offered: nobody's

        const ids = async (workerId: string) => (await store.listTasks(a.id, { workerId, limit: 10 })).tasks.map((t) => t.id);
        expect(await ids('w1')).toEqual([routedToW1.id, ranOnW1.task.id]);
        expect(await ids('w2')).toEqual([moved.id, ranOnW2.task.id]);
        expect(await ids('w3')).toEqual([]);
        expect((await store.listTasks(a.id, { workerId: 'w2', state: 'running', limit: 10 })).tasks.map((t) => t.id)).toEqual([ranOnW2.task.id]);
      });

      it('refuses a cursor it did not issue with a ValidationError naming the field', async () => {
        const a = await team();
        for (const cursor of ['garbage', 'e30', Buffer.from('[1,2]').toString('base64url'), '']) {
          await expect(store.listTasks(a.id, { limit: 5, cursor })).rejects.toMatchObject({ code: 'validation', details: { field: 'cursor' } });
        }
        await expect(store.listTasks(a.id, { limit: 0 })).rejects.toMatchObject({ code: 'validation', details: { field: 'limit' } });
      });
    });

    // ── dispatch ──

    describe('offerTasks', () => {
      it('offers the oldest queued tasks the worker may run, each with a new epoch and execution', async () => {
        const a = await team();
        const b = await team();
        const t1 = await task(a.id);
        await task(a.id, { workerId: 'other' });
        const t3 = await task(a.id, { workerId: 'w1' });
        const t4 = await task(a.id);
        await task(b.id);

        const at = tick();
        const offered = await store.offerTasks({
          teamId: a.id,
          workerId: 'w1',
          limit: 2,
          now: at,
          offerDeadline: at + OFFER_TTL,
          newExecutionId: () => newId('exe'),
          newOfferId: () => newId('off'),
        });
        expect(offered.map((o) => o.task.id)).toEqual([t1.id, t3.id]);
        for (const { task: t, execution: e } of offered) {
          expect(t).toMatchObject({ state: 'assigned', epoch: 1, updatedAt: at });
          expect(e).toMatchObject({ taskId: t.id, teamId: a.id, workerId: 'w1', epoch: 1, ordinal: 1, state: 'offered', offerDeadline: at + OFFER_TTL, leaseExpiresAt: null, createdAt: at });
          expect(await store.getTask(a.id, t.id)).toEqual(t);
          expect(await store.getExecution(e.id)).toEqual(e);
          await expectConsistent(a.id, t.id);
        }
        expect(new Set(offered.map((o) => o.execution.offerId)).size).toBe(2);

        expect((await offer(a.id, 'w1', 5)).map((o) => o.task.id)).toEqual([t4.id]);
        expect(await offer(a.id, 'w1', 5)).toEqual([]);
        expect(await offer(a.id, 'w1', 0)).toEqual([]);
      });

      it('never offers the same task twice to concurrent callers (50 tasks, two workers, 40 calls at once)', async () => {
        const a = await team();
        const tasks: TaskRecord[] = [];
        for (let i = 0; i < 50; i++) tasks.push(await task(a.id));
        const at = tick();
        const calls = Array.from({ length: 40 }, (_, i) =>
          store.offerTasks({
            teamId: a.id,
            workerId: i % 2 === 0 ? 'w-even' : 'w-odd',
            limit: 1 + (i % 3),
            now: at,
            offerDeadline: at + OFFER_TTL,
            newExecutionId: () => newId('exe'),
            newOfferId: () => newId('off'),
          }),
        );
        const results = (await Promise.all(calls)).flat();
        const ids = results.map((o) => o.task.id);
        expect(new Set(ids).size).toBe(ids.length);
        expect(new Set(ids)).toEqual(new Set(tasks.map((t) => t.id)));
        for (const t of tasks) {
          const executions = await store.listExecutions(t.id);
          expect(executions).toHaveLength(1);
          await expectConsistent(a.id, t.id);
        }
        expect(await offer(a.id, 'w-even', 10)).toEqual([]);
      });

      it('gives a re-offered task the next epoch and ordinal', async () => {
        const a = await team();
        await task(a.id);
        const first = await offerOne(a.id, 'w1');
        await store.expireOffers(tick(OFFER_TTL));
        const second = await offerOne(a.id, 'w2');
        expect(second.task.epoch).toBe(2);
        expect(second.execution).toMatchObject({ epoch: 2, ordinal: 2, workerId: 'w2' });
        expect(second.execution.id).not.toBe(first.execution.id);
        expect((await store.listExecutions(first.task.id)).map((e) => [e.ordinal, e.state])).toEqual([
          [1, 'expired'],
          [2, 'offered'],
        ]);
        await expectConsistent(a.id, first.task.id);
      });
    });

    describe('claimOffer', () => {
      it('claims an offer before its deadline: the execution gets a lease, the task stays assigned', async () => {
        const a = await team();
        await task(a.id);
        const { execution } = await offerOne(a.id, 'w1');
        const at = tick();
        const result = await store.claimOffer({ offerId: execution.offerId, workerId: 'w1', teamId: a.id, now: at, leaseExpiresAt: at + LEASE_TTL });
        expect(result.ok).toBe(true);
        if (!result.ok) return;
        expect(result.execution).toMatchObject({ id: execution.id, state: 'claimed', leaseExpiresAt: at + LEASE_TTL });
        expect(result.task).toMatchObject({ state: 'assigned', epoch: 1 });
        expect(await store.getExecution(execution.id)).toEqual(result.execution);
        await expectConsistent(a.id, execution.taskId);
      });

      it('answers a repeated claim by the same worker with the same claim, changing nothing', async () => {
        const a = await team();
        await task(a.id);
        const { execution } = await offerOne(a.id, 'w1');
        const first = await claim(execution);
        const again = await claim(execution);
        expect(again).toEqual(first);
      });

      it('refuses claims by another worker, in another team, or of an unknown offer as `unknown`', async () => {
        const a = await team();
        const b = await team();
        await task(a.id);
        const { execution } = await offerOne(a.id, 'w1');
        expect(await claim(execution, 'w2')).toEqual({ ok: false, reason: 'unknown' });
        expect(await store.claimOffer({ offerId: execution.offerId, workerId: 'w1', teamId: b.id, now: tick(), leaseExpiresAt: now + LEASE_TTL })).toEqual({
          ok: false,
          reason: 'unknown',
        });
        expect(await store.claimOffer({ offerId: 'off_missing', workerId: 'w1', teamId: a.id, now: tick(), leaseExpiresAt: now + LEASE_TTL })).toEqual({
          ok: false,
          reason: 'unknown',
        });
        expect((await store.getExecution(execution.id))?.state).toBe('offered');
      });

      it('expires an offer claimed at or after its deadline, and the task is queued again', async () => {
        const a = await team();
        const t = await task(a.id);
        const { execution } = await offerOne(a.id, 'w1');
        const result = await store.claimOffer({ offerId: execution.offerId, workerId: 'w1', teamId: a.id, now: execution.offerDeadline, leaseExpiresAt: execution.offerDeadline + LEASE_TTL });
        expect(result).toEqual({ ok: false, reason: 'expired' });
        expect((await store.getExecution(execution.id))?.state).toBe('expired');
        expect((await store.getTask(a.id, t.id))?.state).toBe('queued');
        await expectConsistent(a.id, t.id);
        // Claiming it again says the same; the task can be offered anew.
        expect(await claim(execution)).toEqual({ ok: false, reason: 'expired' });
        expect((await offerOne(a.id, 'w1')).execution.ordinal).toBe(2);
      });

      it('refuses to claim an offer whose task was cancelled meanwhile', async () => {
        const a = await team();
        const t = await task(a.id);
        const { execution } = await offerOne(a.id, 'w1');
        await store.requestCancel({ teamId: a.id, taskId: t.id, now: tick(), message: 'cancelled by user' });
        expect(await claim(execution)).toEqual({ ok: false, reason: 'cancelled' });
      });
    });

    describe('declineOffer', () => {
      it('expires the offer and queues the task again', async () => {
        const a = await team();
        const t = await task(a.id);
        const { execution } = await offerOne(a.id, 'w1');
        const ended = await store.declineOffer({ offerId: execution.offerId, workerId: 'w1', teamId: a.id, now: tick(), message: 'harness not supported' });
        expect(ended?.execution).toMatchObject({ id: execution.id, state: 'expired', message: 'harness not supported', finishedAt: now });
        expect(ended?.task).toMatchObject({ id: t.id, state: 'queued' });
        expect(await store.getExecution(execution.id)).toEqual(ended?.execution);
        expect(await store.getTask(a.id, t.id)).toEqual(ended?.task);
        expect(await claim(execution)).toEqual({ ok: false, reason: 'expired' });
        await expectConsistent(a.id, t.id);
      });

      it('ignores a decline by another worker, of a claimed offer, or of an unknown one', async () => {
        const a = await team();
        await task(a.id);
        const { execution } = await offerOne(a.id, 'w1');
        expect(await store.declineOffer({ offerId: execution.offerId, workerId: 'w2', teamId: a.id, now: tick(), message: 'no' })).toBeUndefined();
        expect(await store.declineOffer({ offerId: 'off_missing', workerId: 'w1', teamId: a.id, now: tick(), message: 'no' })).toBeUndefined();
        await claim(execution);
        expect(await store.declineOffer({ offerId: execution.offerId, workerId: 'w1', teamId: a.id, now: tick(), message: 'no' })).toBeUndefined();
        expect((await store.getExecution(execution.id))?.state).toBe('claimed');
      });
    });

    describe('expireOffers', () => {
      it('expires exactly the offers past their deadline and returns them', async () => {
        const a = await team();
        await task(a.id);
        const early = await offerOne(a.id, 'w1');
        tick(5_000);
        await task(a.id);
        const late = await offerOne(a.id, 'w1');
        await task(a.id);
        const claimed = await offerOne(a.id, 'w1');
        await claim(claimed.execution);

        expect(await store.expireOffers(early.execution.offerDeadline - 1)).toEqual([]);
        const ended = await store.expireOffers(early.execution.offerDeadline);
        expect(ended.map((e) => e.execution.id)).toEqual([early.execution.id]);
        expect(ended[0]).toMatchObject({ execution: { state: 'expired' }, task: { state: 'queued' } });
        expect((await store.getExecution(late.execution.id))?.state).toBe('offered');
        expect((await store.getExecution(claimed.execution.id))?.state).toBe('claimed');
        expect(await store.expireOffers(early.execution.offerDeadline)).toEqual([]);
        for (const o of [early, late, claimed]) await expectConsistent(a.id, o.task.id);
      });

      it('expires the offers of one worker that hung up, and only those', async () => {
        const a = await team();
        await task(a.id);
        await task(a.id);
        const [o1, o2] = await offer(a.id, 'w1', 2);
        await task(a.id);
        const other = await offerOne(a.id, 'w2');
        await claim(o2!.execution);
        const ended = await store.expireOffersOfWorker(a.id, 'w1', tick());
        expect(ended.map((e) => e.execution.id)).toEqual([o1!.execution.id]);
        expect((await store.getTask(a.id, o1!.task.id))?.state).toBe('queued');
        expect((await store.getExecution(o2!.execution.id))?.state).toBe('claimed');
        expect((await store.getExecution(other.execution.id))?.state).toBe('offered');
        expect(await store.expireOffersOfWorker(a.id, 'w9', tick())).toEqual([]);
      });
    });

    describe('markStarted', () => {
      it('moves a claimed execution and its task to running and renews the lease; a repeat is a duplicate', async () => {
        const a = await team();
        const { execution, task: t } = await claimedTask(a.id);
        const at = tick();
        expect(await store.markStarted({ executionId: execution.id, epoch: 1, workerId: 'w1', now: at, leaseExpiresAt: at + 99 })).toBe('ok');
        expect(await store.getExecution(execution.id)).toMatchObject({ state: 'running', startedAt: at, leaseExpiresAt: at + 99 });
        expect(await store.getTask(a.id, t.id)).toMatchObject({ state: 'running', startedAt: at, updatedAt: at });
        expect(await start(execution)).toBe('duplicate');
        expect((await store.getExecution(execution.id))?.leaseExpiresAt).toBe(at + 99);
        await expectConsistent(a.id, t.id);
      });

      it('fences: stale epoch, another worker, an unclaimed offer, an ended or unknown execution are lease_lost', async () => {
        const a = await team();
        const { execution } = await claimedTask(a.id);
        expect(await start(execution, { epoch: 2 })).toBe('lease_lost');
        expect(await start(execution, { epoch: 0 })).toBe('lease_lost');
        expect(await start(execution, { workerId: 'w2' })).toBe('lease_lost');
        expect(await start({ ...execution, id: 'exe_missing' })).toBe('lease_lost');
        expect((await store.getExecution(execution.id))?.state).toBe('claimed');

        await task(a.id);
        const offered = await offerOne(a.id, 'w1');
        expect(await start(offered.execution)).toBe('lease_lost');

        expect((await finish(execution, 'failed')).result).toBe('ok');
        expect(await start(execution)).toBe('lease_lost');
      });
    });

    describe('finishExecution', () => {
      it('ends a running execution and its task with the outcome, copying exit code, reason and message', async () => {
        const a = await team();
        const r = await runningTask(a.id);
        const result = await finish(r.execution, 'failed', { exitCode: 2, failureReason: 'exit_code', message: 'the harness exited with status 2' });
        expect(result.result).toBe('ok');
        const fields = { failureReason: 'exit_code', message: 'the harness exited with status 2', exitCode: 2, finishedAt: now };
        expect(result.ended?.execution).toMatchObject({ state: 'failed', ...fields });
        expect(result.ended?.task).toMatchObject({ state: 'failed', ...fields, updatedAt: now });
        expect(await store.getExecution(r.execution.id)).toEqual(result.ended?.execution);
        expect(await store.getTask(a.id, r.task.id)).toEqual(result.ended?.task);
        await expectConsistent(a.id, r.task.id);
      });

      it('ends a claimed execution that never started (the task environment could not be built)', async () => {
        const a = await team();
        const c = await claimedTask(a.id);
        const result = await finish(c.execution, 'failed', { failureReason: 'workspace', exitCode: null, message: 'clone failed' });
        expect(result.result).toBe('ok');
        expect(await store.getTask(a.id, c.task.id)).toMatchObject({ state: 'failed', failureReason: 'workspace', startedAt: null });
        await expectConsistent(a.id, c.task.id);
      });

      it('records success', async () => {
        const a = await team();
        const r = await runningTask(a.id);
        expect((await finish(r.execution, 'succeeded')).result).toBe('ok');
        expect(await store.getTask(a.id, r.task.id)).toMatchObject({ state: 'succeeded', exitCode: 0, failureReason: null });
      });

      it('answers the same finish again with duplicate and changes nothing', async () => {
        const a = await team();
        const r = await runningTask(a.id);
        await finish(r.execution, 'failed', { exitCode: 3, message: 'first' });
        const taskBefore = await store.getTask(a.id, r.task.id);
        const executionBefore = await store.getExecution(r.execution.id);
        const again = await finish(r.execution, 'failed', { exitCode: 3, message: 'first (replayed)' });
        expect(again).toEqual({ result: 'duplicate' });
        expect(await store.getTask(a.id, r.task.id)).toEqual(taskBefore);
        expect(await store.getExecution(r.execution.id)).toEqual(executionBefore);
      });

      it('answers a different finish of an ended execution with lease_lost', async () => {
        const a = await team();
        const r = await runningTask(a.id);
        await finish(r.execution, 'succeeded');
        expect((await finish(r.execution, 'failed')).result).toBe('lease_lost');
        expect((await store.getTask(a.id, r.task.id))?.state).toBe('succeeded');
      });

      it('fences a stale worker: after its lease expired and the task moved on, its finish is lease_lost', async () => {
        const a = await team();
        const t = await task(a.id);
        const first = await offerOne(a.id, 'w1');
        // w1 never claims; the task goes to w2, which runs it.
        await store.expireOffers(tick(OFFER_TTL));
        const second = await offerOne(a.id, 'w2');
        await claim(second.execution);
        await start(second.execution);
        expect((await finish(first.execution, 'succeeded')).result).toBe('lease_lost');
        expect((await finish(second.execution, 'succeeded', { epoch: 1 })).result).toBe('lease_lost');
        expect((await finish(second.execution, 'succeeded', { workerId: 'w1' })).result).toBe('lease_lost');
        expect((await finish({ ...second.execution, id: 'exe_missing' }, 'succeeded')).result).toBe('lease_lost');
        expect((await store.getTask(a.id, t.id))?.state).toBe('running');
        expect((await finish(second.execution, 'succeeded')).result).toBe('ok');
        await expectConsistent(a.id, t.id);
      });

      it('refuses to finish an offer that was never claimed', async () => {
        const a = await team();
        await task(a.id);
        const o = await offerOne(a.id, 'w1');
        expect((await finish(o.execution, 'succeeded')).result).toBe('lease_lost');
        expect((await store.getExecution(o.execution.id))?.state).toBe('offered');
      });
    });

    describe('renewLeases', () => {
      it('renews the leases the worker holds at their epoch and reports the others lost', async () => {
        const a = await team();
        const running = await runningTask(a.id, 'w1');
        const claimed = await claimedTask(a.id, 'w1');
        const finished = await runningTask(a.id, 'w1');
        await finish(finished.execution, 'succeeded');
        const elsewhere = await runningTask(a.id, 'w2');

        const at = tick();
        const result = await store.renewLeases({
          teamId: a.id,
          workerId: 'w1',
          now: at,
          leaseExpiresAt: at + 777,
          leases: [
            { executionId: running.execution.id, epoch: 1 },
            { executionId: claimed.execution.id, epoch: 1 },
            { executionId: finished.execution.id, epoch: 1 },
            { executionId: elsewhere.execution.id, epoch: 1 },
            { executionId: 'exe_missing', epoch: 1 },
          ],
        });
        expect(result.renewed).toEqual([running.execution.id, claimed.execution.id]);
        expect(result.lost).toEqual([finished.execution.id, elsewhere.execution.id, 'exe_missing']);
        expect((await store.getExecution(running.execution.id))?.leaseExpiresAt).toBe(at + 777);
        expect((await store.getExecution(claimed.execution.id))?.leaseExpiresAt).toBe(at + 777);
        expect((await store.getExecution(elsewhere.execution.id))?.leaseExpiresAt).not.toBe(at + 777);

        const stale = await store.renewLeases({ teamId: a.id, workerId: 'w1', now: at, leaseExpiresAt: at + 1, leases: [{ executionId: running.execution.id, epoch: 2 }] });
        expect(stale).toEqual({ renewed: [], lost: [running.execution.id] });
        expect(await store.renewLeases({ teamId: a.id, workerId: 'w1', now: at, leaseExpiresAt: at + 1, leases: [] })).toEqual({ renewed: [], lost: [] });
      });
    });

    describe('expireLeases', () => {
      it('fails executions whose lease ran out with worker_lost, and leaves live ones alone', async () => {
        const a = await team();
        const dead = await runningTask(a.id, 'w1');
        const deadClaim = await claimedTask(a.id, 'w1');
        tick(LEASE_TTL / 2);
        const alive = await runningTask(a.id, 'w2');
        await task(a.id);
        const offered = await offerOne(a.id, 'w2');

        const expiry = Math.max(dead.execution.leaseExpiresAt!, deadClaim.execution.leaseExpiresAt!);
        const ended = await store.expireLeases(expiry, (e) => `worker ${e.workerId} stopped renewing the lease of ${e.id}`);
        expect(ended.map((e) => e.execution.id).sort()).toEqual([dead.execution.id, deadClaim.execution.id].sort());
        for (const e of ended) {
          expect(e.execution).toMatchObject({ state: 'failed', failureReason: 'worker_lost', message: `worker w1 stopped renewing the lease of ${e.execution.id}`, finishedAt: expiry });
          expect(e.task).toMatchObject({ state: 'failed', failureReason: 'worker_lost', finishedAt: expiry });
          expect(await store.getTask(a.id, e.task.id)).toEqual(e.task);
          await expectConsistent(a.id, e.task.id);
        }
        expect((await store.getExecution(alive.execution.id))?.state).toBe('running');
        expect((await store.getExecution(offered.execution.id))?.state).toBe('offered');
        expect(await store.expireLeases(expiry, () => 'again')).toEqual([]);
        // The lost worker's late report is fenced off.
        expect((await finish(dead.execution, 'succeeded')).result).toBe('lease_lost');
      });

      it('records a task whose cancel was pending as cancelled', async () => {
        const a = await team();
        const r = await runningTask(a.id);
        await store.requestCancel({ teamId: a.id, taskId: r.task.id, now: tick(), message: 'stop' });
        const [ended] = await store.expireLeases(r.execution.leaseExpiresAt!, () => 'worker lost during cancellation');
        expect(ended?.execution.state).toBe('cancelled');
        expect(ended?.task).toMatchObject({ state: 'cancelled', cancelRequested: true });
        await expectConsistent(a.id, r.task.id);
      });
    });

    describe('reconcileWorker', () => {
      it('keeps what both sides know, abandons what the server does not, ends what the worker forgot', async () => {
        const a = await team();
        const kept = await runningTask(a.id, 'w1');
        const keptClaim = await claimedTask(a.id, 'w1');
        const forgotten = await runningTask(a.id, 'w1');
        const finished = await runningTask(a.id, 'w1');
        await finish(finished.execution, 'succeeded');
        await task(a.id, { workerId: 'w1' });
        const pendingOffer = await offerOne(a.id, 'w1');
        const otherWorker = await runningTask(a.id, 'w2');

        const at = tick();
        const result = await store.reconcileWorker({
          teamId: a.id,
          workerId: 'w1',
          now: at,
          leaseExpiresAt: at + 555,
          lostMessage: 'worker w1 restarted without this execution',
          running: [
            { executionId: kept.execution.id, epoch: 1 },
            { executionId: keptClaim.execution.id, epoch: 1 },
            { executionId: finished.execution.id, epoch: 1 },
            { executionId: otherWorker.execution.id, epoch: 1 },
            { executionId: 'exe_unknown', epoch: 4 },
          ],
        });
        expect(result.keep.sort()).toEqual([kept.execution.id, keptClaim.execution.id].sort());
        expect(result.abandon.sort()).toEqual([finished.execution.id, otherWorker.execution.id, 'exe_unknown'].sort());
        const ended = new Map(result.ended.map((e) => [e.execution.id, e]));
        expect([...ended.keys()].sort()).toEqual([forgotten.execution.id, pendingOffer.execution.id].sort());
        expect(ended.get(forgotten.execution.id)).toMatchObject({
          execution: { state: 'failed', failureReason: 'worker_lost', message: 'worker w1 restarted without this execution' },
          task: { state: 'failed', failureReason: 'worker_lost' },
        });
        expect(ended.get(pendingOffer.execution.id)).toMatchObject({ execution: { state: 'expired' }, task: { state: 'queued' } });

        expect((await store.getExecution(kept.execution.id))?.leaseExpiresAt).toBe(at + 555);
        expect((await store.getExecution(keptClaim.execution.id))?.leaseExpiresAt).toBe(at + 555);
        expect((await store.getExecution(otherWorker.execution.id))?.state).toBe('running');
        for (const t of [kept, keptClaim, forgotten, pendingOffer, otherWorker]) await expectConsistent(a.id, t.task.id);
      });

      it('with an empty inventory ends every active execution of the worker', async () => {
        const a = await team();
        const r = await runningTask(a.id, 'w1');
        const result = await store.reconcileWorker({ teamId: a.id, workerId: 'w1', running: [], now: tick(), leaseExpiresAt: now + 1, lostMessage: 'gone' });
        expect(result.keep).toEqual([]);
        expect(result.abandon).toEqual([]);
        expect(result.ended.map((e) => e.execution.id)).toEqual([r.execution.id]);
      });
    });

    describe('requestCancel', () => {
      it('cancels a queued task at once', async () => {
        const a = await team();
        const t = await task(a.id);
        const at = tick();
        const result = await store.requestCancel({ teamId: a.id, taskId: t.id, now: at, message: 'cancelled by alice' });
        expect(result).toEqual({ task: { ...t, state: 'cancelled', cancelRequested: true, message: 'cancelled by alice', finishedAt: at, updatedAt: at }, execution: null });
        expect(await store.getTask(a.id, t.id)).toEqual(result?.task);
        expect(await offer(a.id, 'w1', 5)).toEqual([]);
        await expectConsistent(a.id, t.id);
      });

      it('cancels an offered task at once, its execution too', async () => {
        const a = await team();
        const t = await task(a.id);
        const o = await offerOne(a.id, 'w1');
        const result = await store.requestCancel({ teamId: a.id, taskId: t.id, now: tick(), message: 'cancelled' });
        expect(result?.task.state).toBe('cancelled');
        expect(result?.execution).toBeNull();
        expect((await store.getExecution(o.execution.id))?.state).toBe('cancelled');
        expect(await store.pendingCancels(a.id, 'w1')).toEqual([]);
        await expectConsistent(a.id, t.id);
      });

      it.each(['claimed', 'running'] as const)('flags a %s task and returns its execution; the failure that follows records it cancelled', async (state) => {
        const a = await team();
        const { task: t, execution } = state === 'claimed' ? await claimedTask(a.id) : await runningTask(a.id);
        const result = await store.requestCancel({ teamId: a.id, taskId: t.id, now: tick(), message: 'cancelled' });
        expect(result?.task).toMatchObject({ state: state === 'claimed' ? 'assigned' : 'running', cancelRequested: true });
        expect(result?.execution).toMatchObject({ id: execution.id, state });
        expect((await store.getTask(a.id, t.id))?.cancelRequested).toBe(true);
        // Asking again tells the worker again.
        expect((await store.requestCancel({ teamId: a.id, taskId: t.id, now: tick(), message: 'again' }))?.execution?.id).toBe(execution.id);
        expect((await store.pendingCancels(a.id, 'w1')).map((e) => e.id)).toEqual([execution.id]);

        const done = await finish(execution, 'failed', { exitCode: 143, message: 'terminated by SIGTERM' });
        expect(done.result).toBe('ok');
        expect(done.ended?.execution.state).toBe('cancelled');
        expect(done.ended?.task).toMatchObject({ state: 'cancelled', exitCode: 143, message: 'terminated by SIGTERM' });
        expect(await finish(execution, 'failed', { exitCode: 143 })).toEqual({ result: 'duplicate' });
        expect(await store.pendingCancels(a.id, 'w1')).toEqual([]);
        await expectConsistent(a.id, t.id);
      });

      it('lets a task that succeeded before the cancel took effect stay succeeded', async () => {
        const a = await team();
        const r = await runningTask(a.id);
        await store.requestCancel({ teamId: a.id, taskId: r.task.id, now: tick(), message: 'cancelled' });
        expect((await finish(r.execution, 'succeeded')).ended?.task.state).toBe('succeeded');
      });

      it('changes nothing on a finished task, and finds no task of another team', async () => {
        const a = await team();
        const b = await team();
        const r = await runningTask(a.id);
        await finish(r.execution, 'succeeded');
        const before = await store.getTask(a.id, r.task.id);
        expect(await store.requestCancel({ teamId: a.id, taskId: r.task.id, now: tick(), message: 'too late' })).toEqual({ task: before, execution: null });
        expect(await store.getTask(a.id, r.task.id)).toEqual(before);
        expect(await store.requestCancel({ teamId: b.id, taskId: r.task.id, now: tick(), message: 'x' })).toBeUndefined();
        expect(await store.requestCancel({ teamId: a.id, taskId: 'tsk_missing', now: tick(), message: 'x' })).toBeUndefined();
      });

      it('lists pending cancels per worker, active executions only', async () => {
        const a = await team();
        const mine = await runningTask(a.id, 'w1');
        const notCancelled = await runningTask(a.id, 'w1');
        const theirs = await runningTask(a.id, 'w2');
        for (const r of [mine, theirs]) await store.requestCancel({ teamId: a.id, taskId: r.task.id, now: tick(), message: 'cancelled' });
        expect((await store.pendingCancels(a.id, 'w1')).map((e) => e.id)).toEqual([mine.execution.id]);
        expect((await store.pendingCancels(a.id, 'w2')).map((e) => e.id)).toEqual([theirs.execution.id]);
        expect(notCancelled.task.cancelRequested).toBe(false);
      });
    });

    // ── transcripts ──

    describe('events', () => {
      it('appends idempotently on (execution, seq) and counts only new events', async () => {
        const a = await team();
        const r = await runningTask(a.id);
        const ref = { executionId: r.execution.id, taskId: r.task.id, ordinal: 1 };
        const ev = (seq: number) => ({ seq, ts: T0 + seq, kind: 'output' as const, data: { text: `line ${seq}`, nested: { ok: true } } });
        expect(await store.appendEvents(ref, [ev(1), ev(2), ev(3)])).toBe(3);
        expect(await store.appendEvents(ref, [ev(1), ev(2), ev(3)])).toBe(0);
        expect(await store.appendEvents(ref, [ev(3), ev(4), ev(4)])).toBe(1);
        expect(await store.appendEvents(ref, [])).toBe(0);
        const events = await store.listEvents(r.task.id, null, 100);
        expect(events).toEqual([1, 2, 3, 4].map((seq) => ({ ...ev(seq), taskId: r.task.id, executionId: r.execution.id, ordinal: 1 })));
      });

      it('stores a batch of 500 in one call, and larger batches too', async () => {
        const a = await team();
        const r = await runningTask(a.id);
        const ref = { executionId: r.execution.id, taskId: r.task.id, ordinal: 1 };
        const batch = (from: number, n: number) => Array.from({ length: n }, (_, i) => ({ seq: from + i, ts: T0, kind: 'output' as const, data: { i: from + i } }));
        expect(await store.appendEvents(ref, batch(1, 500))).toBe(500);
        expect(await store.appendEvents(ref, batch(251, 2500))).toBe(2250);
        const all = await store.listEvents(r.task.id, null, 10_000);
        expect(all).toHaveLength(2750);
        expect(all.map((e) => e.seq)).toEqual(Array.from({ length: 2750 }, (_, i) => i + 1));
      });

      it('lists a task’s events in seq order after a position, at most `limit`, and only that task’s', async () => {
        const a = await team();
        const r = await runningTask(a.id);
        const other = await runningTask(a.id);
        await store.appendEvents({ executionId: r.execution.id, taskId: r.task.id, ordinal: 1 }, [3, 1, 2].map((seq) => ({ seq, ts: 1, kind: 'status' as const, data: {} })));
        await store.appendEvents({ executionId: other.execution.id, taskId: other.task.id, ordinal: 1 }, [{ seq: 1, ts: 1, kind: 'output', data: {} }]);

        expect((await store.listEvents(r.task.id, null, 100)).map((e) => e.seq)).toEqual([1, 2, 3]);
        expect((await store.listEvents(r.task.id, { ordinal: 1, seq: 1 }, 1)).map((e) => e.seq)).toEqual([2]);
        expect(await store.listEvents(r.task.id, { ordinal: 1, seq: 3 }, 100)).toEqual([]);
        expect((await store.listEvents(other.task.id, null, 100)).map((e) => e.executionId)).toEqual([other.execution.id]);
      });

      it('orders events of a re-offered task by execution ordinal first', async () => {
        const a = await team();
        const t = await task(a.id);
        const first = await offerOne(a.id, 'w1');
        await store.expireOffers(tick(OFFER_TTL));
        const second = await offerOne(a.id, 'w1');
        await store.appendEvents({ executionId: second.execution.id, taskId: t.id, ordinal: 2 }, [{ seq: 1, ts: 5, kind: 'output', data: { n: 'b1' } }]);
        await store.appendEvents({ executionId: first.execution.id, taskId: t.id, ordinal: 1 }, [
          { seq: 1, ts: 9, kind: 'output', data: { n: 'a1' } },
          { seq: 2, ts: 9, kind: 'output', data: { n: 'a2' } },
        ]);
        expect((await store.listEvents(t.id, null, 10)).map((e) => e.data.n)).toEqual(['a1', 'a2', 'b1']);
        expect((await store.listEvents(t.id, { ordinal: 1, seq: 2 }, 10)).map((e) => e.data.n)).toEqual(['b1']);
      });
    });

    describe('messages and audit', () => {
      it('stores follow-up messages per task in order', async () => {
        const a = await team();
        const t = await task(a.id);
        const u = await task(a.id);
        await store.insertMessage({ id: 'msg_2', taskId: t.id, text: 'second', createdAt: 20 });
        await store.insertMessage({ id: 'msg_1', taskId: t.id, text: 'first', createdAt: 10 });
        await store.insertMessage({ id: 'msg_3', taskId: u.id, text: 'other', createdAt: 15 });
        expect(await store.listMessages(t.id)).toEqual([
          { id: 'msg_1', taskId: t.id, text: 'first', createdAt: 10 },
          { id: 'msg_2', taskId: t.id, text: 'second', createdAt: 20 },
        ]);
      });

      it('appends audit entries and lists a team’s newest first', async () => {
        const a = await team();
        const b = await team();
        await store.appendAudit({ teamId: a.id, actor: 'key:key_1', action: 'task.create', target: 'tsk_1', detail: { prompt_bytes: 10 }, at: 1 });
        await store.appendAudit({ teamId: b.id, actor: 'key:key_2', action: 'task.create', target: null, detail: {}, at: 2 });
        await store.appendAudit({ teamId: a.id, actor: 'admin-cli', action: 'key.revoke', target: 'key_1', detail: { reason: 'leaked', n: [1, 2] }, at: 3 });
        await store.appendAudit({ teamId: null, actor: 'system', action: 'server.start', target: null, detail: {}, at: 4 });
        const entries = await store.listAudit(a.id, 10);
        expect(entries.map((e) => ({ ...e, id: typeof e.id }))).toEqual([
          { id: 'number', teamId: a.id, actor: 'admin-cli', action: 'key.revoke', target: 'key_1', detail: { reason: 'leaked', n: [1, 2] }, at: 3 },
          { id: 'number', teamId: a.id, actor: 'key:key_1', action: 'task.create', target: 'tsk_1', detail: { prompt_bytes: 10 }, at: 1 },
        ]);
        expect(entries[0]!.id).toBeGreaterThan(entries[1]!.id);
        expect(await store.listAudit(a.id, 1)).toHaveLength(1);
      });
    });

    // ── a whole life, and a lifecycle that never breaks ──

    it('runs many tasks through random interleavings and every task stays consistent', async () => {
      const a = await team();
      const tasks: TaskRecord[] = [];
      for (let i = 0; i < 12; i++) tasks.push(await task(a.id));
      // A deterministic pseudo-random walk (LCG): offers, claims, starts, finishes, cancels, expiries.
      let seed = 42;
      const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
      for (let step = 0; step < 150; step++) {
        const worker = `w${rand(3)}`;
        const t = tasks[rand(tasks.length)]!;
        const executions = await store.listExecutions(t.id);
        const current = executions[executions.length - 1];
        switch (rand(7)) {
          case 0:
            await offer(a.id, worker, 1 + rand(3));
            break;
          case 1:
            if (current) await claim(current, rand(4) === 0 ? 'intruder' : current.workerId);
            break;
          case 2:
            if (current) await start(current, rand(4) === 0 ? { epoch: current.epoch + 1 } : {});
            break;
          case 3:
            if (current) await finish(current, (['succeeded', 'failed', 'cancelled'] as const)[rand(3)]!);
            break;
          case 4:
            await store.requestCancel({ teamId: a.id, taskId: t.id, now: tick(), message: 'cancelled' });
            break;
          case 5:
            await store.expireOffers(tick(rand(2) * OFFER_TTL));
            break;
          case 6:
            await store.expireLeases(tick(rand(2) * LEASE_TTL), () => 'lost');
            break;
        }
        await expectConsistent(a.id, t.id);
      }
      for (const t of tasks) await expectConsistent(a.id, t.id);
    });

    // ── environments ──

    describe('task recipes, artifacts and usage (migration 0003)', () => {
      const recipe = {
        image: 'ghcr.io/acme/dev:1',
        repositories: [{ url: 'https://git.example.com/acme/api.git', ref: 'main' }, { url: '/srv/repos/tools' }],
        setupCommands: ['npm ci', "echo 'quoted' && true"],
        setupTimeoutSeconds: 600,
        secretNames: ['GH_TOKEN'],
        envNames: ['CI'],
        cpus: 1.5,
        memory: '3g',
      };

      function artifacts(summary: string): Artifacts {
        const pullRequest = 'https://git.example.com/acme/api/pull/7';
        return sampleArtifacts({ summary, stop_reason: 'max_turns' }, 'diff --git a/x b/x\n+ünïcode "quotes" \\ backslash\n', {
          diffstat: { files_changed: 1, insertions: 2, deletions: 0 },
          diff_bytes: 48,
          pushed: true,
          pull_request_url: pullRequest,
        });
      }

      it('stores the resolved recipe, budget, model, push and pull request, and hands them to the offer', async () => {
        const a = await team();
        const created = await store.createTask({
          id: newId('tsk'),
          teamId: a.id,
          title: null,
          prompt: 'fix it',
          harness: 'builtin',
          workerId: null,
          timeoutSeconds: null,
          now: tick(),
          environmentId: 'env_aaaaaaaaaaaaaaaaaaaa',
          recipe,
          budget: { max_turns: 20, max_tokens: 100_000 },
          model: 'big-model',
          push: true,
          pullRequest: { base: 'main', title: 'Fix it', draft: true },
        });
        const expected = {
          environmentId: 'env_aaaaaaaaaaaaaaaaaaaa',
          recipe,
          budget: { max_turns: 20, max_tokens: 100_000 },
          model: 'big-model',
          push: true,
          pullRequest: { base: 'main', title: 'Fix it', draft: true },
        };
        expect(created).toMatchObject(expected);
        expect(await store.getTask(a.id, created.id)).toEqual(created);
        expect((await store.listTasks(a.id, { limit: 10 })).tasks[0]).toEqual(created);
        const offered = await offerOne(a.id, 'w1');
        expect(offered.task).toMatchObject(expected);
        expect(offered.execution).toMatchObject({ artifacts: null, usage: { input_tokens: 0, output_tokens: 0, requests: 0 } });
      });

      it('gives a task created without them an empty recipe, no budget, no model, push off', async () => {
        const a = await team();
        const t = await task(a.id);
        const none = NO_TASK_SETTINGS;
        expect(t).toMatchObject(none);
        expect(await store.getTask(a.id, t.id)).toMatchObject(none);
      });

      it('keeps a task size on its own (migration 0005): fractional CPUs exactly, memory as written, bytes as a number', async () => {
        const a = await team();
        const empty = { image: null, repositories: [], setupCommands: [], setupTimeoutSeconds: null, secretNames: [], envNames: [] };
        const sizes = [
          { cpus: 0.1, memory: null },
          { cpus: null, memory: 2_147_483_648 },
          { cpus: 256, memory: '1.5G' },
        ];
        for (const size of sizes) {
          const created = await store.createTask({ id: newId('tsk'), teamId: a.id, title: null, prompt: 'p', harness: 'shell', workerId: null, timeoutSeconds: null, now: tick(), recipe: { ...empty, ...size } });
          expect((await store.getTask(a.id, created.id))?.recipe).toEqual({ ...empty, ...size });
        }
        const offered = await store.offerTasks({ teamId: a.id, workerId: 'w1', limit: 10, now: tick(), offerDeadline: now + OFFER_TTL, newExecutionId: () => newId('exe'), newOfferId: () => newId('off') });
        expect(offered.map((o) => ({ cpus: o.task.recipe.cpus, memory: o.task.recipe.memory }))).toEqual(sizes);
      });

      it('records artifacts and usage with the finish; a replayed finish changes nothing', async () => {
        const a = await team();
        const r = await runningTask(a.id);
        const usage = { input_tokens: 1200, output_tokens: 340, requests: 5 };
        const result = await store.finishExecution({
          executionId: r.execution.id,
          epoch: r.execution.epoch,
          workerId: 'w1',
          outcome: 'succeeded',
          exitCode: 0,
          failureReason: null,
          message: null,
          now: tick(),
          artifacts: artifacts('first'),
          usage,
        });
        expect(result.result).toBe('ok');
        expect(result.ended?.execution).toMatchObject({ artifacts: artifacts('first'), usage });
        const stored = await store.getExecution(r.execution.id);
        expect(stored).toEqual(result.ended?.execution);
        // The outbox replays the same message (here with different results, which must not win).
        const again = await store.finishExecution({
          executionId: r.execution.id,
          epoch: r.execution.epoch,
          workerId: 'w1',
          outcome: 'succeeded',
          exitCode: 0,
          failureReason: null,
          message: null,
          now: tick(),
          artifacts: artifacts('replayed'),
          usage: { input_tokens: 1, output_tokens: 1, requests: 1 },
        });
        expect(again).toEqual({ result: 'duplicate' });
        expect(await store.getExecution(r.execution.id)).toEqual(stored);
        expect(await store.listExecutions(r.task.id)).toEqual([stored]);
      });

      it('fences results too: a stale epoch or another worker records nothing', async () => {
        const a = await team();
        const r = await runningTask(a.id);
        for (const fence of [{ epoch: r.execution.epoch + 1, workerId: 'w1' }, { epoch: r.execution.epoch, workerId: 'w2' }]) {
          const result = await store.finishExecution({
            executionId: r.execution.id,
            ...fence,
            outcome: 'succeeded',
            exitCode: 0,
            failureReason: null,
            message: null,
            now: tick(),
            artifacts: artifacts('stale'),
            usage: { input_tokens: 9, output_tokens: 9, requests: 9 },
          });
          expect(result.result).toBe('lease_lost');
        }
        expect(await store.getExecution(r.execution.id)).toMatchObject({ state: 'running', artifacts: null, usage: { input_tokens: 0, output_tokens: 0, requests: 0 } });
      });

      it('records usage without artifacts, and keeps both empty for executions ended by the sweepers', async () => {
        const a = await team();
        const r = await runningTask(a.id);
        const usage = { input_tokens: 10, output_tokens: 20, requests: 1 };
        await store.finishExecution({ executionId: r.execution.id, epoch: r.execution.epoch, workerId: 'w1', outcome: 'failed', exitCode: 1, failureReason: 'exit_code', message: null, now: tick(), usage });
        expect(await store.getExecution(r.execution.id)).toMatchObject({ artifacts: null, usage });
        const lost = await runningTask(a.id, 'w2');
        const ended = await store.expireLeases(tick(LEASE_TTL * 2), () => 'gone');
        expect(ended.map((e) => e.execution.id)).toEqual([lost.execution.id]);
        expect(await store.getExecution(lost.execution.id)).toMatchObject({ state: 'failed', artifacts: null, usage: { input_tokens: 0, output_tokens: 0, requests: 0 } });
      });
    });

    describe('environments', () => {
      function environment(teamId: string, name: string, overrides: Partial<NewEnvironment> = {}): NewEnvironment {
        return {
          id: newId('env'),
          teamId,
          name,
          image: null,
          repositories: [],
          setupCommands: [],
          setupTimeoutSeconds: null,
          secretNames: [],
          envNames: [],
          cpus: null,
          memory: null,
          now: tick(),
          ...overrides,
        };
      }

      it('creates, gets and lists (by name), with every field round-tripped', async () => {
        const t = await team();
        const full = environment(t.id, 'web', {
          image: 'ghcr.io/acme/web:1',
          repositories: [{ url: 'https://github.com/acme/web.git', ref: 'main' }, { url: '/srv/mirror' }],
          setupCommands: ['npm ci', 'echo "quoted" \\ and ünïcode'],
          setupTimeoutSeconds: 600,
          secretNames: ['GITHUB_TOKEN'],
          envNames: ['CI', 'NODE_ENV'],
          // More significant digits than a 4-byte float keeps: the column must give it back exactly.
          cpus: 1.23456789,
          memory: '1.5g',
        });
        const created = await store.createEnvironment(full);
        const { now: at, ...fields } = full;
        expect(created).toEqual({ ...fields, createdAt: at, updatedAt: at });
        expect(await store.getEnvironment(t.id, full.id)).toEqual(created);
        const api = await store.createEnvironment(environment(t.id, 'api'));
        expect((await store.listEnvironments(t.id)).map((e) => e.id)).toEqual([api.id, created.id]);
        expect(await store.getEnvironment(t.id, 'env_missing')).toBeUndefined();
      });

      it("is team-scoped: another team's environment is not found, updated or deleted", async () => {
        const a = await team();
        const b = await team();
        const env = await store.createEnvironment(environment(a.id, 'shared-name'));
        expect(await store.getEnvironment(b.id, env.id)).toBeUndefined();
        expect(await store.listEnvironments(b.id)).toEqual([]);
        expect(await store.updateEnvironment(b.id, env.id, { image: 'evil:1' }, tick())).toBeUndefined();
        expect(await store.deleteEnvironment(b.id, env.id)).toBe(false);
        expect(await store.getEnvironment(a.id, env.id)).toEqual(env);
        // The same name in another team is fine.
        await store.createEnvironment(environment(b.id, 'shared-name'));
      });

      it('refuses a duplicate name in the team with a ConflictError naming it', async () => {
        const t = await team();
        await store.createEnvironment(environment(t.id, 'dup'));
        await expect(store.createEnvironment(environment(t.id, 'dup'))).rejects.toMatchObject({ code: 'conflict', message: expect.stringContaining('"dup"') });
        expect(await store.listEnvironments(t.id)).toHaveLength(1);
      });

      it('refuses an environment of an unknown team', async () => {
        await expect(store.createEnvironment(environment('team_unknown', 'x'))).rejects.toMatchObject({ code: 'not_found' });
      });

      it('updates only the given fields, bumps updatedAt, and clears with null', async () => {
        const t = await team();
        const env = await store.createEnvironment(environment(t.id, 'one', { image: 'alpine:3', setupCommands: ['make'], setupTimeoutSeconds: 60 }));
        const at = tick();
        const updated = await store.updateEnvironment(t.id, env.id, { name: 'two', image: null, secretNames: ['TOKEN'] }, at);
        expect(updated).toEqual({ ...env, name: 'two', image: null, secretNames: ['TOKEN'], updatedAt: at });
        expect(await store.getEnvironment(t.id, env.id)).toEqual(updated);
        const untouched = await store.updateEnvironment(t.id, env.id, {}, tick());
        expect(untouched).toMatchObject({ name: 'two', setupCommands: ['make'], setupTimeoutSeconds: 60 });
      });

      it('changes one size field without the other, keeps memory as written or as bytes, and clears with null (migration 0005)', async () => {
        const t = await team();
        const env = await store.createEnvironment(environment(t.id, 'sized', { cpus: 2, memory: '4g' }));
        expect(await store.getEnvironment(t.id, env.id)).toMatchObject({ cpus: 2, memory: '4g' });
        expect(await store.updateEnvironment(t.id, env.id, { cpus: 0.25 }, tick())).toMatchObject({ cpus: 0.25, memory: '4g' });
        expect(await store.updateEnvironment(t.id, env.id, { memory: 536_870_912 }, tick())).toMatchObject({ cpus: 0.25, memory: 536_870_912 });
        expect(await store.updateEnvironment(t.id, env.id, { name: 'still-sized' }, tick())).toMatchObject({ cpus: 0.25, memory: 536_870_912 });
        expect(await store.updateEnvironment(t.id, env.id, { cpus: null }, tick())).toMatchObject({ cpus: null, memory: 536_870_912 });
        const cleared = await store.updateEnvironment(t.id, env.id, { memory: null }, tick());
        expect(cleared).toMatchObject({ cpus: null, memory: null });
        expect(await store.getEnvironment(t.id, env.id)).toEqual(cleared);
        expect((await store.listEnvironments(t.id))[0]).toEqual(cleared);
      });

      it('refuses renaming onto a taken name, changing nothing', async () => {
        const t = await team();
        await store.createEnvironment(environment(t.id, 'taken'));
        const env = await store.createEnvironment(environment(t.id, 'mine'));
        await expect(store.updateEnvironment(t.id, env.id, { name: 'taken', image: 'x:1' }, tick())).rejects.toMatchObject({ code: 'conflict', message: expect.stringContaining('"taken"') });
        expect(await store.getEnvironment(t.id, env.id)).toEqual(env);
        // Renaming to its own name is not a conflict.
        expect(await store.updateEnvironment(t.id, env.id, { name: 'mine' }, tick())).toMatchObject({ name: 'mine' });
      });

      it('deletes once; the name is free again', async () => {
        const t = await team();
        const env = await store.createEnvironment(environment(t.id, 'gone'));
        expect(await store.deleteEnvironment(t.id, env.id)).toBe(true);
        expect(await store.deleteEnvironment(t.id, env.id)).toBe(false);
        expect(await store.getEnvironment(t.id, env.id)).toBeUndefined();
        expect(await store.updateEnvironment(t.id, env.id, { image: 'x:1' }, tick())).toBeUndefined();
        await store.createEnvironment(environment(t.id, 'gone'));
      });
    });
  });
}
