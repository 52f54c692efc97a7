/**
 * The REST API's contract, over real HTTP against a real SQLite store: every endpoint's status
 * codes and shapes, team scoping, authentication and roles, and hostile input (every error is
 * the JSON error shape, with the status and the words the contract promises).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_PROMPT_BYTES, MAX_REQUEST_BODY_BYTES, TaskView } from '../../src/protocol/task.js';
import { http, type RawResponse } from '../support/http-client.js';
import { createTeam, finishExecution, startExecution, startTestApi, type TestApi, type TestTeam } from '../support/http-context.js';

let api: TestApi;
let a: TestTeam;
let b: TestTeam;

beforeAll(async () => {
  api = await startTestApi();
  a = await createTeam(api, 'team-a');
  b = await createTeam(api, 'team-b');
});

afterAll(async () => {
  await api?.close();
});

function expectError(res: RawResponse, status: number, code: string, mentions?: RegExp): void {
  expect(res.status, JSON.stringify(res.json)).toBe(status);
  expect(Object.keys(res.json)).toEqual(['error']);
  expect(Object.keys(res.json.error).sort()).toEqual(['code', 'message']);
  expect(res.json.error.code).toBe(code);
  expect(typeof res.json.error.message).toBe('string');
  if (mentions) expect(res.json.error.message).toMatch(mentions);
}

async function createTask(key: string, body: Record<string, unknown> = { prompt: 'echo hello' }) {
  const res = await http(api.url, '/api/v1/tasks', { key, body });
  expect(res.status, res.text).toBe(201);
  return res.json as TaskView;
}

describe('operations endpoints', () => {
  it('answers /healthz and /readyz without a key', async () => {
    expect(await http(api.url, '/healthz')).toMatchObject({ status: 200, json: { status: 'ok' } });
    expect(await http(api.url, '/readyz')).toMatchObject({ status: 200, json: { status: 'ok' } });
  });

  it('reports task counts by state and the queue depth on /metrics, refreshed at scrape', async () => {
    const separate = await startTestApi();
    try {
      const team = await createTeam(separate, 'metrics');
      for (let i = 0; i < 3; i++) await http(separate.url, '/api/v1/tasks', { key: team.keys.member, body: { prompt: 'true' } });
      const res = await http(separate.url, '/metrics');
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(res.text).toMatch(/^airlock_tasks\{state="queued"\} 3$/m);
      expect(res.text).toMatch(/^airlock_tasks\{state="running"\} 0$/m);
      expect(res.text).toMatch(/^airlock_queue_depth 3$/m);
    } finally {
      await separate.close();
    }
  });

  it('is not ready (503, Retry-After) when the store does not answer, and leaks no driver detail', async () => {
    const broken = await startTestApi();
    try {
      await broken.store.close();
      const res = await http(broken.url, '/readyz');
      expectError(res, 503, 'retryable', /store does not answer/);
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect((await http(broken.url, '/healthz')).status).toBe(200);
    } finally {
      await broken.close().catch(() => undefined);
    }
  });

  it('turns an unexpected failure into 500 with a request id and no internals', async () => {
    const broken = await startTestApi();
    try {
      const team = await createTeam(broken, 'broken');
      await broken.store.close();
      // The authenticator itself now fails: still our JSON shape, still no driver message.
      const res = await http(broken.url, '/api/v1/tasks', { key: team.keys.member });
      expectError(res, 500, 'internal', /request req_[a-z2-7]{12}/);
      expect(res.text).not.toMatch(/destroy|sqlite|kysely|stack|at /i);
    } finally {
      await broken.close().catch(() => undefined);
    }
  });
});

describe('POST /api/v1/tasks', () => {
  it('creates a queued task: 201, Location, the TaskView, a wake-up and an audit entry', async () => {
    const wakesBefore = api.dispatch.wakes.length;
    const res = await http(api.url, '/api/v1/tasks', {
      key: a.keys.member,
      body: { prompt: 'echo hi', title: 'greet', timeout_seconds: 60, worker_id: 'w-1' },
    });
    expect(res.status).toBe(201);
    const task = TaskView.parse(res.json);
    expect(task).toMatchObject({
      title: 'greet',
      state: 'queued',
      prompt: 'echo hi',
      harness: 'builtin',
      worker_id: 'w-1',
      timeout_seconds: 60,
      failure_reason: null,
      cancel_requested: false,
      executions: [],
    });
    expect(task.id).toMatch(/^tsk_[a-z2-7]{20}$/);
    expect(new Date(task.created_at).toISOString()).toBe(task.created_at);
    expect(res.headers.get('location')).toBe(`/api/v1/tasks/${task.id}`);
    expect(api.dispatch.wakes.slice(wakesBefore)).toEqual(['task created']);
    const audit = await api.store.listAudit(a.team.id, 50);
    expect(audit.find((e) => e.target === task.id)).toMatchObject({ action: 'task.create', actor: `key:${a.keyIds.member}` });
  });

  it('accepts admin keys too, and applies the default harness', async () => {
    const task = await createTask(a.keys.admin, { prompt: 'true' });
    expect(task.harness).toBe('builtin');
  });

  it('refuses a prompt over MAX_PROMPT_BYTES with 413 naming the limit', async () => {
    const res = await http(api.url, '/api/v1/tasks', { key: a.keys.member, body: { prompt: 'x'.repeat(MAX_PROMPT_BYTES + 1) } });
    expectError(res, 413, 'payload_too_large', /256 KiB/);
    // Exactly at the limit is fine.
    expect((await http(api.url, '/api/v1/tasks', { key: a.keys.member, body: { prompt: 'x'.repeat(MAX_PROMPT_BYTES) } })).status).toBe(201);
  });

  it('counts the prompt limit in UTF-8 bytes, not characters', async () => {
    const res = await http(api.url, '/api/v1/tasks', { key: a.keys.member, body: { prompt: 'é'.repeat(MAX_PROMPT_BYTES / 2 + 1) } });
    expectError(res, 413, 'payload_too_large', /256 KiB/);
  });

  it('refuses a 5 MiB body with 413 naming the 1 MiB request limit', async () => {
    const res = await http(api.url, '/api/v1/tasks', { key: a.keys.member, body: { prompt: 'x'.repeat(5 * 1024 * 1024) } });
    expectError(res, 413, 'payload_too_large', /1 MiB/);
    expect(res.json.error.message).toContain(String(MAX_REQUEST_BODY_BYTES));
  });

  it.each([
    ['malformed JSON', '{"prompt": "echo', /not valid JSON/],
    ['a JSON string', '"echo hi"', /expected object/],
    ['an empty body', '', /empty/],
  ])('refuses %s with 400 validation', async (_what, rawBody, mentions) => {
    const res = await http(api.url, '/api/v1/tasks', { key: a.keys.member, rawBody, headers: { 'content-type': 'application/json' } });
    expectError(res, 400, 'validation', mentions);
  });

  it('refuses a body that is not JSON with 415', async () => {
    const res = await http(api.url, '/api/v1/tasks', { key: a.keys.member, rawBody: 'echo hi', headers: { 'content-type': 'text/plain' } });
    expectError(res, 415, 'validation', /application\/json/);
    const form = await http(api.url, '/api/v1/tasks', { key: a.keys.member, rawBody: 'prompt=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expectError(form, 415, 'validation');
  });

  it('refuses prototype-poisoning JSON', async () => {
    const res = await http(api.url, '/api/v1/tasks', {
      key: a.keys.member,
      rawBody: '{"prompt":"x","__proto__":{"admin":true}}',
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(400);
    expect(res.json.error.code).toBe('validation');
  });

  it.each([
    [{ prompt: 'x', promt: 'typo' }, 'promt', /unknown field "promt"/],
    [{ prompt: 42 }, 'prompt', /prompt: expected string/],
    [{}, 'prompt', /prompt: expected string/],
    [{ prompt: '' }, 'prompt', /prompt/],
    [{ prompt: 'x', harness: 'bash' }, 'harness', /harness/],
    [{ prompt: 'x', timeout_seconds: 1.5 }, 'timeout_seconds', /timeout_seconds/],
    [{ prompt: 'x', timeout_seconds: 0 }, 'timeout_seconds', /timeout_seconds/],
    [{ prompt: 'x', worker_id: '../etc' }, 'worker_id', /worker_id/],
    [{ prompt: 'x', title: 'x'.repeat(201) }, 'title', /title/],
  ])('refuses %j with 400 naming the field', async (body, field, mentions) => {
    const res = await http(api.url, '/api/v1/tasks', { key: a.keys.member, body });
    expectError(res, 400, 'validation', mentions);
    expect(res.json.error.message).toContain(field);
  });
});

describe('authentication and roles', () => {
  it('answers 401 with WWW-Authenticate when the key is missing, malformed, unknown or revoked', async () => {
    const missing = await http(api.url, '/api/v1/tasks');
    expectError(missing, 401, 'unauthenticated', /Authorization: Bearer/);
    expect(missing.headers.get('www-authenticate')).toBe('Bearer');

    expectError(await http(api.url, '/api/v1/tasks', { headers: { authorization: `Basic ${a.keys.member}` } }), 401, 'unauthenticated', /Bearer <key>/);
    expectError(await http(api.url, '/api/v1/tasks', { key: 'not-a-key' }), 401, 'unauthenticated', /not valid/);
    const forged = a.keys.member.slice(0, -4) + (a.keys.member.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    expectError(await http(api.url, '/api/v1/tasks', { key: forged }), 401, 'unauthenticated');

    const team = await createTeam(api);
    expect((await http(api.url, '/api/v1/tasks', { key: team.keys.member })).status).toBe(200);
    await api.store.revokeApiKey(team.team.id, team.keyIds.member, Date.now());
    expectError(await http(api.url, '/api/v1/tasks', { key: team.keys.member }), 401, 'unauthenticated');
  });

  it('checks the key before reading the body (a 5 MiB anonymous upload is refused as 401)', async () => {
    const res = await http(api.url, '/api/v1/tasks', { body: { prompt: 'x'.repeat(5 * 1024 * 1024) } });
    expectError(res, 401, 'unauthenticated');
  });

  it('forbids worker keys on every user endpoint (403)', async () => {
    const task = await createTask(a.keys.member);
    const calls: Array<[string, string, unknown?]> = [
      ['GET', '/api/v1/tasks'],
      ['POST', '/api/v1/tasks', { prompt: 'x' }],
      ['GET', `/api/v1/tasks/${task.id}`],
      ['POST', `/api/v1/tasks/${task.id}/cancel`],
      ['POST', `/api/v1/tasks/${task.id}/messages`, { text: 'hi' }],
      ['GET', `/api/v1/tasks/${task.id}/events?format=json`],
      ['GET', '/api/v1/workers'],
    ];
    for (const [method, path, body] of calls) {
      expectError(await http(api.url, path, { method, key: a.keys.worker, body }), 403, 'forbidden', /worker key/);
    }
    expect((await http(api.url, `/api/v1/tasks/${task.id}`, { key: a.keys.member })).json.state).toBe('queued');
  });
});

describe('GET /api/v1/tasks/:id', () => {
  it('shows the task with its executions', async () => {
    const task = await createTask(a.keys.member, { prompt: 'echo run' });
    const execution = await startExecution(api, a.team.id, task.id);
    await finishExecution(api, execution, 'failed', { exitCode: 3, message: 'the shell script exited with status 3' });
    const res = await http(api.url, `/api/v1/tasks/${task.id}`, { key: a.keys.admin });
    expect(res.status).toBe(200);
    const view = TaskView.parse(res.json);
    expect(view).toMatchObject({ state: 'failed', failure_reason: 'exit_code', exit_code: 3, message: 'the shell script exited with status 3' });
    expect(view.executions).toHaveLength(1);
    expect(view.executions[0]).toMatchObject({ id: execution.id, worker_id: 'w1', epoch: execution.epoch, state: 'failed', exit_code: 3 });
    expect(view.started_at).not.toBeNull();
    expect(view.finished_at).not.toBeNull();
  });

  it("answers 404 for another team's task and for malformed ids, never 403", async () => {
    const task = await createTask(a.keys.member);
    for (const [path, body] of [
      [`/api/v1/tasks/${task.id}`, undefined],
      [`/api/v1/tasks/${task.id}/cancel`, undefined],
      [`/api/v1/tasks/${task.id}/messages`, { text: 'hi' }],
      [`/api/v1/tasks/${task.id}/events`, undefined],
    ] as const) {
      const method = path.endsWith('cancel') || path.endsWith('messages') ? 'POST' : 'GET';
      expectError(await http(api.url, path, { method, key: b.keys.member, body }), 404, 'not_found', /not found/);
    }
    for (const id of ['nope', 'tsk_short', `tsk_${'A'.repeat(20)}`, `tsk_${'a'.repeat(20)}x`, '%2e%2e']) {
      expectError(await http(api.url, `/api/v1/tasks/${id}`, { key: a.keys.member }), 404, 'not_found');
    }
    // A well-formed id nobody has: the same answer.
    expectError(await http(api.url, `/api/v1/tasks/tsk_${'a'.repeat(20)}`, { key: a.keys.member }), 404, 'not_found');
    // Team B's view of its own tasks does not include it.
    const list = await http(api.url, '/api/v1/tasks?limit=200', { key: b.keys.member });
    expect(list.json.tasks.map((t: TaskView) => t.id)).not.toContain(task.id);
  });
});

describe('GET /api/v1/tasks', () => {
  it('pages newest first with next_cursor until null, each task exactly once', async () => {
    const team = await createTeam(api);
    const created: string[] = [];
    for (let i = 0; i < 5; i++) created.push((await createTask(team.keys.member, { prompt: `echo ${i}` })).id);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await http(api.url, `/api/v1/tasks?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { key: team.keys.member });
      expect(res.status).toBe(200);
      expect(Object.keys(res.json).sort()).toEqual(['next_cursor', 'tasks']);
      for (const t of res.json.tasks) seen.push(TaskView.parse(t).id);
      cursor = res.json.next_cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual([...created].reverse());
  });

  it('defaults to 50 per page and filters by state and worker_id', async () => {
    const team = await createTeam(api);
    const routed = await createTask(team.keys.member, { prompt: 'x', worker_id: 'gpu-1' });
    const other = await createTask(team.keys.member, { prompt: 'y' });
    await http(api.url, `/api/v1/tasks/${other.id}/cancel`, { method: 'POST', key: team.keys.member });
    const byState = await http(api.url, '/api/v1/tasks?state=cancelled', { key: team.keys.member });
    expect(byState.json.tasks.map((t: TaskView) => t.id)).toEqual([other.id]);
    const byWorker = await http(api.url, '/api/v1/tasks?worker_id=gpu-1', { key: team.keys.member });
    expect(byWorker.json.tasks.map((t: TaskView) => t.id)).toEqual([routed.id]);
    const all = await http(api.url, '/api/v1/tasks', { key: team.keys.member });
    expect(all.json).toMatchObject({ next_cursor: null });
    expect(all.json.tasks).toHaveLength(2);
  });

  it('validates the query: limit range, state, unknown parameters, and a cursor it did not issue', async () => {
    expectError(await http(api.url, '/api/v1/tasks?limit=201', { key: a.keys.member }), 400, 'validation', /limit/);
    expectError(await http(api.url, '/api/v1/tasks?limit=0', { key: a.keys.member }), 400, 'validation', /limit/);
    expectError(await http(api.url, '/api/v1/tasks?limit=ten', { key: a.keys.member }), 400, 'validation', /limit/);
    expectError(await http(api.url, '/api/v1/tasks?state=done', { key: a.keys.member }), 400, 'validation', /state/);
    expectError(await http(api.url, '/api/v1/tasks?stat=queued', { key: a.keys.member }), 400, 'validation', /unknown field "stat"/);
    for (const cursor of ['garbage', Buffer.from('[1,2]').toString('base64url')]) {
      const res = await http(api.url, `/api/v1/tasks?cursor=${cursor}`, { key: a.keys.member });
      expectError(res, 400, 'validation', /cursor is not one this server issued — pass the next_cursor of the previous page unchanged/);
    }
    expectError(await http(api.url, `/api/v1/tasks?cursor=${'x'.repeat(600)}`, { key: a.keys.member }), 400, 'validation', /cursor/);
  });
});

describe('POST /api/v1/tasks/:id/cancel', () => {
  it('cancels a queued task at once and returns the TaskView', async () => {
    const task = await createTask(a.keys.member);
    const res = await http(api.url, `/api/v1/tasks/${task.id}/cancel`, { method: 'POST', key: a.keys.member });
    expect(res.status).toBe(200);
    expect(TaskView.parse(res.json)).toMatchObject({ id: task.id, state: 'cancelled' });
  });

  it('marks a running task cancel_requested, and accepts an empty JSON object body', async () => {
    const task = await createTask(a.keys.member);
    await startExecution(api, a.team.id, task.id);
    const res = await http(api.url, `/api/v1/tasks/${task.id}/cancel`, { key: a.keys.member, body: {} });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ state: 'running', cancel_requested: true });
    expect(res.json.executions).toHaveLength(1);
  });
});

describe('POST /api/v1/tasks/:id/messages', () => {
  it('accepts a message with 202 and stores it', async () => {
    const task = await createTask(a.keys.member);
    const res = await http(api.url, `/api/v1/tasks/${task.id}/messages`, { key: a.keys.member, body: { text: 'also run the tests' } });
    expect(res.status).toBe(202);
    expect(res.json).toEqual({ id: expect.stringMatching(/^msg_/), delivered: false });
    expect((await api.store.listMessages(task.id)).map((m) => m.text)).toEqual(['also run the tests']);
  });

  it('validates the message', async () => {
    const task = await createTask(a.keys.member);
    expectError(await http(api.url, `/api/v1/tasks/${task.id}/messages`, { key: a.keys.member, body: { text: '' } }), 400, 'validation', /text/);
    expectError(await http(api.url, `/api/v1/tasks/${task.id}/messages`, { key: a.keys.member, body: { message: 'x' } }), 400, 'validation', /unknown field "message"/);
    expectError(await http(api.url, `/api/v1/tasks/${task.id}/messages`, { method: 'POST', key: a.keys.member }), 400, 'validation', /request body/);
  });
});

describe('GET /api/v1/workers', () => {
  it("lists the team's workers with ISO times, and only the team's", async () => {
    const team = await createTeam(api);
    const now = Date.UTC(2026, 0, 2, 3, 4, 5);
    await api.store.upsertWorker({
      teamId: team.team.id,
      workerId: 'builder-1',
      version: '0.1.0',
      backend: 'docker',
      labels: { gpu: 'a100' },
      capacity: 3,
      connected: true,
      draining: false,
      connectedAt: now,
      lastSeenAt: now + 1000,
    });
    const res = await http(api.url, '/api/v1/workers', { key: team.keys.member });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({
      workers: [
        {
          worker_id: 'builder-1',
          version: '0.1.0',
          backend: 'docker',
          labels: { gpu: 'a100' },
          capacity: 3,
          connected: true,
          draining: false,
          connected_at: '2026-01-02T03:04:05.000Z',
          last_seen_at: '2026-01-02T03:04:06.000Z',
        },
      ],
    });
    expect((await http(api.url, '/api/v1/workers', { key: b.keys.member })).json.workers.map((w: { worker_id: string }) => w.worker_id)).not.toContain('builder-1');
  });
});

describe('unknown routes', () => {
  it('answers 404 in the JSON error shape, for any method', async () => {
    expectError(await http(api.url, '/api/v1/nope', { key: a.keys.member }), 404, 'not_found', /openapi\.json/);
    expectError(await http(api.url, '/api/v1/tasks', { method: 'DELETE', key: a.keys.member }), 404, 'not_found');
    expectError(await http(api.url, '/'), 404, 'not_found');
  });
});
