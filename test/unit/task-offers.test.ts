/**
 * What reaches the worker and what comes back, over a real WebSocket against a real server
 * (in-process, real SQLite): the offer's ExecutionSpec carries the resolved recipe (the task
 * size included), working branch, budget, model and push options; execution.finished's artifacts and usage land on the
 * task view, once however often the finish is replayed, and a budget stop is put in words.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExecutionSpec, workingBranch, type TaskView } from '../../src/protocol/task.js';
import { sampleArtifacts } from '../support/artifacts.js';
import { RawWorker } from '../support/raw-worker.js';
import { startTestServer, waitForTask, type TestServer } from '../support/stack.js';

let server: TestServer;
const open: RawWorker[] = [];

beforeAll(async () => {
  server = await startTestServer();
});

afterAll(async () => {
  for (const w of open) w.terminate();
  await server?.close();
});

let counter = 0;

async function worker(): Promise<{ worker: RawWorker; id: string }> {
  const id = `offers-${++counter}`;
  const { worker } = await RawWorker.hello(server.url, server.workerKey, { worker_id: id });
  open.push(worker);
  return { worker, id };
}

async function run(worker: RawWorker, body: Record<string, unknown>): Promise<{ task: TaskView; spec: any }> {
  const created = await server.api('/api/v1/tasks', { body: { prompt: 'fix it', harness: 'shell', ...body } });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const spec = await worker.claimNext();
  expect(spec.task_id).toBe(created.body.id);
  return { task: created.body as TaskView, spec };
}

async function acked(worker: RawWorker, message: Record<string, unknown> & { id: string }): Promise<any> {
  worker.send(message);
  return worker.next('ack', 10_000, (m) => m.id === message.id);
}

describe('offers carry the task’s recipe and options', () => {
  it('sends the resolved recipe, working branch, budget, model, push and pull request', async () => {
    const env = await server.api('/api/v1/environments', {
      body: {
        name: 'offers-env',
        image: 'ghcr.io/acme/dev:1',
        repositories: [{ url: 'https://git.example.com/acme/api.git', ref: 'main' }],
        setup_commands: ['npm ci'],
        setup_timeout_seconds: 120,
        secret_names: ['GH_TOKEN'],
        env_names: ['CI'],
        resources: { cpus: 2, memory: '4g' },
      },
    });
    expect(env.status).toBe(201);
    const { worker: w, id } = await worker();
    const { task, spec } = await run(w, {
      worker_id: id,
      environment_id: env.body.id,
      setup_commands: ['make deps'],
      resources: { memory: '1.5g' },
      budget: { max_turns: 20, max_seconds: 600 },
      model: 'big-model',
      push: true,
      pull_request: { base: 'main', title: 'Fix it' },
    });
    expect(task.resources).toEqual({ cpus: 2, memory: '1.5g' });
    expect(spec).toEqual({
      execution_id: spec.execution_id,
      task_id: task.id,
      epoch: 1,
      prompt: 'fix it',
      harness: 'shell',
      timeout_seconds: null,
      title: null,
      branch: workingBranch(task.id),
      image: 'ghcr.io/acme/dev:1',
      repositories: [{ url: 'https://git.example.com/acme/api.git', ref: 'main' }],
      setup_commands: ['make deps'],
      setup_timeout_seconds: 120,
      secret_names: ['GH_TOKEN'],
      env_names: ['CI'],
      budget: { max_turns: 20, max_seconds: 600 },
      model: 'big-model',
      push: true,
      pull_request: { base: 'main', title: 'Fix it', draft: false },
      // The environment's CPUs, the task's own memory: what the docker backend sizes the container by.
      resources: { cpus: 2, memory: '1.5g' },
    });
    expect(spec.branch).toMatch(/^airlock\/[a-z2-7]{8}$/);
    expect(ExecutionSpec.parse(spec)).toEqual(spec);
  });

  it('sends an inline size without an environment, a byte count as a number', async () => {
    const { worker: w, id } = await worker();
    const { spec } = await run(w, { worker_id: id, resources: { cpus: 0.5, memory: 805_306_368 } });
    expect(spec.resources).toEqual({ cpus: 0.5, memory: 805_306_368 });
    expect(ExecutionSpec.parse(spec).resources).toEqual({ cpus: 0.5, memory: 805_306_368 });
  });

  it('sends empty recipe fields for a plain task', async () => {
    const { worker: w, id } = await worker();
    const { spec } = await run(w, { worker_id: id });
    expect(spec).toMatchObject({ image: null, repositories: [], setup_commands: [], setup_timeout_seconds: null, secret_names: [], env_names: [], budget: null, model: null, push: false, pull_request: null });
    // No size, no field: a worker older than `resources` refuses fields it does not know.
    expect('resources' in spec).toBe(false);
  });
});

describe('execution.finished results', () => {
  it('records artifacts and usage once, even when the finish is replayed with other values', async () => {
    const { worker: w, id } = await worker();
    const { task, spec } = await run(w, { worker_id: id, budget: { max_turns: 20 } });
    expect((await acked(w, { type: 'execution.started', id: 's1', execution_id: spec.execution_id, epoch: spec.epoch })).ok).toBe(true);
    const artifacts = sampleArtifacts({ stop_reason: 'max_turns', branch: spec.branch });
    const finished = { type: 'execution.finished', id: 'f1', execution_id: spec.execution_id, epoch: spec.epoch, outcome: 'succeeded', exit_code: 0, failure_reason: null, message: null, artifacts, usage: { input_tokens: 1000, output_tokens: 200, requests: 7 } };
    expect((await acked(w, finished)).ok).toBe(true);
    expect((await acked(w, { ...finished, id: 'f2', usage: { input_tokens: 1, output_tokens: 1, requests: 1 }, artifacts: sampleArtifacts({ summary: 'replayed' }) })).ok).toBe(true);
    const view = (await waitForTask(server, task.id, ['succeeded'])) as TaskView;
    expect(view.artifacts).toEqual(artifacts);
    expect(view.usage).toEqual({ input_tokens: 1000, output_tokens: 200, requests: 7 });
    expect(view.message).toBe(`stopped at the turn budget (max_turns 20); work so far committed on ${spec.branch} — raise budget.max_turns to let it run further`);
    const diff = await fetch(`${server.url}/api/v1/tasks/${task.id}/diff`, { headers: { authorization: `Bearer ${server.userKey}` } });
    expect(await diff.text()).toBe(artifacts.diff);
  });

  it('fences results: a finish with a stale epoch is lease_lost and records nothing', async () => {
    const { worker: w, id } = await worker();
    const { task, spec } = await run(w, { worker_id: id });
    const stale = await acked(w, { type: 'execution.finished', id: 'x1', execution_id: spec.execution_id, epoch: spec.epoch + 1, outcome: 'succeeded', exit_code: 0, failure_reason: null, message: null, artifacts: sampleArtifacts(), usage: { input_tokens: 5, output_tokens: 5, requests: 1 } });
    expect(stale.error?.code).toBe('lease_lost');
    const view = (await server.api(`/api/v1/tasks/${task.id}`)).body as TaskView;
    expect(view).toMatchObject({ state: 'assigned', artifacts: null, usage: { input_tokens: 0, output_tokens: 0, requests: 0 } });
  });

  it('refuses malformed artifacts as a protocol error', async () => {
    const { worker: w, id } = await worker();
    const { spec } = await run(w, { worker_id: id });
    w.send({ type: 'execution.finished', id: 'bad', execution_id: spec.execution_id, epoch: spec.epoch, outcome: 'succeeded', exit_code: 0, failure_reason: null, message: null, artifacts: { branch: 1 } });
    const error = await w.next('error');
    expect(error.message).toMatch(/artifacts/);
  });
});
