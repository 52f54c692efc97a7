// The task gateway over a real Unix socket: authentication, validation of hostile input, event
// idempotency by seq, long-poll control, the result, and socket housekeeping.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AgentEvent, AgentResult } from '../../src/protocol/gateway.js';
import type { ExecutionSpec } from '../../src/protocol/task.js';
import { TaskGateway, type TaskGatewayOptions } from '../../src/worker/taskgateway/index.js';

const TOKEN = 'tok_0123456789abcdefghijklmnopqrstuv';
const spec: ExecutionSpec = {
  execution_id: 'exe_aaaaaaaaaaaaaaaaaaaa',
  task_id: 'tsk_bbbbbbbbbbbbbbbbbbbb',
  epoch: 1,
  prompt: 'echo hello',
  harness: 'shell',
  timeout_seconds: null,
  title: null,
};

interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
   
  body: any;
}

function call(
  socketPath: string,
  method: string,
  url: string,
  options: { body?: string | Buffer; token?: string | null; contentType?: string; signal?: AbortSignal } = {},
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (options.token !== null) headers.authorization = `Bearer ${options.token ?? TOKEN}`;
    if (options.body !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
    const req = http.request({ socketPath, method, path: url, headers, signal: options.signal, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // leave as text
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

const post = (socketPath: string, url: string, value: unknown, token?: string) =>
  call(socketPath, 'POST', url, { body: JSON.stringify(value), token });

function event(seq: number, text = `line ${seq}`): AgentEvent {
  return { seq, ts: 1_700_000_000_000 + seq, kind: 'output', data: { stream: 'stdout', text } };
}

let dir: string;
let socketPath: string;
let gateway: TaskGateway | undefined;
let stored: AgentEvent[];
let results: AgentResult[];

async function startGateway(overrides: Partial<TaskGatewayOptions> = {}): Promise<TaskGateway> {
  gateway = new TaskGateway({
    socketPath,
    token: TOKEN,
    spec,
    onEvents: async (events) => {
      stored.push(...events);
    },
    onResult: (result) => {
      results.push(result);
    },
    ...overrides,
  });
  await gateway.start();
  return gateway;
}

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'airlock-gw-'));
  socketPath = path.join(dir, 'gateway.sock');
  stored = [];
  results = [];
});

afterEach(async () => {
  await gateway?.close();
  gateway = undefined;
  await expect(stat(socketPath)).rejects.toThrow(/ENOENT/);
  await rm(dir, { recursive: true, force: true });
});

describe('TaskGateway: authentication', () => {
  it('serves the spec to the holder of the token', async () => {
    await startGateway();
    const res = await call(socketPath, 'GET', '/v1/task');
    expect(res.status).toBe(200);
    expect(res.body).toEqual(spec);
  });

  it.each([
    ['no header', null],
    ['a wrong token', 'tok_wrong'],
    ['a prefix of the token', TOKEN.slice(0, -1)],
    ['the token plus one character', `${TOKEN}x`],
    ['an empty token', ''],
  ])('refuses %s with 401 before reading the body', async (_label, token) => {
    await startGateway();
    for (const [method, url] of [
      ['GET', '/v1/task'],
      ['GET', '/v1/control'],
    ] as const) {
      const res = await call(socketPath, method, url, { token });
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe('unauthenticated');
      expect(res.body.error.message).toMatch(/AIRLOCK_TASK_TOKEN/);
      expect(res.headers['www-authenticate']).toBe('Bearer');
    }
    const res = await call(socketPath, 'POST', '/v1/events', { body: JSON.stringify({ events: [event(1)] }), token });
    expect(res.status).toBe(401);
    expect(stored).toEqual([]);
  });

  it('refuses a non-bearer scheme', async () => {
    await startGateway();
    const res = await new Promise<number>((resolve, reject) => {
      http
        .request({ socketPath, path: '/v1/task', headers: { authorization: `Basic ${TOKEN}` }, agent: false }, (r) => {
          r.resume();
          resolve(r.statusCode ?? 0);
        })
        .on('error', reject)
        .end();
    });
    expect(res).toBe(401);
  });
});

describe('TaskGateway: hostile input', () => {
  it('answers malformed JSON with a validation error', async () => {
    await startGateway();
    const res = await call(socketPath, 'POST', '/v1/events', { body: '{"events": [' });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: { code: 'validation', message: expect.stringMatching(/not valid JSON/) } });
  });

  it('refuses unknown fields, naming them', async () => {
    await startGateway();
    const top = await post(socketPath, '/v1/events', { events: [event(1)], extra: true });
    expect(top.status).toBe(400);
    expect(top.body.error.code).toBe('validation');
    expect(top.body.error.message).toMatch(/"extra"/);
    const nested = await post(socketPath, '/v1/events', { events: [{ ...event(1), sneaky: 1 }] });
    expect(nested.status).toBe(400);
    expect(nested.body.error.message).toMatch(/events\[0\].*"sneaky"/);
    const result = await post(socketPath, '/v1/result', { outcome: 'succeeded', exit_code: 0, summary: null, bonus: 1 });
    expect(result.status).toBe(400);
    expect(result.body.error.message).toMatch(/"bonus"/);
    expect(stored).toEqual([]);
    expect(results).toEqual([]);
  });

  it('refuses wrong types and missing fields, naming the field', async () => {
    await startGateway();
    const res = await post(socketPath, '/v1/events', { events: [{ seq: 'one', ts: 1, kind: 'output', data: {} }] });
    expect(res.status).toBe(400);
    expect(res.body.error.field).toBe('events[0].seq');
    const kind = await post(socketPath, '/v1/events', { events: [{ seq: 1, ts: 1, kind: 'telepathy', data: {} }] });
    expect(kind.status).toBe(400);
    expect(kind.body.error.message).toMatch(/events\[0\]\.kind/);
    const empty = await post(socketPath, '/v1/events', { events: [] });
    expect(empty.status).toBe(400);
    const notObject = await post(socketPath, '/v1/events', [1, 2, 3]);
    expect(notObject.status).toBe(400);
  });

  it('answers a body over 1 MiB with 413', async () => {
    await startGateway();
    const huge = JSON.stringify({ events: [event(1, 'x'.repeat(2 * 1024 * 1024))] });
    const res = await call(socketPath, 'POST', '/v1/events', { body: huge });
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('payload_too_large');
    expect(stored).toEqual([]);
  });

  it('refuses an event whose data is over the per-event limit', async () => {
    await startGateway();
    const res = await post(socketPath, '/v1/events', { events: [event(1, 'y'.repeat(70 * 1024))] });
    expect(res.status).toBe(400);
    expect(res.body.error.field).toBe('events[0].data');
  });

  it('refuses a body that is not JSON with 415', async () => {
    await startGateway();
    const res = await call(socketPath, 'POST', '/v1/events', { body: 'events=1', contentType: 'application/x-www-form-urlencoded' });
    expect(res.status).toBe(415);
    expect(res.body.error.code).toBe('validation');
  });

  it('refuses prototype pollution attempts', async () => {
    await startGateway();
    const res = await call(socketPath, 'POST', '/v1/events', { body: `{"events":[],"__proto__":{"polluted":true}}` });
    expect(res.status).toBe(400);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('answers unknown routes with a JSON 404 that lists the real ones', async () => {
    await startGateway();
    const res = await call(socketPath, 'GET', '/v1/secrets');
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('not_found');
    expect(res.body.error.message).toMatch(/\/v1\/events/);
  });

  it('survives garbage on the socket', async () => {
    await startGateway();
    await new Promise<void>((resolve) => {
      const socket = net.connect({ path: socketPath }, () => socket.end('\x00\x01 NOT HTTP AT ALL\r\n\r\n'));
      socket.on('close', () => resolve());
      socket.on('error', () => resolve());
      socket.resume();
    });
    expect((await call(socketPath, 'GET', '/v1/task')).status).toBe(200);
  });
});

describe('TaskGateway: events', () => {
  it('accepts events in order and answers with the next seq', async () => {
    await startGateway();
    const res = await post(socketPath, '/v1/events', { events: [event(1), event(2), event(3)] });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ accepted: 3, next_seq: 4 });
    expect(stored.map((e) => e.seq)).toEqual([1, 2, 3]);
  });

  it('acknowledges and drops replays, keeps the new part of an overlapping batch', async () => {
    await startGateway();
    await post(socketPath, '/v1/events', { events: [event(1), event(2), event(3)] });
    const replay = await post(socketPath, '/v1/events', { events: [event(1), event(2), event(3)] });
    expect(replay.body).toEqual({ accepted: 0, next_seq: 4 });
    const overlap = await post(socketPath, '/v1/events', { events: [event(2), event(3), event(4), event(5)] });
    expect(overlap.body).toEqual({ accepted: 2, next_seq: 6 });
    expect(stored.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
  });

  it('refuses a gap with 409 naming the expected seq, and takes nothing of that batch', async () => {
    await startGateway();
    await post(socketPath, '/v1/events', { events: [event(1)] });
    const gap = await post(socketPath, '/v1/events', { events: [event(3), event(4)] });
    expect(gap.status).toBe(409);
    expect(gap.body.error.code).toBe('conflict');
    expect(gap.body.error.expected_seq).toBe(2);
    expect(gap.body.error.message).toMatch(/expected seq 2/);
    const inner = await post(socketPath, '/v1/events', { events: [event(2), event(4)] });
    expect(inner.status).toBe(409);
    expect(inner.body.error.expected_seq).toBe(2);
    expect(stored.map((e) => e.seq)).toEqual([1]);
    const first = await post(socketPath, '/v1/events', { events: [event(5)] });
    expect(first.status).toBe(409);
  });

  it('answers an upload only once onEvents has resolved', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let answered = false;
    await startGateway({ onEvents: async (events) => {
      await gate;
      stored.push(...events);
    } });
    const pending = post(socketPath, '/v1/events', { events: [event(1)] }).then((r) => {
      answered = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(answered).toBe(false);
    release();
    expect((await pending).body).toEqual({ accepted: 1, next_seq: 2 });
    expect(stored).toHaveLength(1);
  });

  it('asks for a retry when onEvents fails, and accepts the retry', async () => {
    let fail = true;
    await startGateway({ onEvents: async (events) => {
      if (fail) throw new Error('disk full');
      stored.push(...events);
    } });
    const first = await post(socketPath, '/v1/events', { events: [event(1)] });
    expect(first.status).toBe(503);
    expect(first.body.error.code).toBe('retryable');
    expect(first.headers['retry-after']).toBe('1');
    fail = false;
    const retry = await post(socketPath, '/v1/events', { events: [event(1)] });
    expect(retry.body).toEqual({ accepted: 1, next_seq: 2 });
  });

  it('handles concurrent uploads one at a time, in order', async () => {
    const seen: number[] = [];
    await startGateway({ onEvents: async (events) => {
      await new Promise((r) => setTimeout(r, 20));
      seen.push(...events.map((e) => e.seq));
    } });
    const a = post(socketPath, '/v1/events', { events: [event(1), event(2)] });
    await new Promise((r) => setTimeout(r, 5));
    const b = post(socketPath, '/v1/events', { events: [event(3)] });
    expect((await a).status).toBe(200);
    expect((await b).status).toBe(200);
    expect(seen).toEqual([1, 2, 3]);
  });
});

describe('TaskGateway: control', () => {
  it('answers at once without wait, and validates the query', async () => {
    await startGateway();
    expect((await call(socketPath, 'GET', '/v1/control')).body).toEqual({ cancel: null, messages: [] });
    for (const query of ['wait=-1', 'after=abc', 'after=1.5', 'nosuch=1']) {
      const res = await call(socketPath, 'GET', `/v1/control?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.body.error.code).toBe('validation');
    }
    // Over the cap is not an error: the wait is cut to 30 s (cancel wakes it here).
    const capped = call(socketPath, 'GET', '/v1/control?wait=99999999');
    await new Promise((r) => setTimeout(r, 50));
    gateway!.cancel('enough');
    expect((await capped).status).toBe(200);
  });

  it('wakes a long poll on cancel', async () => {
    await startGateway();
    const poll = call(socketPath, 'GET', '/v1/control?after=0&wait=20000');
    await new Promise((r) => setTimeout(r, 50));
    gateway!.cancel('user asked');
    gateway!.cancel('second reason is ignored');
    const res = await poll;
    expect(res.body).toEqual({ cancel: { reason: 'user asked' }, messages: [] });
  });

  it('wakes a long poll on a message and returns only messages after the given index', async () => {
    await startGateway();
    const poll = call(socketPath, 'GET', '/v1/control?after=0&wait=20000');
    await new Promise((r) => setTimeout(r, 50));
    gateway!.deliverMessage({ id: 'msg_1', text: 'first' });
    expect((await poll).body.messages).toEqual([{ index: 1, id: 'msg_1', text: 'first' }]);
    gateway!.deliverMessage({ id: 'msg_1', text: 'first' }); // redelivery: ignored
    gateway!.deliverMessage({ id: 'msg_2', text: 'second' });
    const next = await call(socketPath, 'GET', '/v1/control?after=1&wait=20000');
    expect(next.body.messages).toEqual([{ index: 2, id: 'msg_2', text: 'second' }]);
  });

  it('returns after the wait when nothing happens', async () => {
    await startGateway();
    const res = await call(socketPath, 'GET', '/v1/control?after=0&wait=100');
    expect(res.body).toEqual({ cancel: null, messages: [] });
  });

  it('returns pending long polls when the gateway closes', async () => {
    await startGateway();
    const poll = call(socketPath, 'GET', '/v1/control?wait=20000');
    await new Promise((r) => setTimeout(r, 50));
    await gateway!.close();
    expect((await poll).status).toBe(200);
  });
});

describe('TaskGateway: result', () => {
  const result: AgentResult = { outcome: 'succeeded', exit_code: 0, summary: 'done' };

  it('takes the result once, accepts the same again, refuses a different one', async () => {
    await startGateway();
    expect((await post(socketPath, '/v1/result', result)).status).toBe(200);
    expect((await post(socketPath, '/v1/result', result)).status).toBe(200);
    const other = await post(socketPath, '/v1/result', { ...result, outcome: 'failed' });
    expect(other.status).toBe(409);
    expect(results).toEqual([result]);
  });

  it('refuses new events after the result but acknowledges replays', async () => {
    await startGateway();
    await post(socketPath, '/v1/events', { events: [event(1)] });
    await post(socketPath, '/v1/result', result);
    expect((await post(socketPath, '/v1/events', { events: [event(1)] })).body).toEqual({ accepted: 0, next_seq: 2 });
    const late = await post(socketPath, '/v1/events', { events: [event(2)] });
    expect(late.status).toBe(409);
    expect(late.body.error.message).toMatch(/after the result/);
  });

  it('lets the agent retry when onResult fails', async () => {
    let fail = true;
    await startGateway({ onResult: (r) => {
      if (fail) throw new Error('outbox closed');
      results.push(r);
    } });
    expect((await post(socketPath, '/v1/result', result)).status).toBe(503);
    fail = false;
    expect((await post(socketPath, '/v1/result', result)).status).toBe(200);
    expect(results).toEqual([result]);
  });
});

describe('TaskGateway: socket', () => {
  it('makes the socket connectable by any user (the token is the authentication)', async () => {
    await startGateway();
    expect((await stat(socketPath)).mode & 0o777).toBe(0o666);
  });

  it('replaces a stale socket file left by a crashed worker', async () => {
    // A crashed worker: a process that listened on the path and was killed with SIGKILL leaves the file.
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => console.log('up'))`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise((resolve) => child.stdout.once('data', resolve));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    await expect(stat(socketPath)).resolves.toBeDefined();
    await startGateway();
    expect((await call(socketPath, 'GET', '/v1/task')).status).toBe(200);
  });

  it('refuses to replace a regular file or a socket another process serves', async () => {
    await writeFile(socketPath, 'not a socket');
    const g = new TaskGateway({ socketPath, token: TOKEN, spec, onEvents: async () => undefined, onResult: () => undefined });
    await expect(g.start()).rejects.toThrow(/not a socket/);
    await rm(socketPath);
    const live = net.createServer();
    await new Promise<void>((resolve) => live.listen({ path: socketPath }, resolve));
    try {
      await expect(g.start()).rejects.toThrow(/already serving/);
    } finally {
      await new Promise<void>((resolve) => live.close(() => resolve()));
    }
  });

  it('refuses a socket path over the operating system limit, naming it', async () => {
    const long = path.join(dir, 'x'.repeat(120), 'gateway.sock');
    const g = new TaskGateway({ socketPath: long, token: TOKEN, spec, onEvents: async () => undefined, onResult: () => undefined });
    await expect(g.start()).rejects.toThrow(/over the operating system's limit of 107/);
  });

  it('close is idempotent and works before start', async () => {
    const g = new TaskGateway({ socketPath, token: TOKEN, spec, onEvents: async () => undefined, onResult: () => undefined });
    await g.close();
    await g.close();
    await startGateway();
    await gateway!.close();
    await gateway!.close();
  });
});

describe('TaskGateway: model routes answer errors in the client API format', () => {
  it('503 when the worker routes no models, as OpenAI and as Anthropic errors', async () => {
    await startGateway();
    const chat = await post(socketPath, '/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'hi' }] });
    expect(chat.status).toBe(503);
    expect(chat.body).toMatchObject({ error: { message: expect.stringMatching(/routes no model requests — configure `models:`/) } });
    const messages = await post(socketPath, '/v1/messages', { model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] });
    expect(messages.status).toBe(503);
    expect(messages.body).toMatchObject({ type: 'error', error: { message: expect.stringMatching(/routes no model requests/) } });
  });

  it('400 for a body that is not a JSON object, without calling the route', async () => {
    let calls = 0;
    await startGateway({
      llm: async () => {
        calls += 1;
        throw new Error('not reached');
      },
    });
    const res = await post(socketPath, '/v1/responses', ['not', 'an', 'object']);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: { message: expect.stringMatching(/must be a JSON object/) } });
    expect(calls).toBe(0);
  });

  it('still refuses a request without the task token', async () => {
    await startGateway();
    const res = await post(socketPath, '/v1/chat/completions', { model: 'm', messages: [] }, 'wrong-token');
    expect(res.status).toBe(401);
  });
});
