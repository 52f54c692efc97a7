// The whole path, end to end: a real server, a real worker process (direct backend) configured
// with git_credentials and forges, an HTTPS git server (git http-backend, Basic auth) and a fake
// GitHub API. A task with a repository, push and pull_request comes back with its commit, diff,
// pushed branch and pull request URL; clone and setup failures come back with their reasons.
// Needs `npm run build`.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGitHubFake, type ForgeFake } from '../support/forge-fakes.js';
import { startGitHttpServer, type GitHttpServer } from '../support/git-http-server.js';
import { startTestServer, startWorker, stopWorker, waitForTask, type TestServer, type TestWorker } from '../support/stack.js';

const GIT_TOKEN = 'ghs_e2eGitTokenValue0123456789abcdefXYZ';
const FORGE_TOKEN = 'ghp_e2eForgeTokenValue0123456789abcdefXY';

let dir: string;
let server: TestServer;
let worker: TestWorker;
let gitServer: GitHttpServer;
let github: ForgeFake;
let repoUrl: string;
let bare: string;

function git(cwd: string, ...args: string[]): string {
  const env = { PATH: process.env.PATH, HOME: dir, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 'T', GIT_AUTHOR_EMAIL: 't@x', GIT_COMMITTER_NAME: 'T', GIT_COMMITTER_EMAIL: 't@x' };
  return execFileSync('git', args, { cwd, env, encoding: 'utf8' }).trim();
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'al-wse-'));
  const root = path.join(dir, 'served');
  bare = path.join(root, 'org', 'app.git');
  await mkdir(bare, { recursive: true });
  git(bare, 'init', '--quiet', '--bare', '--initial-branch=main');
  const scratch = path.join(dir, 'scratch');
  await mkdir(scratch);
  git(scratch, 'init', '--quiet', '--initial-branch=main');
  await writeFile(path.join(scratch, 'README.md'), 'hello\n');
  git(scratch, 'add', '.');
  git(scratch, 'commit', '--quiet', '-m', 'initial');
  git(scratch, 'push', '--quiet', bare, 'main');
  gitServer = await startGitHttpServer(root, dir, 'x-access-token', GIT_TOKEN);
  github = await startGitHubFake({ token: FORGE_TOKEN, repositories: { 'org/app': { default_branch: 'main' } } });
  repoUrl = `${gitServer.url}/org/app.git`;
  const config = path.join(dir, 'worker.yaml');
  await writeFile(
    config,
    [
      'git_credentials:',
      `  - {url_prefix: "${gitServer.url}/org/", username: x-access-token, password_env: E2E_GIT_TOKEN}`,
      'forges:',
      `  - {type: github, url_prefix: "${gitServer.url}/org/", api_url: "${github.apiUrl}", token_env: E2E_FORGE_TOKEN}`,
      '',
    ].join('\n'),
  );
  server = await startTestServer();
  worker = startWorker(server, {
    args: ['--config', config, '-e', `GIT_SSL_CAINFO=${gitServer.caFile}`],
    env: { E2E_GIT_TOKEN: GIT_TOKEN, E2E_FORGE_TOKEN: FORGE_TOKEN },
  });
  await worker.waitForLog(/connected|hello/i, 20_000);
}, 60_000);

afterAll(async () => {
  if (worker) await stopWorker(worker);
  await server?.close();
  await gitServer?.close();
  await github?.close();
  await rm(dir, { recursive: true, force: true });
});

async function createTask(body: Record<string, unknown>): Promise<{ id: string }> {
  const { status, body: task } = await server.api('/api/v1/tasks', { body: { harness: 'shell', ...body } });
  expect(status, JSON.stringify(task)).toBe(201);
  return task;
}

describe('workspace and results through a worker', () => {
  it('clones over https with the worker\'s credentials, commits, pushes and opens a pull request', async () => {
    const task = await createTask({ title: 'Add a greeting', prompt: 'echo "hi there" > greeting.txt', repositories: [{ url: repoUrl }], push: true, pull_request: { draft: true } });
    const done = await waitForTask(server, task.id, ['succeeded', 'failed', 'cancelled'], 60_000);
    expect(done.state, done.message).toBe('succeeded');
    const branch = `airlock/${task.id.slice(4, 12)}`;
    expect(done.artifacts).toMatchObject({
      branch,
      pushed: true,
      diff_truncated: false,
      diffstat: { files_changed: 1, insertions: 1, deletions: 0 },
      pull_request_url: 'https://github.example/org/app/pull/1',
    });
    expect(done.artifacts.diff).toContain('+hi there');
    expect(git(bare, 'rev-parse', branch)).toBe(done.artifacts.commit);
    expect(git(bare, 'log', '-1', '--format=%s', branch)).toBe('Add a greeting');
    const pull = github.requests.find((r) => r.method === 'POST')!;
    expect(pull.body).toMatchObject({ head: branch, base: 'main', title: 'Add a greeting', draft: true });
    expect(gitServer.seen).toContain(`x-access-token:${GIT_TOKEN}`);
    const { body: events } = await server.api(`/api/v1/tasks/${task.id}/events?format=json`);
    const text = JSON.stringify(events);
    expect(text).toContain('repository_ready');
    expect(text).not.toContain(GIT_TOKEN);
    expect(text).not.toContain(FORGE_TOKEN);
    expect(JSON.stringify(done)).not.toContain(GIT_TOKEN);
  }, 90_000);

  it('fails a task whose repository cannot be cloned with repo_clone, and one whose setup fails with setup_command', async () => {
    const clone = await createTask({ prompt: 'true', repositories: [{ url: `${gitServer.url}/org/missing.git` }] });
    const setup = await createTask({ prompt: 'true', repositories: [{ url: repoUrl }], setup_commands: ['echo installing; exit 7'] });
    const cloneDone = await waitForTask(server, clone.id, ['succeeded', 'failed', 'cancelled'], 60_000);
    expect(cloneDone).toMatchObject({ state: 'failed', failure_reason: 'repo_clone' });
    expect(cloneDone.message).toMatch(/could not clone https:\/\/127\.0\.0\.1:\d+\/org\/missing\.git: /);
    const setupDone = await waitForTask(server, setup.id, ['succeeded', 'failed', 'cancelled'], 60_000);
    expect(setupDone).toMatchObject({ state: 'failed', failure_reason: 'setup_command' });
    expect(setupDone.message).toMatch(/setup command 1 of 1 \(`echo installing; exit 7`\) exited with status 7/);
  }, 120_000);
});
