/**
 * The Docker Engine restarted while a task runs. Restarting the engine every other test uses
 * would kill their containers, so this file runs a second, private dockerd (its own socket, data
 * root, exec root and bridge) with the test image loaded into it, and points a worker at it with
 * DOCKER_HOST. Without live-restore the restart stops the task's container: the worker must wait
 * for the engine, reconnect, and report what happened — not hang, not claim success.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireTestEngine, TEST_IMAGE } from '../support/docker.js';
import { eventually, startTestServer, startWorker, stopWorker, waitForTask, type TestServer } from '../support/stack.js';

const BRIDGE = `alk${process.pid % 100000}`;
const root = mkdtempSync('/tmp/alk-engine-');
const socket = join(root, 'docker.sock');
let engine: ChildProcess | undefined;
let server: TestServer;

function startEngine(): ChildProcess {
  const child = spawn(
    'dockerd',
    [
      '--host',
      `unix://${socket}`,
      '--data-root',
      join(root, 'data'),
      '--exec-root',
      join(root, 'exec'),
      '--pidfile',
      join(root, 'docker.pid'),
      '--bridge',
      BRIDGE,
      '--iptables=false',
      '--ip-masq=false',
    ],
    { stdio: ['ignore', logFd(), logFd()] },
  );
  return child;
}

async function stopEngine(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!engine || engine.exitCode !== null || engine.signalCode !== null) return;
  const exited = new Promise((resolve) => engine!.once('exit', resolve));
  engine.kill(signal);
  await exited;
}

/** The private engine's own log, for a failing run's reader. */
const logFd = () => openSync(join(root, 'dockerd.log'), 'a');

/** The private engine's containerd outlives a killed dockerd (and would confuse the next one): kill it too. */
function killContainerd(): void {
  const pidFile = join(root, 'exec', 'containerd', 'containerd.pid');
  try {
    process.kill(Number(readFileSync(pidFile, 'utf8').trim()), 'SIGKILL');
  } catch {
    /* not running */
  }
  rmSync(pidFile, { force: true });
}

const privateEngine = () => new Dockerode({ socketPath: socket });

beforeAll(async () => {
  await requireTestEngine();
  // A bridge of its own: the private engine must never touch the shared engine's docker0.
  execFileSync('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
  execFileSync('ip', ['addr', 'add', '10.213.0.1/24', 'dev', BRIDGE]);
  execFileSync('ip', ['link', 'set', BRIDGE, 'up']);
  engine = startEngine();
  await eventually(async () => privateEngine().ping().then(() => true, () => false), 30_000, 'the private dockerd');
  execFileSync('bash', ['-c', `docker save ${TEST_IMAGE} | DOCKER_HOST=unix://${socket} docker load -q`], { stdio: 'ignore' });
  server = await startTestServer();
}, 120_000);

afterAll(async () => {
  await server?.close();
  const docker = privateEngine();
  for (const c of await docker.listContainers({ all: true }).catch(() => [])) await docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined);
  await stopEngine();
  killContainerd();
  try {
    execFileSync('ip', ['link', 'del', BRIDGE]);
  } catch {
    /* already gone */
  }
  // dockerd leaves its data root bind-mounted on itself: unmount what is under root, deepest first.
  const mounts = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1] ?? '')
    .filter((target) => target.startsWith(`${root}/`))
    .sort()
    .reverse();
  for (const target of mounts) {
    try {
      execFileSync('umount', ['--lazy', target]); // lazy: a mount still busy for a moment goes when released
    } catch {
      /* already gone */
    }
  }
  rmSync(root, { recursive: true, force: true });
}, 60_000);

describe('the Docker Engine restarted while a task runs', () => {
  it('the worker waits for the engine, reconnects, and reports the stopped container truthfully', async () => {
    const workerId = `engine-${process.pid}`;
    const worker = startWorker(server, { workerId, args: ['--backend', 'docker', '--default-image', TEST_IMAGE], env: { DOCKER_HOST: `unix://${socket}` } });
    try {
      await worker.waitForLog(/worker:ws:connected/, 30_000);
      const { body: task } = await server.api('/api/v1/tasks', { body: { harness: 'shell', worker_id: workerId, prompt: 'echo up; sleep 600' } });
      const running = await waitForTask(server, task.id, ['running'], 30_000);
      const executionId = running.executions[0].id as string;
      await eventually(async () => (await privateEngine().getContainer(`airlock-${executionId}`).inspect().catch(() => undefined))?.State.Running, 30_000, 'the container to run');
      // The agent is under way (the worker is watching the container, not still starting it).
      await eventually(async () => (await server.api(`/api/v1/tasks/${task.id}/events?format=json`)).body.some((e: any) => e.kind === 'output' && String(e.data.text).includes('up')), 30_000, 'the task to report');

      // A crash, not a clean stop: dockerd is killed, and on restart (without live-restore) it stops
      // the containers it finds running.
      await stopEngine('SIGKILL');
      killContainerd();
      const gone = await privateEngine().ping().then(() => 'still answers', (e: Error) => e.message);
      await worker.waitForLog(/lost the Docker Engine while waiting for a container/, 30_000).catch((err: Error) => {
        throw new Error(`${err.message}\nengine after the kill: ${gone}`);
      });
      rmSync(join(root, 'docker.pid'), { force: true }); // a killed dockerd leaves its pid file behind
      engine = startEngine();
      await worker.waitForLog(/the Docker Engine answers again/, 60_000).catch((err: Error) => {
        throw new Error(`${err.message}\nprivate dockerd log:\n${readFileSync(join(root, 'dockerd.log'), 'utf8').slice(-3000)}`);
      });

      const done = await waitForTask(server, task.id, ['failed', 'succeeded'], 60_000);
      expect(done.state).toBe('failed');
      expect(done.failure_reason).toBe('backend');
      expect(done.message).toMatch(/the Docker Engine restarted while the task ran and its container was stopped/);
      // The worker is fine: the next task runs on the engine that came back.
      const { body: next } = await server.api('/api/v1/tasks', { body: { harness: 'shell', worker_id: workerId, prompt: 'echo after-restart' } });
      expect((await waitForTask(server, next.id, ['succeeded', 'failed'], 60_000)).state).toBe('succeeded');
    } finally {
      await stopWorker(worker);
    }
  }, 240_000);
});
