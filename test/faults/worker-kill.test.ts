/**
 * Faults from architecture.md §8, with real processes: a worker killed with SIGKILL mid-task, and
 * a server restarted mid-task.
 */
import { findProcessesWithEnv } from '../../src/lib/procfs.js';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, startTestServer, startWorker, stopWorker, tempDir, waitForTask, type TestServer, type TestWorker } from '../support/stack.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function server(settings = {}, dataDir?: string): Promise<TestServer> {
  const s = await startTestServer({ settings, ...(dataDir ? { dataDir } : {}) });
  cleanups.push(() => s.close());
  return s;
}

function worker(s: TestServer, options: Parameters<typeof startWorker>[1] = {}): TestWorker {
  const w = startWorker(s, options);
  cleanups.push(() => stopWorker(w));
  return w;
}

/** Live processes (zombies excluded) started for this execution, found by the mark in their environment. */
async function processesOf(executionId: string) {
  return findProcessesWithEnv(`AIRLOCK_EXECUTION_ID=${executionId}`);
}

async function runningExecution(s: TestServer, taskId: string): Promise<string> {
  const task = await waitForTask(s, taskId, ['running']);
  const executionId = task.executions[0].id as string;
  await eventually(async () => (await processesOf(executionId)).length >= 2, 10_000, 'the task\'s sleep to start');
  return executionId;
}

describe('worker killed with SIGKILL mid-task', () => {
  it('the task fails as worker_lost within a bounded time, and the restarted worker stops and reports the orphan', async () => {
    const s = await server({ leaseTtlMs: 1500 });
    const first = worker(s, { workerId: 'crashy' });
    await first.waitForLog(/worker:ws:connected/);
    const { body: task } = await s.api('/api/v1/tasks', { body: { prompt: 'echo working; sleep 600', harness: 'shell' } });
    const executionId = await runningExecution(s, task.id);
    first.kill('SIGKILL');
    await first.exited;
    const killedAt = Date.now();
    const failed = await waitForTask(s, task.id, ['failed'], 10_000);
    const detectedIn = Date.now() - killedAt;
    expect(failed.failure_reason).toBe('worker_lost');
    expect(failed.message).toMatch(/crashy/);
    // lease 1.5 s, sweep every ≤ 1 s: never more than lease + sweep period + slack
    expect(detectedIn).toBeLessThan(6_000);
    // The task's processes outlived the worker: that is the orphan.
    expect((await processesOf(executionId)).length).toBeGreaterThan(0);
    const second = worker(s, { workerId: 'crashy', stateDir: first.stateDir, workspaceRoot: first.workspaceRoot });
    await second.waitForLog(/worker:leftover:found/);
    await eventually(async () => (await processesOf(executionId)).length === 0, 10_000, 'the orphaned processes to be stopped');
    await second.waitForLog(/worker:ws:connected/);
    // The task stays failed (worker_lost), and the leftover is on the audit trail.
    const after = await waitForTask(s, task.id, ['failed']);
    expect(after.failure_reason).toBe('worker_lost');
    const audit = await s.server.context.store.listAudit(s.teamId, 50);
    expect(audit.some((a) => a.action === 'worker.leftover' && a.target === failed.executions[0].id)).toBe(true);
  });

  it('a worker restarted before its lease expires reports the orphan and the task fails as orphaned', async () => {
    const s = await server({ leaseTtlMs: 20_000 });
    const first = worker(s, { workerId: 'quick' });
    await first.waitForLog(/worker:ws:connected/);
    const { body: task } = await s.api('/api/v1/tasks', { body: { prompt: 'sleep 600', harness: 'shell' } });
    const executionId = await runningExecution(s, task.id);
    first.kill('SIGKILL');
    await first.exited;
    worker(s, { workerId: 'quick', stateDir: first.stateDir, workspaceRoot: first.workspaceRoot });
    const failed = await waitForTask(s, task.id, ['failed'], 10_000);
    expect(failed.failure_reason).toBe('orphaned');
    expect(failed.message).toMatch(/left over/);
    expect(await processesOf(executionId)).toEqual([]);
  });
});

describe('server restarted mid-task', () => {
  it('the worker reconnects, the task completes, and the transcript has every event exactly once, in order', async () => {
    const dataDir = tempDir('srvr');
    const s = await server({ leaseTtlMs: 5000 }, dataDir);
    const w = worker(s, { workerId: 'steady' });
    await w.waitForLog(/worker:ws:connected/);
    const prompt = 'for i in $(seq 1 40); do echo "line $i"; sleep 0.1; done';
    const { body: task } = await s.api('/api/v1/tasks', { body: { prompt, harness: 'shell' } });
    await waitForTask(s, task.id, ['running']);
    await new Promise((r) => setTimeout(r, 1000));
    await s.restart();
    const done = await waitForTask(s, task.id, ['succeeded'], 30_000);
    expect(done.state).toBe('succeeded');
    const { body: events } = await s.api(`/api/v1/tasks/${task.id}/events?format=json`);
    const seqs = events.map((e: any) => e.seq);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    const lines = events
      .filter((e: any) => e.kind === 'output')
      .map((e: any) => e.data.text)
      .join('')
      .split('\n')
      .filter(Boolean);
    expect(lines).toEqual(Array.from({ length: 40 }, (_, i) => `line ${i + 1}`));
    expect(w.output()).toMatch(/worker:ws:reconnecting/);
  });
});

describe('worker stopped with SIGTERM mid-task (drain)', () => {
  it('takes no new work, lets the running task finish, delivers its reports, and exits 0', async () => {
    const s = await server({ leaseTtlMs: 5000 });
    const w = worker(s, { workerId: 'drainer' });
    await w.waitForLog(/worker:ws:connected/);
    const { body: running } = await s.api('/api/v1/tasks', { body: { prompt: 'sleep 2; echo finished after drain started', harness: 'shell' } });
    await waitForTask(s, running.id, ['running']);
    w.kill('SIGTERM');
    await w.waitForLog(/worker:draining/);
    const { body: later } = await s.api('/api/v1/tasks', { body: { prompt: 'echo should wait', harness: 'shell' } });
    expect(await w.exited).toBe(0);
    const done = await waitForTask(s, running.id, ['succeeded']);
    const { body: events } = await s.api(`/api/v1/tasks/${done.id}/events?format=json`);
    expect(JSON.stringify(events)).toContain('finished after drain started');
    // the task created during the drain was not taken: it waits for another worker
    expect((await s.api(`/api/v1/tasks/${later.id}`)).body.state).toBe('queued');
  });
});
