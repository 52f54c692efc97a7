/**
 * Model routing end to end, over real sockets: agent → task gateway (Unix socket) → worker →
 * control plane's LLM gateway (HTTP, task-scoped token) → provider (the scripted model server, a
 * TEST DOUBLE). Also: BYOLLM (worker → provider, never the server), usage on execution.finished
 * and in /api/v1/usage, zero data retention, provider faults relayed in the client's format.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSseText } from '../support/llm-client.js';
import { startInProcessWorker, startLlmServer, type InProcessAgent, type InProcessWorker, type LlmTestServer } from '../support/llm-stack.js';
import { startScriptedModelServer, type ScriptedModelServer, type ScriptedTurn } from '../support/model-server.js';
import { eventually, waitForTask } from '../support/stack.js';

/** Appears in every prompt: it must never show up in a log or the database (zero retention). */
const MARKER = 'zdr-marker-7f3a9c-never-stored';
const USAGE = { input: 10, output: 5 };

let provider: ScriptedModelServer;
let nextTurn: ScriptedTurn = { text: 'hello', usage: USAGE };
let server: LlmTestServer;
let cp: InProcessWorker;
let byo: InProcessWorker;

const models = (base: string) => ({
  default: 'scripted',
  providers: {
    scripted: { type: 'openai-compatible' as const, base_url: `${base}/v1` },
    anth: { type: 'anthropic' as const, base_url: base, api_key_env: 'TEST_ANTHROPIC_KEY' },
    slow: { type: 'openai-compatible' as const, base_url: `${base}/v1`, timeout_seconds: 0.5 },
  },
});

beforeAll(async () => {
  provider = await startScriptedModelServer({ script: () => nextTurn });
  server = await startLlmServer({ file: { models: models(provider.url) }, env: { TEST_ANTHROPIC_KEY: 'test-provider-key' } });
  cp = await startInProcessWorker(server, { workerId: 'cp' });
  process.env.TEST_ANTHROPIC_KEY = 'test-provider-key';
  byo = await startInProcessWorker(server, { workerId: 'byo', models: models(provider.url) });
});

afterAll(async () => {
  await cp?.stop();
  await byo?.stop();
  await server?.close();
  await provider?.close();
  delete process.env.TEST_ANTHROPIC_KEY;
});

/** Run a task whose in-process agent is `agent` on worker `on`; resolves with the finished task. */
async function runAgent(on: InProcessWorker, workerId: string, agent: InProcessAgent): Promise<any> {
  const prompt = `agent ${Math.random().toString(36).slice(2)}`;
  on.agents.set(prompt, agent);
  const { status, body } = await server.api('/api/v1/tasks', { body: { prompt, harness: 'shell', worker_id: workerId } });
  expect(status, JSON.stringify(body)).toBe(201);
  return waitForTask(server as never, body.id, ['succeeded', 'failed', 'cancelled']);
}

const chatBody = (stream: boolean, model = 'some-model') => ({ model, stream, messages: [{ role: 'user', content: `say hello ${MARKER}` }] });
const responsesBody = (stream: boolean) => ({ model: 'some-model', stream, input: `say hello ${MARKER}` });
const messagesBody = (stream: boolean) => ({ model: 'anth/claude-test', stream, max_tokens: 100, messages: [{ role: 'user', content: `say hello ${MARKER}` }] });

/** The assistant text of an answer in any of the three APIs, streamed or not. */
function textOf(api: 'chat' | 'responses' | 'messages', reply: { text: string; headers: Record<string, unknown> }): string {
  const sse = String(reply.headers['content-type'] ?? '').includes('text/event-stream');
  if (!sse) {
    const body = JSON.parse(reply.text);
    if (api === 'chat') return body.choices[0].message.content;
    if (api === 'responses') return body.output.flatMap((o: any) => o.content ?? []).map((c: any) => c.text).join('');
    return body.content.map((c: any) => c.text ?? '').join('');
  }
  let text = '';
  for (const event of parseSseText(reply.text)) {
    if (event.data === '[DONE]') continue;
    const data = JSON.parse(event.data);
    if (api === 'chat') text += data.choices?.[0]?.delta?.content ?? '';
    else if (api === 'responses' && data.type === 'response.output_text.delta') text += data.delta;
    else if (api === 'messages' && data.type === 'content_block_delta') text += data.delta.text ?? '';
  }
  return text;
}

describe('control-plane route: task gateway → worker → server gateway → provider', () => {
  it('answers all three APIs, streaming and not, and meters usage per task', async () => {
    nextTurn = { text: 'hello from the scripted provider', usage: USAGE };
    const before = provider.requests.length;
    const seen: Array<{ api: string; stream: boolean; status: number; text: string; contentType: string }> = [];
    const task = await runAgent(cp, 'cp', async ({ call }) => {
      for (const stream of [false, true]) {
        for (const [api, path, body] of [
          ['chat', '/v1/chat/completions', chatBody(stream)],
          ['responses', '/v1/responses', responsesBody(stream)],
          ['messages', '/v1/messages', messagesBody(stream)],
        ] as const) {
          const reply = await call(path, body, api === 'messages' ? { 'anthropic-version': '2023-06-01' } : {});
          seen.push({ api, stream, status: reply.status, text: textOf(api, reply), contentType: String(reply.headers['content-type']) });
        }
      }
    });
    expect(task.state, JSON.stringify(task)).toBe('succeeded');
    expect(seen).toHaveLength(6);
    for (const s of seen) {
      expect(s.status, JSON.stringify(s)).toBe(200);
      expect(s.text).toBe('hello from the scripted provider');
      expect(s.contentType).toMatch(s.stream ? /text\/event-stream/ : /application\/json/);
    }
    // The provider saw six requests, none carrying the gateway's token.
    const reqs = provider.requests.slice(before);
    expect(reqs).toHaveLength(6);
    expect(JSON.stringify(reqs)).not.toContain('allt.');
    expect(reqs.filter((r) => r.api === 'messages').every((r) => r.hasAuthorization)).toBe(true);
    // The server metered them against the task, by model.
    const usage = await server.api(`/api/v1/usage?task_id=${task.id}`);
    expect(usage.status).toBe(200);
    expect(usage.body.total).toEqual({ input_tokens: 60, output_tokens: 30, requests: 6, errors: 0 });
    expect(usage.body.by_task).toEqual([{ task_id: task.id, input_tokens: 60, output_tokens: 30, requests: 6, errors: 0 }]);
    const byModel = Object.fromEntries(usage.body.by_model.map((m: any) => [m.model, m.requests]));
    expect(byModel).toEqual({ 'some-model': 4, 'claude-test': 2 });
    // The worker metered the same calls and reported them with execution.finished.
    expect(task.usage).toEqual({ input_tokens: 60, output_tokens: 30, requests: 6 });
    // The server's log has one llm:request line per call, with counts and no body.
    expect(server.log.text.match(/"msg":"llm:request"/g)?.length).toBeGreaterThanOrEqual(6);
  });

  it('relays a provider timeout and a 200-then-error stream in the client\'s own format', async () => {
    const replies: Record<string, { status: number; text: string }> = {};
    nextTurn = { text: 'too late', delayMs: 2_000 };
    const timedOut = await runAgent(cp, 'cp', async ({ call }) => {
      const r = await call('/v1/chat/completions', chatBody(false, 'slow/some-model'));
      replies.timeout = { status: r.status, text: r.text };
    });
    expect(timedOut.state).toBe('succeeded');
    expect(replies.timeout!.status).toBe(504);
    const timeoutBody = JSON.parse(replies.timeout!.text);
    expect(timeoutBody.error.message).toMatch(/did not answer within 0\.5 s/);
    expect(timeoutBody.error.type).toBe('server_error');

    nextTurn = { text: 'partial', midStreamError: 'the scripted provider broke off' };
    const broken = await runAgent(cp, 'cp', async ({ call }) => {
      const chat = await call('/v1/chat/completions', chatBody(true));
      replies.chat = { status: chat.status, text: chat.text };
      const messages = await call('/v1/messages', messagesBody(true));
      replies.messages = { status: messages.status, text: messages.text };
    });
    expect(broken.state).toBe('succeeded');
    expect(replies.chat!.status).toBe(200);
    const chatEvents = parseSseText(replies.chat!.text);
    const lastChat = JSON.parse(chatEvents.at(-1)!.data);
    expect(lastChat.error.message).toContain('the scripted provider broke off');
    expect(replies.messages!.status).toBe(200);
    const messageEvents = parseSseText(replies.messages!.text);
    expect(messageEvents.at(-1)!.event).toBe('error');
    expect(JSON.parse(messageEvents.at(-1)!.data)).toMatchObject({ type: 'error', error: { message: expect.stringContaining('the scripted provider broke off') } });
  });

  it('keeps serving after those faults', async () => {
    nextTurn = { text: 'fine again', usage: USAGE };
    const texts: string[] = [];
    const task = await runAgent(cp, 'cp', async ({ call }) => {
      texts.push(textOf('chat', await call('/v1/chat/completions', chatBody(true))));
    });
    expect(task.state).toBe('succeeded');
    expect(texts).toEqual(['fine again']);
  });
});

describe('cancellation', () => {
  it('cancelling a task during a model call ends it at once, the call aborted on every hop', async () => {
    nextTurn = { text: 'much too late', delayMs: 20_000 };
    const before = provider.requests.length;
    const prompt = `agent ${Math.random().toString(36).slice(2)}`;
    cp.agents.set(prompt, async ({ call }) => {
      await call('/v1/chat/completions', chatBody(true));
    });
    const { body: task } = await server.api('/api/v1/tasks', { body: { prompt, harness: 'shell', worker_id: 'cp' } });
    const deadline = Date.now() + 10_000;
    while (provider.requests.length === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(provider.requests.length).toBe(before + 1); // the call is waiting at the provider
    const started = Date.now();
    expect((await server.api(`/api/v1/tasks/${task.id}/cancel`, { body: {} })).status).toBe(200);
    const done = await waitForTask(server as never, task.id, ['cancelled', 'failed', 'succeeded'], 10_000);
    expect(done.state).toBe('cancelled');
    expect(Date.now() - started).toBeLessThan(8_000);
    // The worker's relay was aborted, so the server's provider call was too (499: client went away).
    await eventually(() => server.log.text.split('\n').some((line) => line.includes('"msg":"llm:request"') && line.includes('"status":499')), 5_000, 'the server to log the aborted call');
    expect(server.log.text).not.toContain('much too late');
  });
});

describe('BYOLLM: worker → the team\'s provider, never the control plane', () => {
  it('sends model requests straight to the provider and reports their usage on execution.finished', async () => {
    nextTurn = { text: 'hello from byollm', usage: USAGE };
    const before = provider.requests.length;
    const logBefore = server.log.text.length;
    const texts: string[] = [];
    const task = await runAgent(byo, 'byo', async ({ call }) => {
      texts.push(textOf('chat', await call('/v1/chat/completions', chatBody(false))));
      texts.push(textOf('messages', await call('/v1/messages', messagesBody(true))));
    });
    expect(task.state, JSON.stringify(task)).toBe('succeeded');
    expect(texts).toEqual(['hello from byollm', 'hello from byollm']);
    expect(provider.requests.length - before).toBe(2);
    // Nothing reached the server's gateway while the task ran.
    const serverLog = server.log.text.slice(logBefore);
    expect(serverLog).not.toContain('/llm/');
    expect(serverLog).not.toContain('llm:request');
    // The worker's metered usage arrived with execution.finished: the server records it as BYOLLM.
    const usage = await server.api(`/api/v1/usage?task_id=${task.id}`);
    expect(usage.body.by_model).toEqual([{ model: '(byollm)', input_tokens: 20, output_tokens: 10, requests: 2, errors: 0 }]);
    // …and on the task itself.
    expect(task.usage).toEqual({ input_tokens: 20, output_tokens: 10, requests: 2 });
  });
});

describe('zero data retention', () => {
  it('stores and logs no prompt or response body', async () => {
    expect(provider.requests.some((r) => JSON.stringify(r.body).includes(MARKER))).toBe(true); // the marker did travel
    expect(server.log.text).not.toContain(MARKER);
    expect(server.log.text).not.toContain('hello from the scripted provider');
    expect(cp.log.text).not.toContain(MARKER);
    expect(byo.log.text).not.toContain(MARKER);
    for (const file of readdirSync(server.dataDir)) {
      const bytes = readFileSync(join(server.dataDir, file));
      expect(bytes.includes(Buffer.from(MARKER)), `${file} holds a prompt`).toBe(false);
      expect(bytes.includes(Buffer.from('hello from the scripted provider')), `${file} holds a response`).toBe(false);
    }
  });
});
