/**
 * The Store conformance suite on real SQLite files (one fresh temporary directory per test,
 * removed afterwards and checked gone), plus what only SQLite has: one file shared by two
 * processes' connections (the server and `airlock admin`), pragmas, idempotent migrations. Foreign keys are covered by the conformance suite.
 */
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { newId } from '../../src/lib/ids.js';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { initialSchema } from '../../src/server/store/migrations/0001-initial.js';
import { environmentsSchema } from '../../src/server/store/migrations/0002-environments.js';
import { taskRecipesSchema } from '../../src/server/store/migrations/0003-task-recipes.js';
import { llmUsageSchema } from '../../src/server/store/migrations/0004-llm-usage.js';
import { MIGRATION_LOCK_TABLE, MIGRATION_TABLE } from '../../src/server/store/migrations/index.js';
import { openSqliteStore } from '../../src/server/store/sqlite/index.js';
import type { Store } from '../../src/server/store/store.js';
import { NO_TASK_SETTINGS, describeStoreConformance } from './store-conformance.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'airlock-store-'));
}

describeStoreConformance('sqlite', async () => {
  const dir = tempDir();
  const file = join(dir, 'airlock.db');
  const store = await openSqliteStore({ path: file });
  return {
    store,
    cleanup: async () => {
      await store.close();
      // SQLite removes the WAL when its last connection closes: the store's connection and
      // its checkpointer thread's are both gone.
      expect(existsSync(`${file}-wal`)).toBe(false);
      rmSync(dir, { recursive: true, force: true });
      expect(existsSync(dir)).toBe(false);
    },
  };
});

describe('SQLite store', () => {
  const dirs: string[] = [];
  const stores: Store[] = [];
  const dir = () => {
    const d = tempDir();
    dirs.push(d);
    return d;
  };
  const open = async (path: string) => {
    const s = await openSqliteStore({ path });
    stores.push(s);
    return s;
  };

  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    for (const d of dirs.splice(0)) {
      rmSync(d, { recursive: true, force: true });
      expect(existsSync(d)).toBe(false);
    }
  });

  it('opens with WAL, NORMAL sync and foreign keys, and migrates once however often it is opened', async () => {
    const file = join(dir(), 'airlock.db');
    const first = await open(file);
    await first.createTeam({ id: newId('team'), name: 'kept', now: 1 });
    await first.close();
    const second = await open(file);
    await second.migrate();
    expect(await second.getTeamByName('kept')).toBeDefined();

    const raw = new BetterSqlite3(file, { readonly: true });
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      const applied = raw.prepare(`select name from ${MIGRATION_TABLE} order by name`).all() as Array<{ name: string }>;
      expect(applied.map((m) => m.name)).toEqual(['0001-initial', '0002-environments', '0003-task-recipes', '0004-llm-usage', '0005-task-size']);
    } finally {
      raw.close();
    }
  });

  it('upgrades a database from before migration 0003: old tasks get an empty recipe, old executions no results', async () => {
    const file = join(dir(), 'airlock.db');
    const raw = new BetterSqlite3(file);
    const old = new Kysely<unknown>({ dialect: new SqliteDialect({ database: raw }) });
    const migrator = new Migrator({
      db: old,
      provider: { getMigrations: async () => ({ '0001-initial': initialSchema('sqlite'), '0002-environments': environmentsSchema() }) },
      migrationTableName: MIGRATION_TABLE,
      migrationLockTableName: MIGRATION_LOCK_TABLE,
    });
    expect((await migrator.migrateToLatest()).error).toBeUndefined();
    raw.prepare("insert into teams (id, name, created_at) values ('team_old', 'old', 1)").run();
    raw.prepare("insert into tasks (id, team_id, title, state, prompt, harness, worker_id, timeout_seconds, cancel_requested, epoch, created_at, updated_at) values ('tsk_aaaaaaaaaaaaaaaaaaaa', 'team_old', null, 'succeeded', 'true', 'shell', null, null, 0, 1, 1, 2)").run();
    raw.prepare("insert into executions (id, task_id, team_id, ordinal, worker_id, epoch, state, offer_id, offer_deadline, created_at) values ('exe_aaaaaaaaaaaaaaaaaaaa', 'tsk_aaaaaaaaaaaaaaaaaaaa', 'team_old', 1, 'w1', 1, 'succeeded', 'off_a', 10, 1)").run();
    await old.destroy();

    const s = await open(file);
    expect(await s.getTask('team_old', 'tsk_aaaaaaaaaaaaaaaaaaaa')).toMatchObject({
      state: 'succeeded',
      ...NO_TASK_SETTINGS,
    });
    expect(await s.getExecution('exe_aaaaaaaaaaaaaaaaaaaa')).toMatchObject({ artifacts: null, usage: { input_tokens: 0, output_tokens: 0, requests: 0 } });
  });

  it('upgrades a database from before migration 0005: old environments and old task recipes have no size', async () => {
    const file = join(dir(), 'airlock.db');
    const raw = new BetterSqlite3(file);
    const old = new Kysely<unknown>({ dialect: new SqliteDialect({ database: raw }) });
    const migrator = new Migrator({
      db: old,
      provider: {
        getMigrations: async () => ({
          '0001-initial': initialSchema('sqlite'),
          '0002-environments': environmentsSchema(),
          '0003-task-recipes': taskRecipesSchema(),
          '0004-llm-usage': llmUsageSchema(),
        }),
      },
      migrationTableName: MIGRATION_TABLE,
      migrationLockTableName: MIGRATION_LOCK_TABLE,
    });
    expect((await migrator.migrateToLatest()).error).toBeUndefined();
    raw.prepare("insert into teams (id, name, created_at) values ('team_old', 'old', 1)").run();
    raw.prepare("insert into environments (id, team_id, name, image, repositories, setup_commands, setup_timeout_seconds, secret_names, env_names, created_at, updated_at) values ('env_aaaaaaaaaaaaaaaaaaaa', 'team_old', 'old-env', 'alpine:3', '[]', ?, null, '[]', '[]', 1, 1)").run(JSON.stringify(['make']));
    const oldRecipe = { image: 'alpine:3', repositories: [], setupCommands: ['make'], setupTimeoutSeconds: null, secretNames: [], envNames: [] };
    raw.prepare("insert into tasks (id, team_id, title, state, prompt, harness, worker_id, timeout_seconds, cancel_requested, epoch, created_at, updated_at, recipe) values ('tsk_aaaaaaaaaaaaaaaaaaaa', 'team_old', null, 'queued', 'true', 'shell', null, null, 0, 0, 1, 1, ?)").run(JSON.stringify(oldRecipe));
    await old.destroy();

    const s = await open(file);
    expect(await s.getEnvironment('team_old', 'env_aaaaaaaaaaaaaaaaaaaa')).toMatchObject({ image: 'alpine:3', setupCommands: ['make'], cpus: null, memory: null });
    expect((await s.getTask('team_old', 'tsk_aaaaaaaaaaaaaaaaaaaa'))?.recipe).toEqual({ ...oldRecipe, cpus: null, memory: null });
    expect(await s.updateEnvironment('team_old', 'env_aaaaaaaaaaaaaaaaaaaa', { memory: '2g' }, 2)).toMatchObject({ cpus: null, memory: '2g' });
  });

  it('lets two store instances on one file work in turn (the server and the admin CLI)', async () => {
    const file = join(dir(), 'airlock.db');
    const server = await open(file);
    const admin = await open(file);
    const team = await admin.createTeam({ id: newId('team'), name: 'shared', now: 1 });
    expect(await server.getTeamByName('shared')).toEqual(team);

    const t = await server.createTask({ id: newId('tsk'), teamId: team.id, title: null, prompt: 'true', harness: 'shell', workerId: null, timeoutSeconds: null, now: 2 });
    const [offered] = await admin.offerTasks({ teamId: team.id, workerId: 'w1', limit: 1, now: 3, offerDeadline: 100, newExecutionId: () => newId('exe'), newOfferId: () => newId('off') });
    expect(offered?.task.id).toBe(t.id);
    // Neither instance caches rows: each sees the other's commit at once.
    expect(await server.offerTasks({ teamId: team.id, workerId: 'w2', limit: 1, now: 4, offerDeadline: 100, newExecutionId: () => newId('exe'), newOfferId: () => newId('off') })).toEqual([]);
    const claimed = await server.claimOffer({ offerId: offered!.execution.offerId, workerId: 'w1', teamId: team.id, now: 5, leaseExpiresAt: 50 });
    expect(claimed.ok).toBe(true);
    await admin.appendAudit({ teamId: team.id, actor: 'admin-cli', action: 'key.create', target: null, detail: {}, at: 6 });
    expect(await server.listAudit(team.id, 10)).toHaveLength(1);
    expect((await admin.getExecution(offered!.execution.id))?.state).toBe('claimed');
    await admin.close();
    expect(await server.getTask(team.id, t.id)).toMatchObject({ state: 'assigned' });
    await server.close();
    expect(existsSync(`${file}-wal`)).toBe(false);
  });

  it('checkpoints the WAL in the background, and close() stops the checkpointer', async () => {
    const file = join(dir(), 'airlock.db');
    const s = await open(file);
    const team = await s.createTeam({ id: newId('team'), name: 'busy', now: 1 });
    const sizeBefore = statSync(file).size;
    // Far below the main connection's own autocheckpoint threshold: only the thread copies these.
    for (let i = 0; i < 200; i++) {
      await s.createTask({ id: newId('tsk'), teamId: team.id, title: null, prompt: 'x'.repeat(1000), harness: 'shell', workerId: null, timeoutSeconds: null, now: i });
    }
    const deadline = Date.now() + 5000;
    while (statSync(file).size === sizeBefore && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(statSync(file).size).toBeGreaterThan(sizeBefore);
    await s.close();
    expect(existsSync(`${file}-wal`)).toBe(false);
  });

  it('names the directory to create when the file’s directory does not exist', async () => {
    const missing = join(dir(), 'not', 'there');
    await expect(openSqliteStore({ path: join(missing, 'airlock.db') })).rejects.toThrow(`directory ${missing} does not exist — create it (mkdir -p ${missing})`);
  });

  it('opens a private in-memory store for `:memory:`', async () => {
    const s = await open(':memory:');
    await s.ping();
    expect(s.kind).toBe('sqlite');
  });
});
