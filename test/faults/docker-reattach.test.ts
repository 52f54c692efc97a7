/**
 * Task containers outlive the worker (docker backend): a worker killed with SIGKILL, or drained
 * with SIGTERM, leaves its running containers alive; restarted with the same id and state, it
 * finds them by label, names them in its hello, serves their task gateway again and finishes
 * them normally — every transcript line exactly once, in order. Containers whose execution the
 * server has ended meanwhile are removed.
 */
import type Dockerode from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { removeLabelled, requireTestEngine, TEST_IMAGE } from '../support/docker.js';
import { eventually, startTestServer, startWorker, stopWorker, waitForTask, type TestServer, type TestWorker } from '../support/stack.js';

const RUN = Math.random().toString(36).slice(2, 8);
let docker: Dockerode;
const workerIds: string[] = [];
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  docker = (await requireTestEngine()).docker;
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

afterAll(async () => {
  for (const id of workerIds) await removeLabelled(docker, `dev.airlock.worker-id=${id}`);
});

async function server(settings = {}): Promise<TestServer> {
  const s = await startTestServer({ settings });
  cleanups.push(() => s.close());
  return s;
}

function dockerWorker(s: TestServer, workerId: string, reuse?: TestWorker): TestWorker {
  if (!workerIds.includes(workerId)) workerIds.push(workerId);
  const w = startWorker(s, {
    workerId,
    args: ['--backend', 'docker', '--default-image', TEST_IMAGE],
    ...(reuse ? { stateDir: reuse.stateDir, workspaceRoot: reuse.workspaceRoot } : {}),
  });
  cleanups.push(() => stopWorker(w));
  return w;
}

/** A task that prints numbered lines for a few seconds: a gap or a repeat in the transcript shows. */
const COUNTING = 'for i in $(seq 1 40); do echo "line $i"; sleep 0.15; done; echo finished';

async function lines(s: TestServer, taskId: string): Promise<string[]> {
  const { body: events } = await s.api(`/api/v1/tasks/${taskId}/events?format=json`);
  const text = (events as any[])
    .filter((e) => e.kind === 'output')
    .map((e) => e.data.text)
    .join('');
  return text.split('\n').filter((l) => /^line \d+$|^finished$/.test(l));
}

async function containerRunning(executionId: string): Promise<boolean> {
  const info = await docker.getContainer(`airlock-${executionId}`).inspect().catch(() => undefined);
  return info?.State.Running === true;
}

describe.each([
  ['SIGKILL', 'killed'],
  ['SIGTERM', 'drained'],
] as const)('docker worker %s mid-task and restarted', (signal, how) => {
  it(`the container keeps running while the worker is ${how}; the restarted worker reattaches and the task finishes with every line exactly once`, async () => {
    const s = await server({ leaseTtlMs: 20_000 });
    const workerId = `rt-${signal.toLowerCase()}-${RUN}`;
    const first = dockerWorker(s, workerId);
    await first.waitForLog(/worker:ws:connected/, 30_000);
    const { body: task } = await s.api('/api/v1/tasks', { body: { prompt: COUNTING, harness: 'shell', worker_id: workerId } });
    const running = await waitForTask(s, task.id, ['running'], 30_000);
    const executionId = running.executions[0].id as string;
    await eventually(async () => (await lines(s, task.id)).length >= 5, 30_000, 'a few lines');
    first.kill(signal);
    await first.exited;
    expect(await containerRunning(executionId)).toBe(true);
    await new Promise((r) => setTimeout(r, 1_000)); // the task goes on printing with nobody listening

    const second = dockerWorker(s, workerId, first);
    await second.waitForLog(/worker:reattached/, 30_000);
    const done = await waitForTask(s, task.id, ['succeeded', 'failed'], 60_000);
    expect(done.state, `${done.message}\nfirst:\n${first.output().split('\n').filter((l) => !/agent runtime output|http:request/.test(l)).slice(-15).join('\n')}\nsecond:\n${second.output().split('\n').filter((l) => !/agent runtime output|http:request/.test(l)).slice(-25).join('\n')}`).toBe('succeeded');
    const seen = await lines(s, task.id);
    expect(seen).toEqual([...Array.from({ length: 40 }, (_, i) => `line ${i + 1}`), 'finished']);
    const { body: events } = await s.api(`/api/v1/tasks/${task.id}/events?format=json`);
    expect((events as any[]).some((e) => e.kind === 'lifecycle' && e.data.phase === 'reattached')).toBe(true);
    await eventually(async () => (await docker.getContainer(`airlock-${executionId}`).inspect().catch(() => null)) === null, 20_000, 'the container to be removed');
  }, 120_000);
});

describe('a container whose execution the server ended while the worker was away', () => {
  it('is stopped and removed when the worker restarts, and the abandon is on the audit trail', async () => {
    const s = await server({ leaseTtlMs: 1_500 });
    const workerId = `rt-lost-${RUN}`;
    const first = dockerWorker(s, workerId);
    await first.waitForLog(/worker:ws:connected/, 30_000);
    const { body: task } = await s.api('/api/v1/tasks', { body: { prompt: 'echo up; sleep 600', harness: 'shell', worker_id: workerId } });
    const running = await waitForTask(s, task.id, ['running'], 30_000);
    const executionId = running.executions[0].id as string;
    await eventually(() => containerRunning(executionId), 30_000, 'the container to run');
    // The agent is under way (it had its token and reported): only then is the worker killed.
    await eventually(async () => (await s.api(`/api/v1/tasks/${task.id}/events?format=json`)).body.some((e: any) => e.kind === 'output' && String(e.data.text).includes('up')), 30_000, 'the task to report');
    first.kill('SIGKILL');
    await first.exited;
    const failed = await waitForTask(s, task.id, ['failed'], 15_000);
    expect(failed.failure_reason).toBe('worker_lost');
    const state = (await docker.getContainer(`airlock-${executionId}`).inspect().catch(() => undefined))?.State;
    const logs = String(await docker.getContainer(`airlock-${executionId}`).logs({ stdout: true, stderr: true }).catch(() => ''));
    expect(state?.Running, `${JSON.stringify(state)} ${logs}`).toBe(true);
    dockerWorker(s, workerId, first);
    await eventually(async () => (await docker.getContainer(`airlock-${executionId}`).inspect().catch(() => null)) === null, 30_000, 'the container to be removed');
    expect((await waitForTask(s, task.id, ['failed'])).failure_reason).toBe('worker_lost');
    // Reported: the server's audit trail records the abandoned execution the worker still ran.
    const audit = await s.server.context.store.listAudit(s.teamId, 50);
    expect(audit.some((a) => a.action === 'worker.execution.abandoned' && a.target === executionId)).toBe(true);
  }, 90_000);
});
