/**
 * Tasks with recipes, budgets and results over a real HTTP API on a real SQLite file: creating a
 * task from an environment with inline overrides (inline wins, field by field, resolved once),
 * unknown and hostile fields, results in the view (latest artifacts, usage summed), and the diff
 * route.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/lib/ids.js';
import { MAX_REPORTED_DIFF_BYTES, type Artifacts, type TaskView } from '../../src/protocol/task.js';
import { budgetStopMessage, capArtifacts, diffDocument } from '../../src/server/dispatch/results.js';
import { taskView } from '../../src/server/http/views.js';
import type { ExecutionRecord } from '../../src/server/store/store.js';
import { expectError, http, type RawResponse } from '../support/http-client.js';
import { sampleArtifacts } from '../support/artifacts.js';
import { createTeam, startExecution, startTestApi, type TestApi, type TestTeam } from '../support/http-context.js';
import { systemClock } from '../../src/lib/clock.js';

let api: TestApi;
let a: TestTeam;
let b: TestTeam;

beforeAll(async () => {
  api = await startTestApi();
  a = await createTeam(api);
  b = await createTeam(api);
});

afterAll(async () => {
  await api?.close();
});

async function environment(team: TestTeam, body: Record<string, unknown>): Promise<string> {
  const res = await http(api.url, '/api/v1/environments', { key: team.keys.member, body: { name: `env-${newId('tsk').slice(4, 14)}`, ...body } });
  expect(res.status, res.text).toBe(201);
  return res.json.id as string;
}

async function createTask(team: TestTeam, body: Record<string, unknown>): Promise<RawResponse> {
  return http(api.url, '/api/v1/tasks', { key: team.keys.member, body: { prompt: 'fix the bug', ...body } });
}

describe('creating a task with a recipe', () => {
  it('takes the environment’s recipe, inline fields replacing it field by field', async () => {
    const envId = await environment(a, {
      image: 'ghcr.io/acme/dev:1',
      repositories: [{ url: 'https://git.example.com/acme/api.git', ref: 'main' }],
      setup_commands: ['npm ci'],
      setup_timeout_seconds: 300,
      secret_names: ['GH_TOKEN'],
      env_names: ['CI'],
    });
    const res = await createTask(a, {
      environment_id: envId,
      setup_commands: ['make deps'],
      env_names: [],
      budget: { max_turns: 20 },
      model: 'big-model',
      push: true,
      pull_request: { draft: true },
    });
    expect(res.status, res.text).toBe(201);
    const view = res.json as TaskView;
    expect(view).toMatchObject({
      environment_id: envId,
      repositories: [{ url: 'https://git.example.com/acme/api.git', ref: 'main' }],
      budget: { max_turns: 20 },
      model: 'big-model',
      push: true,
      artifacts: null,
      usage: { input_tokens: 0, output_tokens: 0, requests: 0 },
    });
    const stored = await api.store.getTask(a.team.id, view.id);
    expect(stored?.recipe).toEqual({
      image: 'ghcr.io/acme/dev:1',
      repositories: [{ url: 'https://git.example.com/acme/api.git', ref: 'main' }],
      setupCommands: ['make deps'],
      setupTimeoutSeconds: 300,
      secretNames: ['GH_TOKEN'],
      envNames: [],
      cpus: null,
      memory: null,
    });
    expect(stored?.pullRequest).toEqual({ draft: true });

    // The recipe was resolved at creation: editing the environment does not change the task.
    const patched = await http(api.url, `/api/v1/environments/${envId}`, { method: 'PATCH', key: a.keys.member, body: { image: 'ghcr.io/acme/dev:2', repositories: [] } });
    expect(patched.status, patched.text).toBe(200);
    expect((await api.store.getTask(a.team.id, view.id))?.recipe.image).toBe('ghcr.io/acme/dev:1');
    expect((await http(api.url, `/api/v1/tasks/${view.id}`, { key: a.keys.member })).json.repositories).toHaveLength(1);
  });

  it('takes an inline recipe without an environment, and defaults everything else to empty', async () => {
    const res = await createTask(a, { repositories: [{ url: '/srv/repos/x' }] });
    expect(res.status, res.text).toBe(201);
    expect(res.json).toMatchObject({ environment_id: null, repositories: [{ url: '/srv/repos/x' }], resources: null, budget: null, model: null, push: false });
  });

  it('takes the environment’s size with an inline field replacing only that field, resolved once', async () => {
    const envId = await environment(a, { resources: { cpus: 2, memory: '4g' } });
    const res = await createTask(a, { environment_id: envId, resources: { memory: '1.5g' } });
    expect(res.status, res.text).toBe(201);
    expect(res.json.resources).toEqual({ cpus: 2, memory: '1.5g' });
    const shown = await http(api.url, `/api/v1/tasks/${res.json.id}`, { key: a.keys.member });
    expect(shown.json.resources).toEqual({ cpus: 2, memory: '1.5g' });
    expect((await api.store.getTask(a.team.id, res.json.id))?.recipe).toMatchObject({ cpus: 2, memory: '1.5g' });
    const listed = ((await http(api.url, '/api/v1/tasks?limit=200', { key: a.keys.member })).json.tasks as TaskView[]).find((t) => t.id === res.json.id);
    expect(listed?.resources).toEqual({ cpus: 2, memory: '1.5g' });

    // Inline CPUs over the environment's, the environment's memory kept; no inline size: the environment's.
    expect((await createTask(a, { environment_id: envId, resources: { cpus: 0.5 } })).json.resources).toEqual({ cpus: 0.5, memory: '4g' });
    expect((await createTask(a, { environment_id: envId, resources: {} })).json.resources).toEqual({ cpus: 2, memory: '4g' });
    expect((await createTask(a, { environment_id: envId })).json.resources).toEqual({ cpus: 2, memory: '4g' });
    // Without an environment, only what is given; a byte count stays a number.
    expect((await createTask(a, { resources: { memory: 536_870_912 } })).json.resources).toEqual({ memory: 536_870_912 });

    // Editing the environment's size later does not change the task.
    const patched = await http(api.url, `/api/v1/environments/${envId}`, { method: 'PATCH', key: a.keys.member, body: { resources: null } });
    expect(patched.status, patched.text).toBe(200);
    expect((await http(api.url, `/api/v1/tasks/${res.json.id}`, { key: a.keys.member })).json.resources).toEqual({ cpus: 2, memory: '1.5g' });
    expect((await createTask(a, { environment_id: envId })).json.resources).toBeNull();
  });

  it('answers 404 naming environment_id for an unknown environment, and for another team’s', async () => {
    const missing = 'env_aaaaaaaaaaaaaaaaaaaa';
    expectError(await createTask(a, { environment_id: missing }), 404, 'not_found', /environment_id: environment "env_a+" was not found in your team/);
    const theirs = await environment(b, {});
    expectError(await createTask(a, { environment_id: theirs }), 404, 'not_found', new RegExp(theirs));
    expect((await http(api.url, '/api/v1/tasks?limit=200', { key: a.keys.member })).json.tasks.some((t: TaskView) => t.environment_id === theirs)).toBe(false);
  });

  it('refuses hostile or malformed fields with 400 naming the field', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ environment_id: '../../etc' }, /environment_id/],
      [{ environment_id: 42 }, /environment_id/],
      [{ repositories: [{ url: 'ext::sh -c reboot' }] }, /repositories/],
      [{ repositories: [{ url: 'file:///etc/passwd' }] }, /repositories.*transport/],
      [{ repositories: [{ url: 'https://user:tok@example.com/x.git' }] }, /credentials/],
      [{ repositories: [{ url: '/srv/x', ref: '--upload-pack=evil' }] }, /ref/],
      [{ secret_names: ['TOKEN=abc'] }, /secret_names.*NAME/],
      [{ image: 'Bad Image' }, /image/],
      [{ budget: { max_turns: 0 } }, /budget\.max_turns/],
      [{ budget: { max_turns: 5, turns: 3 } }, /budget/],
      [{ budget: { max_tokens: 1.5 } }, /budget\.max_tokens/],
      [{ model: '' }, /model/],
      [{ push: 'yes' }, /push/],
      [{ pull_request: { draft: true } }, /pull_request.*push/],
      [{ push: true, pull_request: { base: '-x' } }, /pull_request\.base/],
      [{ harness: 'command:../x' }, /harness/],
      [{ setup_commands: ['x'.repeat(9000)] }, /setup_commands/],
      [{ recipe: {} }, /recipe/],
      [{ resources: { cpus: 0 } }, /resources\.cpus: must be at least 0\.01/],
      [{ resources: { cpus: -1 } }, /resources\.cpus: must be at least 0\.01/],
      [{ resources: { cpus: 'NaN' } }, /resources\.cpus: must be a number of CPUs/],
      [{ resources: { cpus: 100_000 } }, /resources\.cpus: must be at most 256/],
      [{ resources: { memory: '5x' } }, /resources\.memory: must be a size such as "512m"/],
      [{ resources: { memory: 'NaN' } }, /resources\.memory: must be a size/],
      [{ resources: { memory: '1m' } }, /resources\.memory: must be at least 6m/],
      [{ resources: { memory: '99t' } }, /resources\.memory: must be at most 1t/],
      [{ resources: { gpus: 1 } }, /resources: unknown field "gpus"/],
      [{ resources: 'large' }, /resources: must be an object such as/],
    ];
    for (const [body, mentions] of cases) expectError(await createTask(a, body), 400, 'validation', mentions);
  });
});

describe('results on the task view and the diff route', () => {
  async function finishedTask(artifacts: Artifacts | null, usage = { input_tokens: 100, output_tokens: 50, requests: 2 }, body: Record<string, unknown> = {}): Promise<string> {
    const res = await createTask(a, { worker_id: `w-${newId('tsk').slice(4, 12)}`, ...body });
    expect(res.status, res.text).toBe(201);
    const execution = await startExecution(api, a.team.id, res.json.id, res.json.worker_id);
    const result = await api.store.finishExecution({
      executionId: execution.id,
      epoch: execution.epoch,
      workerId: execution.workerId,
      outcome: 'succeeded',
      exitCode: 0,
      failureReason: null,
      message: null,
      now: systemClock.now(),
      artifacts,
      usage,
    });
    expect(result.result).toBe('ok');
    return res.json.id as string;
  }

  it('shows artifacts and usage; the list leaves diffs out', async () => {
    const id = await finishedTask(sampleArtifacts());
    const view = (await http(api.url, `/api/v1/tasks/${id}`, { key: a.keys.member })).json as TaskView;
    expect(view.artifacts).toEqual(sampleArtifacts());
    expect(view.usage).toEqual({ input_tokens: 100, output_tokens: 50, requests: 2 });
    const listed = ((await http(api.url, '/api/v1/tasks?limit=200', { key: a.keys.member })).json.tasks as TaskView[]).find((t) => t.id === id)!;
    expect(listed.artifacts).toMatchObject({ diff: null, commit: 'b'.repeat(40), summary: 'Replaced old with new.' });
    expect(listed.artifacts?.repositories[0]?.diff).toBe('');
    expect(listed.usage).toEqual(view.usage);
  });

  it('serves the diff as text/x-diff, plain and whole', async () => {
    const id = await finishedTask(sampleArtifacts());
    const res = await http(api.url, `/api/v1/tasks/${id}/diff`, { key: a.keys.member });
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/x-diff/);
    expect(res.headers.get('x-airlock-diff-truncated')).toBe('false');
    expect(res.text).toBe(sampleArtifacts().diff);
  });

  it('says when the diff was truncated, in a header and a trailing comment', async () => {
    const cut = sampleArtifacts();
    cut.diff_truncated = true;
    cut.repositories[0]!.diff_truncated = true;
    cut.repositories[0]!.diff_bytes = 999_999;
    const id = await finishedTask(cut);
    const res = await http(api.url, `/api/v1/tasks/${id}/diff`, { key: a.keys.member });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-airlock-diff-truncated')).toBe('true');
    expect(res.text.trimEnd().split('\n').at(-1)).toBe(`# airlock: diff truncated at ${MAX_REPORTED_DIFF_BYTES} bytes of 999999 — the full diff is in the pushed branch, or under the worker's state directory`);
  });

  it('answers 404 with the reason when there is no diff, and for another team’s task', async () => {
    const queued = (await createTask(a, { worker_id: 'nobody' })).json.id as string;
    expectError(await http(api.url, `/api/v1/tasks/${queued}/diff`, { key: a.keys.member }), 404, 'not_found', /has no diff: it is still queued/);
    const unchanged = await finishedTask(sampleArtifacts({ diff: null, commit: null, diffstat: null, repositories: [] }));
    expectError(await http(api.url, `/api/v1/tasks/${unchanged}/diff`, { key: a.keys.member }), 404, 'not_found', /changed no files/);
    const withDiff = await finishedTask(sampleArtifacts());
    expectError(await http(api.url, `/api/v1/tasks/${withDiff}/diff`, { key: b.keys.member }), 404, 'not_found');
    expectError(await http(api.url, '/api/v1/tasks/tsk_nope/diff', { key: a.keys.member }), 404, 'not_found');
  });

  it('caps diffs a worker sent over the reporting limit, at a line end, marking them truncated', () => {
    const line = '+ä'.padEnd(99, 'x') + '\n';
    const huge = 'diff --git a/x b/x\n' + line.repeat(Math.ceil((MAX_REPORTED_DIFF_BYTES * 2) / 100));
    const reported = sampleArtifacts({}, huge);
    const capped = capArtifacts(reported);
    for (const diff of [capped.diff!, capped.repositories[0]!.diff]) {
      expect(Buffer.byteLength(diff)).toBeLessThanOrEqual(MAX_REPORTED_DIFF_BYTES);
      expect(diff.endsWith('\n')).toBe(true);
      expect(huge.startsWith(diff)).toBe(true);
    }
    expect(capped).toMatchObject({ diff_truncated: true, repositories: [{ diff_truncated: true, diff_bytes: Buffer.byteLength(huge) }] });
    const small = sampleArtifacts();
    expect(capArtifacts(small)).toBe(small);
  });

  it('joins several repositories’ diffs, each introduced by a comment line', () => {
    const first = sampleArtifacts();
    const second = { ...first.repositories[0]!, url: '/srv/repos/tools', path: 'tools', diff: 'diff --git a/t b/t\n' };
    const doc = diffDocument({ ...first, repositories: [first.repositories[0]!, second] });
    expect(doc?.text).toBe(`# repository: https://git.example.com/acme/api.git (directory api)\n${first.diff}# repository: /srv/repos/tools (directory tools)\ndiff --git a/t b/t\n`);
  });
});

describe('the task view over several executions', () => {
  const base = { taskId: 'tsk_aaaaaaaaaaaaaaaaaaaa', teamId: 't', workerId: 'w', offerId: 'o', offerDeadline: 0, leaseExpiresAt: null, failureReason: null, message: null, exitCode: null, createdAt: 0, startedAt: null, finishedAt: null };
  const execution = (ordinal: number, artifacts: Artifacts | null, usage: ExecutionRecord['usage']): ExecutionRecord => ({
    ...base,
    id: `exe_${String(ordinal).repeat(20)}`,
    ordinal,
    epoch: ordinal,
    state: 'failed',
    artifacts,
    usage,
  });

  it('shows the latest artifacts that exist and sums usage over every execution', async () => {
    const task = (await api.store.createTask({ id: newId('tsk'), teamId: a.team.id, title: null, prompt: 'p', harness: 'shell', workerId: null, timeoutSeconds: null, now: 1 }));
    const older = sampleArtifacts({ summary: 'older' });
    const newer = sampleArtifacts({ summary: 'newer' });
    const view = taskView(task, [
      execution(3, null, { input_tokens: 1, output_tokens: 1, requests: 1 }),
      execution(2, newer, { input_tokens: 10, output_tokens: 20, requests: 3 }),
      execution(1, older, { input_tokens: 100, output_tokens: 200, requests: 4 }),
    ]);
    expect(view.artifacts?.summary).toBe('newer');
    expect(view.usage).toEqual({ input_tokens: 111, output_tokens: 221, requests: 8 });
    expect(view.executions.map((e) => e.epoch)).toEqual([1, 2, 3]);
  });

  it('words a budget stop with the budget, its limit and where the work is', () => {
    const stopped = sampleArtifacts({ stop_reason: 'max_turns', branch: 'airlock/abcd1234' });
    expect(budgetStopMessage('tsk_abcd1234aaaaaaaaaaaa', { max_turns: 20 }, stopped, null)).toBe(
      'stopped at the turn budget (max_turns 20); work so far committed on airlock/abcd1234 — raise budget.max_turns to let it run further',
    );
    expect(budgetStopMessage('tsk_abcd1234aaaaaaaaaaaa', null, sampleArtifacts({ stop_reason: 'max_seconds', commit: null }), 'ran out')).toBe(
      'stopped at the time budget (max_seconds); nothing was committed — raise budget.max_seconds to let it run further. ran out',
    );
    expect(budgetStopMessage('tsk_abcd1234aaaaaaaaaaaa', { max_turns: 3 }, sampleArtifacts(), null)).toBeUndefined();
  });
});
