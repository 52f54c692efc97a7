// The direct backend: the shared Backend conformance suite, plus what only the direct backend
// does — setup/teardown commands and their timeouts, the socket path length check, the exact
// environment, meta.json, recovery's care with other workers' workspaces and recycled pids.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newId } from '../../src/lib/ids.js';
import { findProcessesWithEnv, readProcStat } from '../../src/lib/procfs.js';
import type { AgentEvent } from '../../src/protocol/gateway.js';
import type { ExecutionSpec } from '../../src/protocol/task.js';
import { defaultAgentCommand } from '../../src/worker/backends/agent-command.js';
import { DirectBackend, type DirectBackendOptions } from '../../src/worker/backends/direct/index.js';
import { TaskGateway } from '../../src/worker/taskgateway/index.js';
import { describeBackendConformance } from './backend-conformance.js';

function makeDirect(options: Partial<DirectBackendOptions> & { workspaceRoot: string }): DirectBackend {
  return new DirectBackend({
    agentCommand: defaultAgentCommand(),
    noCleanup: false,
    setupTimeoutMs: 60_000,
    teardownTimeoutMs: 60_000,
    ...options,
  });
}

describeBackendConformance('direct', async ({ workspaceRoot, noCleanup }) => makeDirect({ workspaceRoot, noCleanup }));

describe('DirectBackend specifics', () => {
  let root: string;
  const started: Array<{ backend: DirectBackend; id: string; gateway?: TaskGateway }> = [];

  beforeEach(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'ald-'));
  });

  afterEach(async () => {
    for (const { backend, id, gateway } of started.splice(0)) {
      await backend.stop(id, 0);
      await backend.cleanup(id);
      await gateway?.close();
      expect(await findProcessesWithEnv(`AIRLOCK_EXECUTION_ID=${id}`)).toEqual([]);
    }
    await rm(root, { recursive: true, force: true });
  });

  function specFor(prompt: string): ExecutionSpec {
    return { execution_id: newId('exe'), task_id: newId('tsk'), epoch: 7, prompt, harness: 'shell', timeout_seconds: null, title: null };
  }

  /** Prepare, serve a gateway, start; returns what the test needs. */
  async function launch(backend: DirectBackend, prompt: string, env: Record<string, string> = {}) {
    const spec = specFor(prompt);
    const prepared = await backend.prepare({ spec, workerId: 'w1' });
    const token = randomBytes(16).toString('hex');
    const events: AgentEvent[] = [];
    const gateway = new TaskGateway({
      socketPath: prepared.gatewaySocketPath,
      token,
      spec,
      onEvents: async (batch) => {
        events.push(...batch);
      },
      onResult: () => undefined,
    });
    await gateway.start();
    started.push({ backend, id: spec.execution_id, gateway });
    const backendOutput: Array<{ stream: string; text: string }> = [];
    const running = await backend.start({
      prepared,
      spec,
      env: { AIRLOCK_TASK_TOKEN: token, ...env },
      onOutput: (stream, text) => backendOutput.push({ stream, text }),
    });
    const output = () =>
      events
        .filter((e) => e.kind === 'output')
        .map((e) => String(e.data.text))
        .join('');
    return { spec, prepared, running, events, output, backendOutput };
  }

  it('refuses a workspace root whose socket paths would exceed the 107-byte limit, naming the path and the fix', async () => {
    const long = path.join(root, 'x'.repeat(90));
    const backend = makeDirect({ workspaceRoot: long });
    await expect(backend.init()).rejects.toThrow(/gateway\.sock.*over the operating system's limit of 107.*shorter --workspace-root/s);
  });

  it('creates the workspace root private to the worker user', async () => {
    const backend = makeDirect({ workspaceRoot: path.join(root, 'ws') });
    await backend.init();
    expect((await stat(path.join(root, 'ws'))).mode & 0o777).toBe(0o700);
  });

  it('fails init clearly when the agent command does not exist', async () => {
    const backend = makeDirect({ workspaceRoot: root, agentCommand: ['/nonexistent/node', 'x'] });
    await expect(backend.init()).rejects.toThrow(/\/nonexistent\/node does not exist/);
  });

  it('starts the task with exactly the minimal environment plus the request variables', async () => {
    const backend = makeDirect({ workspaceRoot: root, path: '/usr/local/bin:/usr/bin:/bin' });
    await backend.init();
    const run = await launch(backend, 'env -0 | sort -z | tr "\\0" "\\n"', { FOO: 'bar', HOME: '/not/allowed' });
    expect((await run.running.exited).exitCode).toBe(0);
    const dir = path.dirname(run.prepared.workdir);
    const env = Object.fromEntries(
      run
        .output()
        .split('\n')
        .filter(Boolean)
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    );
    delete env.PWD;
    delete env.SHLVL;
    delete env._;
    expect(env).toEqual({
      PATH: '/usr/local/bin:/usr/bin:/bin',
      LANG: 'C.UTF-8',
      HOME: path.join(dir, 'home'),
      TMPDIR: path.join(dir, 'tmp'),
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: path.join(dir, 'home', '.gitconfig'),
      XDG_CONFIG_HOME: path.join(dir, 'home', '.config'),
      XDG_CACHE_HOME: path.join(dir, 'home', '.cache'),
      AIRLOCK_GATEWAY: `unix:${path.join(dir, 'gateway.sock')}`,
      AIRLOCK_WORKDIR: run.prepared.workdir,
      AIRLOCK_EXECUTION_ID: run.spec.execution_id,
      FOO: 'bar',
    });
  });

  it("refuses to pass the worker's API key or an invalid variable name to a task", async () => {
    const backend = makeDirect({ workspaceRoot: root });
    await backend.init();
    await expect(launch(backend, 'true', { AIRLOCK_API_KEY: 'alk_x' })).rejects.toThrow(/refusing to pass AIRLOCK_API_KEY/);
    await expect(launch(backend, 'true', { 'BAD=NAME': 'x' })).rejects.toThrow(/not a valid environment variable name/);
  });

  it('records who owns the workspace and what runs in it in meta.json', async () => {
    const backend = makeDirect({ workspaceRoot: root });
    await backend.init();
    const run = await launch(backend, 'echo running\nsleep 1000');
    await waitFor(() => run.output().includes('running'));
    const meta = JSON.parse(await readFile(path.join(path.dirname(run.prepared.workdir), 'meta.json'), 'utf8'));
    expect(meta).toMatchObject({ version: 1, worker_id: 'w1', execution_id: run.spec.execution_id, epoch: 7, phase: 'agent' });
    const stat = await readProcStat(meta.pid);
    expect(stat?.startTime).toBe(meta.pid_start_time);
    expect(stat?.pgid).toBe(meta.pid);
    await backend.stop(run.spec.execution_id, 0);
    await run.running.exited;
    const after = JSON.parse(await readFile(path.join(path.dirname(run.prepared.workdir), 'meta.json'), 'utf8'));
    expect(after).toMatchObject({ phase: 'exited', pid: null });
  });

  it('runs the setup command in the workspace with the task environment, before the agent', async () => {
    const backend = makeDirect({ workspaceRoot: root, setupCommand: 'echo "setup sees $HOME"; echo prepared > from-setup.txt' });
    await backend.init();
    const run = await launch(backend, 'cat from-setup.txt');
    expect((await run.running.exited).exitCode).toBe(0);
    expect(run.output()).toBe('prepared\n');
    const setup = run.backendOutput.filter((o) => o.stream === 'setup').map((o) => o.text).join('');
    expect(setup).toBe(`setup sees ${path.join(path.dirname(run.prepared.workdir), 'home')}\n`);
  });

  it('fails the execution when the setup command fails, naming the command, its status and the fix', async () => {
    const backend = makeDirect({ workspaceRoot: root, setupCommand: 'echo "installing"; exit 7' });
    await backend.init();
    const run = await launch(backend, 'echo should-not-run');
    const status = await run.running.exited;
    expect(status.exitCode).toBe(7);
    expect(status.failure?.reason).toBe('setup_command');
    expect(status.failure?.message).toMatch(/setup command `echo "installing"; exit 7` exited with status 7 — fix the command/);
    expect(run.events).toEqual([]);
  });

  it('stops a setup command that runs past its timeout, and everything it started', async () => {
    const backend = makeDirect({ workspaceRoot: root, setupCommand: 'sleep 1000 & echo "bg=$!"; sleep 1000', setupTimeoutMs: 300 });
    await backend.init();
    const run = await launch(backend, 'echo should-not-run');
    const status = await run.running.exited;
    expect(status.failure?.reason).toBe('setup_command');
    expect(status.failure?.message).toMatch(/did not finish within 0 s and was stopped — make it faster, or raise setup_timeout/);
    const bg = Number(/bg=(\d+)/.exec(run.backendOutput.map((o) => o.text).join(''))![1]);
    expect(await readProcStat(bg).then((s) => s && s.state !== 'Z')).toBeFalsy();
  });

  it('runs the teardown command after the agent; a failing teardown is reported but does not change the outcome', async () => {
    const backend = makeDirect({ workspaceRoot: root, teardownCommand: 'echo "teardown sees $(cat result.txt)"; exit 4' });
    await backend.init();
    const run = await launch(backend, 'echo done > result.txt');
    const status = await run.running.exited;
    expect(status.exitCode).toBe(0);
    expect(status.failure).toBeUndefined();
    const teardown = run.backendOutput.filter((o) => o.stream === 'teardown').map((o) => o.text).join('');
    expect(teardown).toContain('teardown sees done\n');
    expect(teardown).toMatch(/teardown command .* exited with status 4/);
  });

  it('stops a teardown command that runs past its timeout', async () => {
    const backend = makeDirect({ workspaceRoot: root, teardownCommand: 'sleep 1000', teardownTimeoutMs: 300 });
    await backend.init();
    const run = await launch(backend, 'true');
    const status = await run.running.exited;
    expect(status.exitCode).toBe(0);
    expect(run.backendOutput.map((o) => o.text).join('')).toMatch(/teardown command `sleep 1000` did not finish/);
  });

  it('a stop before start means nothing runs', async () => {
    const backend = makeDirect({ workspaceRoot: root, setupCommand: 'echo setup-ran' });
    await backend.init();
    const spec = specFor('echo agent-ran');
    const prepared = await backend.prepare({ spec, workerId: 'w1' });
    started.push({ backend, id: spec.execution_id });
    await backend.stop(spec.execution_id, 0);
    const outputs: string[] = [];
    const running = await backend.start({ prepared, spec, env: {}, onOutput: (_s, text) => outputs.push(text) });
    const status = await running.exited;
    expect(status.exitCode).toBe(143);
    expect(outputs).toEqual([]);
  });

  it('keeps the agent runtime diagnostics when it exits without reporting', async () => {
    const backend = makeDirect({ workspaceRoot: root });
    await backend.init();
    const spec = specFor('true');
    const prepared = await backend.prepare({ spec, workerId: 'w1' });
    started.push({ backend, id: spec.execution_id });
    // No gateway is served and no token is given: the agent runtime says why it gives up.
    const running = await backend.start({ prepared, spec, env: {}, onOutput: () => undefined });
    const status = await running.exited;
    expect(status.exitCode).toBe(2);
    expect(status.diagnostics).toMatch(/AIRLOCK_TASK_TOKEN is not set/);
  });

  it('cleanup removes a workspace the task made read-only', async () => {
    const backend = makeDirect({ workspaceRoot: root });
    await backend.init();
    const run = await launch(backend, 'mkdir -p cache/mod && touch cache/mod/file && chmod -R a-w cache');
    expect((await run.running.exited).exitCode).toBe(0);
    await backend.cleanup(run.spec.execution_id);
    await expect(stat(path.dirname(run.prepared.workdir))).rejects.toThrow(/ENOENT/);
  });

  it("recovery leaves other workers' workspaces, unreadable ones and recycled pids alone", async () => {
    const backend = makeDirect({ workspaceRoot: root });
    await backend.init();
    const meta = (executionId: string, workerId: string, pid: number | null, start: number | null) => ({
      version: 1,
      worker_id: workerId,
      execution_id: executionId,
      epoch: 2,
      created_at: new Date().toISOString(),
      phase: 'agent',
      pid,
      pid_start_time: start,
    });
    const other = newId('exe');
    const broken = newId('exe');
    const recycled = newId('exe');
    for (const id of [other, broken, recycled]) await mkdir(path.join(root, id));
    await writeFile(path.join(root, other, 'meta.json'), JSON.stringify(meta(other, 'another-worker', null, null)));
    await writeFile(path.join(root, broken, 'meta.json'), '{not json');
    // The test process's own pid with a wrong start time: a recycled pid that must not be killed.
    await writeFile(path.join(root, recycled, 'meta.json'), JSON.stringify(meta(recycled, 'w1', process.pid, 1)));
    await writeFile(path.join(root, 'not-an-execution'), 'x');
    const leftovers = await backend.recover('w1');
    expect(leftovers).toEqual([{ executionId: recycled, epoch: 2, wasRunning: false, detail: expect.stringMatching(/pid \d+ now belongs to another process.*left alone.*removed/) }]);
    expect((await stat(path.join(root, other))).isDirectory()).toBe(true);
    expect((await stat(path.join(root, broken))).isDirectory()).toBe(true);
    await expect(stat(path.join(root, recycled))).rejects.toThrow(/ENOENT/);
  });

  it('recovery with noCleanup stops what runs but keeps the workspace', async () => {
    const first = makeDirect({ workspaceRoot: root });
    await first.init();
    const run = await launch(first, 'echo running\nsleep 1000');
    await waitFor(() => run.output().includes('running'));
    const second = makeDirect({ workspaceRoot: root, noCleanup: true });
    const leftovers = await second.recover('w1');
    expect(leftovers).toHaveLength(1);
    expect(leftovers[0]!.wasRunning).toBe(true);
    expect(leftovers[0]!.detail).toMatch(/kept \(--no-cleanup\)/);
    await run.running.exited;
    expect((await stat(run.prepared.workdir)).isDirectory()).toBe(true);
    expect(await second.recover('w1')).toEqual([]);
  });

  it('the workspace and its home are private to the worker user', async () => {
    const backend = makeDirect({ workspaceRoot: root });
    await backend.init();
    const spec = specFor('true');
    const prepared = await backend.prepare({ spec, workerId: 'w1' });
    started.push({ backend, id: spec.execution_id });
    const dir = path.dirname(prepared.workdir);
    for (const p of [dir, path.join(dir, 'home'), path.join(dir, 'tmp')]) expect((await stat(p)).mode & 0o777).toBe(0o700);
    expect(await readFile(path.join(dir, 'home', '.gitconfig'), 'utf8')).toMatch(/name = Airlock task/);
    await chmod(dir, 0o700);
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
