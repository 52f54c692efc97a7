/**
 * The whole loop on one machine: a real server, a real worker process on the direct backend, the
 * real agent runtime running the shell harness, transcripts over SSE.
 */
import { existsSync, readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectSse } from '../support/sse.js';
import { eventually, startTestServer, startWorker, stopWorker, waitForTask, type TestServer, type TestWorker } from '../support/stack.js';

let server: TestServer;
let worker: TestWorker;
const SECRET = 'hunter2-very-secret-value';

beforeAll(async () => {
  server = await startTestServer({ settings: { cancelGraceMs: 1000 } });
  worker = startWorker(server, {
    args: ['--concurrency', '3', '-e', 'GREETING=hello', '-e', 'DEPLOY_TOKEN'],
    env: { DEPLOY_TOKEN: SECRET },
  });
  await worker.waitForLog(/worker:ws:connected/);
});

afterAll(async () => {
  await stopWorker(worker);
  await server.close();
});

async function createTask(body: Record<string, unknown>) {
  const { status, body: task } = await server.api('/api/v1/tasks', { body: { harness: 'shell', ...body } });
  expect(status, JSON.stringify(task)).toBe(201);
  return task;
}

function outputOf(events: Array<{ kind: string; data: any }>, stream = 'stdout'): string {
  return events
    .filter((e) => e.kind === 'output' && e.data.stream === stream)
    .map((e) => e.data.text)
    .join('');
}

describe('a task on the direct backend', () => {
  it('runs, streams its output live over SSE, and succeeds', async () => {
    const task = await createTask({ prompt: 'echo "hello from $GREETING"; echo oops >&2; exit 0', worker_id: 'w1' });
    expect(task.state).toBe('queued');
    const messages = await collectSse(`${server.url}/api/v1/tasks/${task.id}/events`, server.userKey);
    const transcript = messages.filter((m) => m.event === 'transcript').map((m) => JSON.parse(m.data));
    expect(outputOf(transcript)).toContain('hello from hello');
    expect(outputOf(transcript, 'stderr')).toContain('oops');
    // ids are strictly increasing positions, each event once
    const seqs = transcript.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(messages.at(-1)?.event).toBe('end');
    const done = await waitForTask(server, task.id, ['succeeded']);
    expect(done.exit_code).toBe(0);
    expect(done.executions).toHaveLength(1);
    expect(done.executions[0].worker_id).toBe('w1');
  });

  it('fails with exit_code and a message when the script exits non-zero', async () => {
    const task = await createTask({ prompt: 'echo about to fail; exit 3' });
    const done = await waitForTask(server, task.id, ['failed']);
    expect(done.failure_reason).toBe('exit_code');
    expect(done.exit_code).toBe(3);
    expect(done.message).toMatch(/status 3/);
  });

  it('gives the task only a minimal environment: no worker API key, its own HOME, and -e variables', async () => {
    const task = await createTask({ prompt: 'env | sort; echo "home=$HOME"; git config --global user.name' });
    await waitForTask(server, task.id, ['succeeded', 'failed']);
    const { body: events } = await server.api(`/api/v1/tasks/${task.id}/events?format=json`);
    const out = outputOf(events);
    expect(out).not.toContain('AIRLOCK_API_KEY');
    expect(out).not.toContain(server.workerKey);
    expect(out).toContain('GREETING=hello');
    expect(out).toMatch(new RegExp(`home=${worker.workspaceRoot}/exe_`));
  });

  it("gives a task whose recipe names variables exactly those, and fails one naming a variable the worker lacks", async () => {
    const named = await createTask({ prompt: 'echo "greeting=${GREETING:-unset} token=${DEPLOY_TOKEN:-unset}"', env_names: ['GREETING'] });
    await waitForTask(server, named.id, ['succeeded']);
    const { body: events } = await server.api(`/api/v1/tasks/${named.id}/events?format=json`);
    expect(outputOf(events)).toContain('greeting=hello token=unset');

    const missing = await createTask({ prompt: 'echo should not run', secret_names: ['DEPLOY_TOKEN', 'NPM_TOKEN'] });
    const failed = await waitForTask(server, missing.id, ['failed']);
    expect(failed.failure_reason).toBe('rejected');
    expect(failed.message).toMatch(/no task variable NPM_TOKEN, which the task's environment asks for — give the worker -e NPM_TOKEN/);
  });

  it('redacts secret values (and their encodings) before they leave the worker', async () => {
    const task = await createTask({
      prompt: 'echo "plain: $DEPLOY_TOKEN"; printf %s "$DEPLOY_TOKEN" | base64; echo done',
    });
    await waitForTask(server, task.id, ['succeeded']);
    const { body: events } = await server.api(`/api/v1/tasks/${task.id}/events?format=json`);
    const text = JSON.stringify(events);
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(Buffer.from(SECRET).toString('base64'));
    expect(outputOf(events)).toContain('[REDACTED:DEPLOY_TOKEN]');
  });

  it('cancels a running task: the process group is killed and the task ends cancelled', async () => {
    const task = await createTask({ prompt: 'trap "" TERM; echo started; sleep 300 & wait' });
    await eventually(async () => {
      const { body } = await server.api(`/api/v1/tasks/${task.id}/events?format=json`);
      return outputOf(body).includes('started');
    });
    const { status, body } = await server.api(`/api/v1/tasks/${task.id}/cancel`, { method: 'POST' });
    expect(status).toBe(200);
    expect(body.cancel_requested).toBe(true);
    const done = await waitForTask(server, task.id, ['cancelled']);
    expect(done.executions[0].state).toBe('cancelled');
    // the workspace is removed afterwards
    await eventually(() => !existsSync(`${worker.workspaceRoot}/${done.executions[0].id}`));
  });

  it('cancels a queued task at once', async () => {
    const task = await createTask({ prompt: 'echo never', worker_id: 'nobody' });
    const { body } = await server.api(`/api/v1/tasks/${task.id}/cancel`, { method: 'POST' });
    expect(body.state).toBe('cancelled');
  });

  it('fails a task that runs past its timeout with reason timeout', async () => {
    const task = await createTask({ prompt: 'sleep 300', timeout_seconds: 1 });
    const done = await waitForTask(server, task.id, ['failed']);
    expect(done.failure_reason).toBe('timeout');
    expect(done.message).toMatch(/timeout of 1 s/);
  });

  it('delivers follow-up messages to the running task', async () => {
    const task = await createTask({ prompt: 'sleep 2; echo finished' });
    await waitForTask(server, task.id, ['running']);
    const { status, body } = await server.api(`/api/v1/tasks/${task.id}/messages`, { body: { text: 'please hurry' } });
    expect(status).toBe(202);
    expect(body.delivered).toBe(true);
    await waitForTask(server, task.id, ['succeeded']);
    const { body: events } = await server.api(`/api/v1/tasks/${task.id}/events?format=json`);
    expect(events.some((e: any) => e.kind === 'message' && JSON.stringify(e.data).includes('please hurry'))).toBe(true);
  });

  it('lists the worker as connected', async () => {
    const { body } = await server.api('/api/v1/workers');
    expect(body.workers).toEqual([expect.objectContaining({ worker_id: 'w1', connected: true, backend: 'direct' })]);
  });

  it('leaves no workspace behind', async () => {
    await eventually(() => !existsSync(worker.workspaceRoot) || readdirSync(worker.workspaceRoot).length === 0, 10_000, 'workspaces removed');
  });
});
