// The bundled agent runtime (dist/agent-runtime/agent.mjs) as a container backend will use it:
// copied alone into a directory outside the repository, where nothing resolves node_modules, and
// run as `<node> agent.mjs run` by the direct backend against a real TaskGateway — the shell
// harness, and an https clone and push whose credentials git gets from the bundle's own
// `git-credential` helper, from a directory whose name needs quoting. Also: its usage error, and
// that it imports only node: builtins.
// Needs `npm run build`.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/lib/ids.js';
import { findProcessesWithEnv } from '../../src/lib/procfs.js';
import type { AgentEvent, AgentResult, GitCredentialQuery } from '../../src/protocol/gateway.js';
import type { ExecutionSpec } from '../../src/protocol/task.js';
import { bundledAgentRuntime, checkAgentCommand, checkBundledAgentRuntime } from '../../src/worker/backends/agent-command.js';
import { DirectBackend } from '../../src/worker/backends/direct/index.js';
import { answerGitCredential, type GitCredentialRule } from '../../src/worker/git-credentials.js';
import { TaskGateway } from '../../src/worker/taskgateway/index.js';
import { startGitHttpServer, type GitHttpServer } from '../support/git-http-server.js';

const BRANCH = 'airlock/bundled1';

/** The bundle's copy, alone in a temp directory. */
let bundle: string;
let outside: string;

beforeAll(async () => {
  // A mount point can be called anything: the credential helper setting must quote it for git's shell.
  outside = await mkdtemp(path.join(os.tmpdir(), "al bundle 'q' $HOME-"));
  bundle = path.join(outside, 'agent.mjs');
  await copyFile(await checkBundledAgentRuntime(), bundle);
});

afterAll(async () => {
  await rm(outside, { recursive: true, force: true });
});

describe('the bundled agent runtime', () => {
  it('is copied where no node_modules can be found from it', () => {
    expect(path.relative(process.cwd(), bundle).startsWith('..')).toBe(true);
    for (let dir = path.dirname(bundle); ; dir = path.dirname(dir)) {
      expect(existsSync(path.join(dir, 'node_modules')), `${dir}/node_modules`).toBe(false);
      if (dir === path.dirname(dir)) break;
    }
  });

  it('imports nothing but node: builtins', async () => {
    const text = await readFile(bundle, 'utf8');
    const specifiers = [
      ...text.matchAll(/^\s*(?:import|export)\b[^;'"]*?\bfrom\s*["']([^"']+)["']/gm),
      ...text.matchAll(/^\s*import\s*["']([^"']+)["']/gm),
      ...text.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g),
      ...text.matchAll(/\brequire\(\s*["']([^"']+)["']\s*\)/g),
    ].map((match) => match[1]!);
    expect(specifiers).toContain('node:net'); // the scan finds imports at all
    const builtins = new Set(builtinModules);
    expect(specifiers.filter((s) => !s.startsWith('node:') && !builtins.has(s))).toEqual([]);
    // esbuild's shim for a require() it could not turn into an import throws at run time.
    expect(text).not.toMatch(/Dynamic require of/);
    expect(text.split('\n', 1)[0]).toMatch(/^\/\/ Airlock .* agent runtime: src\/agent\/main\.ts bundled by scripts\/bundle-agent\.js/);
  });

  it('answers anything but run and git-credential with a one-line usage and exit status 2', () => {
    for (const args of [['nonsense'], [], ['run', 'extra'], ['git-credential', 'get', 'extra']]) {
      const result = spawnSync(process.execPath, [bundle, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH } });
      expect(result.status, args.join(' ')).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(/^usage: agent\.mjs run \| agent\.mjs git-credential \[get\|store\|erase\] .*task environment\n$/);
    }
  });

  it('runs git-credential on its own: without a bridge it says so and gives git nothing', () => {
    const result = spawnSync(process.execPath, [bundle, 'git-credential', 'get'], { input: 'protocol=https\nhost=example.com\n\n', encoding: 'utf8', env: { PATH: process.env.PATH } });
    expect(result.status).toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/no credential bridge in this environment/);
  });

  it('is where the worker looks for it, and a missing one is refused with the fix', async () => {
    expect(bundledAgentRuntime()).toBe(path.resolve('dist', 'agent-runtime', 'agent.mjs'));
    await expect(checkBundledAgentRuntime(path.join(outside, 'missing.mjs'))).rejects.toThrow(/missing\.mjs is missing — check the path \(`npm run build` writes it to .*agent-runtime\/agent\.mjs\)/);
    await expect(checkAgentCommand([process.execPath, path.join(outside, 'missing.mjs'), 'run'])).rejects.toThrow(/script .*missing\.mjs does not exist or is not readable — check the agent command/);
    await expect(checkAgentCommand([process.execPath, bundle, 'run'])).resolves.toBeUndefined();
  });
});

describe('an execution through the bundled runtime (direct backend)', () => {
  let root: string;
  let backend: DirectBackend;
  let gitServer: GitHttpServer | undefined;
  const started: Array<{ id: string; gateway: TaskGateway }> = [];

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'alb-'));
    backend = new DirectBackend({
      workspaceRoot: path.join(root, 'ws'),
      agentCommand: [process.execPath, bundle, 'run'],
      noCleanup: false,
      setupTimeoutMs: 60_000,
      teardownTimeoutMs: 60_000,
    });
    await backend.init();
  });

  afterEach(async () => {
    for (const { id, gateway } of started.splice(0)) {
      await backend.stop(id, 0);
      await backend.cleanup(id);
      await gateway.close();
      expect(await findProcessesWithEnv(`AIRLOCK_EXECUTION_ID=${id}`)).toEqual([]);
    }
    await gitServer?.close();
    gitServer = undefined;
  });

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  function spec(fields: Partial<ExecutionSpec>): ExecutionSpec {
    return { execution_id: newId('exe'), task_id: newId('tsk'), epoch: 1, prompt: 'true', harness: 'shell', timeout_seconds: null, title: 'Bundled', branch: BRANCH, ...fields };
  }

  /** Serve the execution's task gateway, start the bundle through the backend, wait for it to exit. */
  async function execute(execution: ExecutionSpec, options: { env?: Record<string, string>; rules?: GitCredentialRule[] } = {}) {
    const prepared = await backend.prepare({ spec: execution, workerId: 'w1' });
    const token = randomBytes(16).toString('hex');
    const events: AgentEvent[] = [];
    const results: AgentResult[] = [];
    const credentialQueries: GitCredentialQuery[] = [];
    const gateway = new TaskGateway({
      socketPath: prepared.gatewaySocketPath,
      token,
      spec: execution,
      onEvents: async (batch) => {
        events.push(...batch);
      },
      onResult: (result) => {
        results.push(result);
      },
      gitCredential: async (query) => {
        credentialQueries.push(query);
        return answerGitCredential(options.rules ?? [], execution.repositories ?? [], query);
      },
    });
    await gateway.start();
    started.push({ id: execution.execution_id, gateway });
    const diagnostics: string[] = [];
    const running = await backend.start({ prepared, spec: execution, env: { AIRLOCK_TASK_TOKEN: token, ...options.env }, onOutput: (_stream, text) => diagnostics.push(text) });
    const status = await running.exited;
    const output = events
      .filter((e) => e.kind === 'output')
      .map((e) => String(e.data.text))
      .join('');
    return { prepared, status, events, results, credentialQueries, output, diagnostics: `${status.diagnostics ?? ''}${diagnostics.join('')}` };
  }

  it('runs the shell harness: its output, lifecycle and result reach the task gateway', async () => {
    const run = await execute(spec({ prompt: 'echo "hello from the bundle"; exit 3' }));
    expect(run.status.exitCode, run.diagnostics).toBe(3);
    expect(run.output).toContain('hello from the bundle\n');
    expect(run.events.some((e) => e.kind === 'lifecycle' && e.data.phase === 'harness_started' && e.data.harness === 'shell')).toBe(true);
    expect(run.events.at(-1)).toMatchObject({ kind: 'result', data: { outcome: 'failed', exit_code: 3 } });
    expect(run.results).toEqual([expect.objectContaining({ outcome: 'failed', exit_code: 3 })]);
  });

  it('clones and pushes over https with credentials git gets from the bundle\'s own git-credential helper', async () => {
    const served = path.join(root, 'served');
    const bare = path.join(served, 'org', 'app.git');
    await makeRemote(bare, path.join(root, 'scratch'));
    const password = 'ghs_bundleTokenValue0123456789abcdefABCD';
    gitServer = await startGitHttpServer(served, root, 'x-access-token', password);
    const url = `${gitServer.url}/org/app.git`;
    const rules = [{ urlPrefix: `${gitServer.url}/org/`, username: 'x-access-token', password, passwordEnv: 'GH_TOKEN' }];
    const run = await execute(spec({ repositories: [{ url }], push: true, prompt: 'cat README.md; echo change > c.txt' }), { env: { GIT_SSL_CAINFO: gitServer.caFile }, rules });
    expect(run.status.exitCode, `${run.results[0]?.summary ?? ''}\n${run.diagnostics}`).toBe(0);
    expect(run.output).toContain('hello from the remote');
    expect(run.results[0]!.repositories![0]).toMatchObject({ pushed: true, push_error: null });
    expect(git(bare, 'rev-parse', BRANCH)).toBe(run.results[0]!.repositories![0]!.commit);
    // git asked the helper (clone and push), the helper the bridge, the bridge the gateway; git used the answer.
    expect(run.credentialQueries.length).toBeGreaterThanOrEqual(2);
    expect(run.credentialQueries[0]).toEqual({ protocol: 'https', host: new URL(gitServer.url).host, path: 'org/app.git' });
    expect(gitServer.seen).toContain(`x-access-token:${password}`);
    expect(JSON.stringify(run.events)).not.toContain(password);
    expect(await readFile(path.join(run.prepared.workdir, '.git', 'config'), 'utf8')).not.toMatch(/credential|x-access-token|ghs_/);
  }, 60_000);
});

function git(cwd: string, ...args: string[]): string {
  const env = { PATH: process.env.PATH, HOME: cwd, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 'T', GIT_AUTHOR_EMAIL: 't@x', GIT_COMMITTER_NAME: 'T', GIT_COMMITTER_EMAIL: 't@x' };
  return execFileSync('git', args, { cwd, env, encoding: 'utf8' }).trim();
}

/** A bare repository at `bare` with one commit on main. */
async function makeRemote(bare: string, scratch: string): Promise<void> {
  await mkdir(bare, { recursive: true });
  git(bare, 'init', '--quiet', '--bare', '--initial-branch=main');
  await mkdir(scratch, { recursive: true });
  git(scratch, 'init', '--quiet', '--initial-branch=main');
  await writeFile(path.join(scratch, 'README.md'), 'hello from the remote\n');
  git(scratch, 'add', '.');
  git(scratch, 'commit', '--quiet', '-m', 'initial');
  git(scratch, 'push', '--quiet', bare, 'main');
}
