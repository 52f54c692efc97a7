/**
 * The Backend conformance suite (architecture.md §5: one interface, one suite, every
 * implementation). It drives the REAL agent runtime (dist/, so `npm run build` first) through a
 * REAL TaskGateway at the socket the backend prepared, and checks what every backend promises:
 * output arrives as events, exit codes propagate, the environment is minimal (the worker's API
 * key provably absent, HOME and git config inside the task environment), stop() is two-phase and
 * leaves nothing running, cleanup removes the environment (noCleanup keeps it), recover() finds
 * and stops what a previous instance left running, stop/cleanup are idempotent.
 *
 * Usage (see direct-backend.test.ts):
 *   describeBackendConformance('docker', async ({ workspaceRoot, noCleanup }) => new DockerBackend({ … }));
 *
 * Every test cleans up what it started and asserts nothing is left: no process carrying the
 * execution's mark (AIRLOCK_EXECUTION_ID=<id>) on this host, no pid the task reported.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/lib/ids.js';
import { findProcessesWithEnv, isLive, processGroupMembers, readProcStat } from '../../src/lib/procfs.js';
import type { AgentEvent, AgentResult } from '../../src/protocol/gateway.js';
import type { ExecutionSpec } from '../../src/protocol/task.js';
import type { Backend, ExitStatus, PreparedEnvironment, RunningExecution } from '../../src/worker/backends/backend.js';
import { TaskGateway } from '../../src/worker/taskgateway/index.js';

export interface ConformanceOptions {
  /** Task processes are host processes (pids in output are host pids): default `name === 'direct'`. */
  hostProcesses?: boolean;
  /** `prepared.workdir` is a host path under `workspaceRoot`: default `name === 'direct'`. */
  hostWorkspace?: boolean;
}

export type MakeBackend = (options: { workspaceRoot: string; noCleanup: boolean }) => Promise<Backend>;

const WORKER_ID = 'conformance-worker';
/** Grace for stop() in the two-phase test: long enough for the trapped SIGTERM's output to be reported. */
const STOP_GRACE_MS = 2_000;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Fail early, and say why, when the agent runtime the backends start has not been built (or is stale). */
function assertAgentRuntimeBuilt(): void {
  for (const file of ['cli/main.js', 'agent/run.js', 'agent/harness/shell.js']) {
    const compiled = path.join(ROOT, 'dist', file);
    if (!existsSync(compiled)) {
      throw new Error(`the backend conformance suite runs the real agent runtime, but ${compiled} is missing — run \`npm run build\` first`);
    }
    const source = path.join(ROOT, 'src', file.replace(/\.js$/, '.ts'));
    if (existsSync(source) && statSync(source).mtimeMs > statSync(compiled).mtimeMs + 1000) {
      throw new Error(`${compiled} is older than ${source} — run \`npm run build\` so the suite tests the current agent runtime`);
    }
  }
}

interface TaskRun {
  spec: ExecutionSpec;
  backend: Backend;
  prepared: PreparedEnvironment;
  gateway: TaskGateway;
  running: RunningExecution;
  events: AgentEvent[];
  results: AgentResult[];
  backendOutput: Array<{ stream: string; text: string }>;
  output(): string;
}

function pidsIn(text: string): number[] {
  return [...text.matchAll(/(?:pid|bg|trapper|grandchild|escaped)=(\d+)/g)].map((m) => Number(m[1]));
}

/** Every prompt starts by reporting its process groups: the agent runtime's (its parent) and its own. */
const GROUPS_PREAMBLE = 'echo "groups: agent=$PPID harness=$$"\n';

function groupsIn(text: string): number[] {
  const match = /groups: agent=(\d+) harness=(\d+)/.exec(text);
  return match ? [Number(match[1]), Number(match[2])] : [];
}

async function liveHostPid(pid: number): Promise<boolean> {
  return isLive(await readProcStat(pid));
}

async function waitFor(what: string | (() => string), condition: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function describeBackendConformance(name: string, makeBackend: MakeBackend, options: ConformanceOptions = {}): void {
  const hostProcesses = options.hostProcesses ?? name === 'direct';
  const hostWorkspace = options.hostWorkspace ?? name === 'direct';

  describe(`Backend conformance: ${name}`, () => {
    let root: string;
    const backends: Backend[] = [];
    const runs: TaskRun[] = [];

    beforeAll(async () => {
      assertAgentRuntimeBuilt();
      // Short: the gateway socket lives under it and Unix socket paths are limited to 107 bytes.
      root = await mkdtemp(path.join(os.tmpdir(), 'alc-'));
    });

    afterAll(async () => {
      await rm(root, { recursive: true, force: true });
    });

    afterEach(async () => {
      const seen = runs.splice(0);
      for (const run of seen) {
        await run.backend.stop(run.spec.execution_id, 0);
        await run.backend.cleanup(run.spec.execution_id);
        await run.gateway.close();
      }
      for (const backend of backends.splice(0)) await backend.close();
      if (hostProcesses) {
        for (const run of seen) {
          const marked = await findProcessesWithEnv(`AIRLOCK_EXECUTION_ID=${run.spec.execution_id}`);
          expect(marked.map((p) => p.pid), `processes of ${run.spec.execution_id} left running`).toEqual([]);
          for (const pid of pidsIn(run.output())) expect(await liveHostPid(pid), `pid ${pid} reported by the task is still alive`).toBe(false);
          // The process groups of the agent runtime and of the harness's script are gone too.
          for (const group of groupsIn(run.output())) {
            expect((await processGroupMembers(group)).map((p) => p.pid), `process group ${group} still has members`).toEqual([]);
          }
        }
      }
    });

    async function backendFor(noCleanup = false, workspaceRoot = root): Promise<Backend> {
      const backend = await makeBackend({ workspaceRoot, noCleanup });
      await backend.init();
      backends.push(backend);
      return backend;
    }

    async function startTask(backend: Backend, prompt: string): Promise<TaskRun> {
      const spec: ExecutionSpec = {
        execution_id: newId('exe'),
        task_id: newId('tsk'),
        epoch: 1,
        prompt: GROUPS_PREAMBLE + prompt,
        harness: 'shell',
        timeout_seconds: null,
        title: null,
      };
      const events: AgentEvent[] = [];
      const results: AgentResult[] = [];
      const backendOutput: TaskRun['backendOutput'] = [];
      const prepared = await backend.prepare({ spec, workerId: WORKER_ID });
      const token = randomBytes(24).toString('base64url');
      const gateway = new TaskGateway({
        socketPath: prepared.gatewaySocketPath,
        token,
        spec,
        onEvents: async (batch) => {
          events.push(...batch);
        },
        onResult: (result) => {
          results.push(result);
        },
      });
      await gateway.start();
      const partial = { spec, backend, prepared, gateway, events, results, backendOutput };
      const output = () =>
        events
          .filter((e) => e.kind === 'output')
          .map((e) => String(e.data.text))
          .join('');
      const running = await backend.start({
        prepared,
        spec,
        env: {
          AIRLOCK_GATEWAY: `unix:${prepared.gatewaySocketPath}`,
          AIRLOCK_TASK_TOKEN: token,
          AIRLOCK_EXECUTION_ID: spec.execution_id,
          AIRLOCK_WORKDIR: prepared.workdir,
        },
        onOutput: (stream, text) => backendOutput.push({ stream, text }),
      });
      const run: TaskRun = { ...partial, running, output };
      runs.push(run);
      return run;
    }

    async function finish(run: TaskRun): Promise<ExitStatus> {
      return run.running.exited;
    }

    it('runs a shell prompt: its output arrives as events and success is reported', async () => {
      const backend = await backendFor();
      const run = await startTask(backend, 'echo "hello from the task"\necho "to stderr" >&2');
      const status = await finish(run);
      expect(status.exitCode).toBe(0);
      expect(status.failure).toBeUndefined();
      expect(run.output()).toContain('hello from the task\n');
      expect(groupsIn(run.output())).toHaveLength(2);
      expect(run.output()).toContain('to stderr\n');
      expect(run.results).toEqual([{ outcome: 'succeeded', exit_code: 0, summary: null }]);
      expect(run.events.map((e) => e.seq)).toEqual(run.events.map((_, i) => i + 1));
    });

    it('propagates exit codes', async () => {
      const backend = await backendFor();
      const run = await startTask(backend, 'exit 3');
      const status = await finish(run);
      expect(status.exitCode).toBe(3);
      expect(run.results[0]).toMatchObject({ outcome: 'failed', exit_code: 3 });
    });

    it("gives the task a minimal environment: the worker's API key and other variables are absent", async () => {
      const secret = `alk_${'a'.repeat(20)}_${randomBytes(24).toString('hex').slice(0, 32)}`;
      const previous = process.env.AIRLOCK_API_KEY;
      process.env.AIRLOCK_API_KEY = secret;
      process.env.AIRLOCK_CONFORMANCE_CANARY = 'worker-only-value';
      try {
        const backend = await backendFor();
        const run = await startTask(
          backend,
          'env\necho "HOME=$HOME"\ncat /proc/self/environ | tr "\\0" "\\n" | sed "s/^/environ:/"\ntr "\\0" "\\n" < /proc/$PPID/environ | sed "s/^/agent-environ:/"',
        );
        expect((await finish(run)).exitCode).toBe(0);
        const out = run.output();
        expect(out).not.toContain(secret);
        expect(out).not.toContain('AIRLOCK_API_KEY');
        expect(out).not.toContain('worker-only-value');
        // The task token is in no environment, not even the agent's (it arrives on its stdin).
        expect(out).not.toMatch(/AIRLOCK_TASK_TOKEN=/);
        expect(out).toContain('agent-environ:HOME='); // the agent runtime's own environment was inspected too
        const names = new Set([...out.matchAll(/^(?:environ:|agent-environ:)?([A-Za-z_][A-Za-z0-9_]*)=/gm)].map((m) => m[1]!));
        // Nothing of the worker's own environment reaches the task, except names a backend sets itself.
        const backendSet = new Set(['PATH', 'HOME', 'TMPDIR', 'LANG', 'PWD', 'SHLVL', '_', 'HOSTNAME', 'OLDPWD']);
        for (const workerName of Object.keys(process.env)) {
          if (!backendSet.has(workerName) && !workerName.startsWith('AIRLOCK_')) expect(names.has(workerName), `${workerName} leaked into the task`).toBe(false);
        }
        const home = /^HOME=(.*)$/m.exec(out)![1]!;
        expect(home).not.toBe(os.homedir());
        if (hostWorkspace) expect(home.startsWith(root)).toBe(true);
      } finally {
        if (previous === undefined) delete process.env.AIRLOCK_API_KEY;
        else process.env.AIRLOCK_API_KEY = previous;
        delete process.env.AIRLOCK_CONFORMANCE_CANARY;
      }
    });

    it("keeps git's global config inside the task environment, never the host user's ~/.gitconfig", async () => {
      const real = path.join(os.homedir(), '.gitconfig');
      const before = existsSync(real) ? createHash('sha256').update(readFileSync(real)).digest('hex') : 'absent';
      const backend = await backendFor();
      const run = await startTask(
        backend,
        'git config --global user.name "Task Person"\ngit config --global user.name\ngit config --global --list --show-origin | grep user.name',
      );
      expect((await finish(run)).exitCode).toBe(0);
      const out = run.output();
      expect(out).toContain('Task Person\n');
      const origin = /file:(\S+)\s+user\.name=Task Person/.exec(out)?.[1];
      expect(origin).toBeDefined();
      expect(path.resolve(origin!)).not.toBe(real);
      if (hostWorkspace) expect(origin!.startsWith(root)).toBe(true);
      const after = existsSync(real) ? createHash('sha256').update(readFileSync(real)).digest('hex') : 'absent';
      expect(after).toBe(before);
    });

    it('stop() is two-phase: SIGTERM first, then SIGKILL for a child that traps it, and kills background grandchildren', { timeout: 60_000 }, async () => {
      const backend = await backendFor();
      const run = await startTask(
        backend,
        [
          `bash -c 'trap "echo trapper-got-TERM" TERM; echo "trapper=$$"; while :; do sleep 0.1; done' &`,
          'sleep 1000 &',
          'echo "grandchild=$!"',
          'setsid sleep 1001 &',
          'echo "escaped=$!"',
          'wait',
        ].join('\n'),
      );
      await waitFor(() => `the task to report its processes (output so far: ${JSON.stringify(run.output())}, results: ${JSON.stringify(run.results)})`, () => /trapper=\d+/.test(run.output()) && /escaped=\d+/.test(run.output()));
      const pids = pidsIn(run.output());
      expect(pids).toHaveLength(3);
      if (hostProcesses) for (const pid of pids) expect(await liveHostPid(pid)).toBe(true);
      await backend.stop(run.spec.execution_id, STOP_GRACE_MS);
      const status = await finish(run);
      expect(run.output(), JSON.stringify({ status, results: run.results, kinds: run.events.map((e) => e.kind) })).toContain('trapper-got-TERM');
      expect(status.exitCode).not.toBe(0);
      if (hostProcesses) for (const pid of pids) expect(await liveHostPid(pid), `pid ${pid}`).toBe(false);
    });

    it('stop() lets a task that honours SIGTERM finish and report itself cancelled', { timeout: 60_000 }, async () => {
      const backend = await backendFor();
      const run = await startTask(backend, 'echo started\nsleep 1000');
      await waitFor('the task to start', () => run.output().includes('started'));
      await backend.stop(run.spec.execution_id, 20_000);
      const status = await finish(run);
      expect(run.results[0]?.outcome).toBe('cancelled');
      expect(status.exitCode).toBe(143);
    });

    it('cleanup() removes the task environment', async () => {
      const backend = await backendFor();
      const run = await startTask(backend, 'echo data > file.txt');
      expect((await finish(run)).exitCode).toBe(0);
      if (hostWorkspace) expect(existsSync(path.join(run.prepared.workdir, 'file.txt'))).toBe(true);
      await backend.cleanup(run.spec.execution_id);
      if (hostWorkspace) {
        expect(existsSync(run.prepared.workdir)).toBe(false);
        expect(await readdir(root)).not.toContain(run.spec.execution_id);
      }
    });

    it('cleanup() with noCleanup keeps the task environment', async () => {
      const backend = await backendFor(true);
      const run = await startTask(backend, 'echo data > file.txt');
      expect((await finish(run)).exitCode).toBe(0);
      await backend.cleanup(run.spec.execution_id);
      if (hostWorkspace) {
        expect(existsSync(path.join(run.prepared.workdir, 'file.txt'))).toBe(true);
        // A kept environment is not a leftover: a restarted worker does not report it again.
        const fresh = await backendFor(true);
        expect((await fresh.recover(WORKER_ID)).map((l) => l.executionId)).not.toContain(run.spec.execution_id);
        await rm(path.dirname(run.prepared.workdir), { recursive: true, force: true });
      }
    });

    it('recover() on a fresh instance finds an execution left running by a previous one, stops it and reports it', { timeout: 60_000 }, async () => {
      const previous = await backendFor();
      const run = await startTask(previous, 'sleep 1000 &\necho "bg=$!"\necho running\nsleep 1000');
      await waitFor('the task to start', () => run.output().includes('running'));

      const fresh = await backendFor();
      expect(await fresh.recover('some-other-worker')).toEqual([]);
      if (hostProcesses) for (const pid of pidsIn(run.output())) expect(await liveHostPid(pid)).toBe(true);

      const leftovers = await fresh.recover(WORKER_ID);
      const mine = leftovers.filter((l) => l.executionId === run.spec.execution_id);
      expect(mine).toHaveLength(1);
      expect(mine[0]).toMatchObject({ executionId: run.spec.execution_id, epoch: 1, wasRunning: true });
      expect(mine[0]!.detail).toMatch(/running/);
      expect(mine[0]!.detail).toMatch(/SIGKILL|stopped|killed/i);
      await finish(run); // the previous instance sees its agent gone
      if (hostProcesses) for (const pid of pidsIn(run.output())) expect(await liveHostPid(pid)).toBe(false);
      if (hostWorkspace) expect(existsSync(run.prepared.workdir)).toBe(false);
      expect((await fresh.recover(WORKER_ID)).filter((l) => l.executionId === run.spec.execution_id)).toEqual([]);
    });

    it('stop() and cleanup() are idempotent, also after exit and for unknown executions', async () => {
      const backend = await backendFor();
      const run = await startTask(backend, 'true');
      expect((await finish(run)).exitCode).toBe(0);
      await backend.stop(run.spec.execution_id, 1_000);
      await backend.stop(run.spec.execution_id, 0);
      await backend.cleanup(run.spec.execution_id);
      await backend.cleanup(run.spec.execution_id);
      await backend.stop(run.spec.execution_id, 0);
      await backend.stop(newId('exe'), 0);
      await backend.cleanup(newId('exe'));
      if (hostWorkspace) await expect(stat(path.dirname(run.prepared.workdir))).rejects.toThrow(/ENOENT/);
    });
  });
}
