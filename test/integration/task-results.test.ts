/**
 * Recipes in, results out, end to end: a real server, a real worker process on the direct
 * backend, a real git repository. A task created from an environment (with an inline setup
 * override) clones the repository, runs, and its commit, diffstat and diff come back on the task
 * view, through `GET /api/v1/tasks/{id}/diff`, and apply with `git apply`.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workingBranch } from '../../src/protocol/task.js';
import { startTestServer, startWorker, stopWorker, tempDir, waitForTask, type TestServer, type TestWorker } from '../support/stack.js';

let server: TestServer;
let worker: TestWorker;
let repo: string;
const GIT_ENV = { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' };
const git = (dir: string, ...args: string[]) => execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8', env: GIT_ENV });

beforeAll(async () => {
  repo = tempDir('repo');
  git(repo, 'init', '-q', '-b', 'main');
  writeFileSync(join(repo, 'a.txt'), 'old\n');
  git(repo, 'add', 'a.txt');
  git(repo, '-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-qm', 'base');
  server = await startTestServer();
  worker = startWorker(server, { workerId: 'results' });
  await worker.waitForLog(/worker:ws:connected/);
}, 60_000);

afterAll(async () => {
  if (worker) await stopWorker(worker);
  await server?.close();
  if (repo) rmSync(repo, { recursive: true, force: true });
});

describe('a task with a recipe, end to end', () => {
  it('clones, runs, and reports its commit and diff on the task', async () => {
    const env = await server.api('/api/v1/environments', { body: { name: 'results-env', repositories: [{ url: repo, ref: 'main' }], setup_commands: ['echo from-env > setup.txt'] } });
    expect(env.status, JSON.stringify(env.body)).toBe(201);
    const created = await server.api('/api/v1/tasks', {
      body: { prompt: 'test -f setup-inline.txt && rm setup-inline.txt && echo new > a.txt', harness: 'shell', worker_id: 'results', environment_id: env.body.id, setup_commands: ['echo inline > setup-inline.txt'] },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const task = await waitForTask(server, created.body.id, ['succeeded', 'failed'], 60_000);
    expect(task.state, JSON.stringify(task)).toBe('succeeded');
    expect(task.artifacts, JSON.stringify(task)).toMatchObject({
      branch: workingBranch(task.id),
      commit: expect.stringMatching(/^[0-9a-f]{40}$/),
      diffstat: { files_changed: 1, insertions: 1, deletions: 1 },
      diff_truncated: false,
    });
    expect(task.artifacts.diff).toContain('+new');

    const res = await fetch(`${server.url}/api/v1/tasks/${task.id}/diff`, { headers: { authorization: `Bearer ${server.userKey}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-airlock-diff-truncated')).toBe('false');
    const patchDir = tempDir('patch');
    try {
      const patch = join(patchDir, 'task.patch');
      writeFileSync(patch, await res.text());
      git(repo, 'apply', patch);
    } finally {
      rmSync(patchDir, { recursive: true, force: true });
    }
    expect(readFileSync(join(repo, 'a.txt'), 'utf8')).toBe('new\n');
  }, 90_000);

  it('keeps the full diff on the worker when the reported one is cut, and says where', async () => {
    const created = await server.api('/api/v1/tasks', {
      body: { prompt: "yes 'a line of the big file' | head -n 30000 > big.txt", harness: 'shell', worker_id: 'results', repositories: [{ url: repo, ref: 'main' }] },
    });
    const task = await waitForTask(server, created.body.id, ['succeeded', 'failed'], 60_000);
    expect(task.state, JSON.stringify(task)).toBe('succeeded');
    expect(task.artifacts.diff_truncated).toBe(true);
    const { body: events } = await server.api(`/api/v1/tasks/${task.id}/events?format=json`);
    const note = events.map((e: any) => e.data.message).find((m: unknown) => typeof m === 'string' && m.includes('full diff'));
    expect(note).toMatch(/is kept on worker results at /);
    const file = /at (\S+\.diff)$/.exec(note)![1]!;
    expect(file.startsWith(worker.stateDir)).toBe(true);
    const kept = readFileSync(file, 'utf8');
    expect(Buffer.byteLength(kept)).toBe(task.artifacts.repositories[0].diff_bytes);
    expect(kept.split('\n').filter((l) => l === '+a line of the big file')).toHaveLength(30000);
  }, 90_000);
});
