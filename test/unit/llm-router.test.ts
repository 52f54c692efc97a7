// The model router and the pass-through providers over real HTTP against the scripted model
// server (a test double): config errors name the field and the fix, routing picks the provider
// by prefix, streams pass through byte for byte while usage is tapped, and every failure reaches
// the client in its own API's format.
import { createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { createModelRouter, parseModelsConfig, type LlmApi } from '../../src/llm/index.js';
import { startScriptedModelServer, type ScriptedModelServer, type ScriptedTurn } from '../support/model-server.js';
import { llmRequest, parseSseText, readAll } from '../support/llm-client.js';

const servers: ScriptedModelServer[] = [];
const raw: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await Promise.all(raw.splice(0).map((s) => new Promise((resolve) => { s.closeAllConnections(); s.close(resolve); })));
});

async function start(script: ScriptedTurn[]): Promise<ScriptedModelServer> {
  const server = await startScriptedModelServer({ script });
  servers.push(server);
  return server;
}

function routerFor(server: { url: string }, extra: Record<string, unknown> = {}, timeoutMs?: number) {
  const config = parseModelsConfig({
    default: 'local',
    providers: {
      local: { type: 'openai-compatible', base_url: `${server.url}/v1`, api_key_env: 'LOCAL_KEY', ...extra },
      claude: { type: 'anthropic', base_url: server.url, api_key_env: 'CLAUDE_KEY' },
    },
  });
  return createModelRouter(config, { env: { LOCAL_KEY: 'sk-local', CLAUDE_KEY: 'sk-claude' }, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
}

const chat = (extra: Record<string, unknown> = {}) => ({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }], ...extra });

describe('models config', () => {
  const base = { default: 'local', providers: { local: { type: 'openai-compatible', base_url: 'http://127.0.0.1:9999/v1', api_key_env: 'LOCAL_MODEL_KEY', model: 'some-model' } } };

  it('accepts the contract example and strips a trailing slash', () => {
    const config = parseModelsConfig({ ...base, providers: { local: { ...base.providers.local, base_url: 'http://127.0.0.1:9999/v1/' } } });
    expect(config.providers.local).toEqual({ type: 'openai-compatible', base_url: 'http://127.0.0.1:9999/v1', api_key_env: 'LOCAL_MODEL_KEY', model: 'some-model' });
  });

  it.each([
    [{ ...base, default: 'nope' }, /models\.default: "nope" is not a configured provider — use one of local/],
    [{ ...base, providers: { local: { ...base.providers.local, base_url: 'ftp://x' } } }, /models\.providers\.local\.base_url: must be an http\(s\) URL/],
    [{ ...base, providers: { local: { ...base.providers.local, api_key_env: 'sk-123-secret' } } }, /models\.providers\.local\.api_key_env: must name an environment variable/],
    [{ ...base, providers: { local: { ...base.providers.local, type: 'gemini' } } }, /models\.providers\.local\.type: type must be one of openai, openai-compatible/],
    [{ ...base, providers: { local: { ...base.providers.local, colour: 'red' } } }, /models\.providers\.local: unknown field "colour"/],
    [{ ...base, providers: { local: { ...base.providers.local, headers: { Authorization: 'Bearer x' } } } }, /models\.providers\.local\.headers\.Authorization: a credential header does not belong/],
    [{ default: 'a/b', providers: { 'a/b': base.providers.local } }, /models\.providers\.a\/b: a provider name uses/],
    [{ default: 'az', providers: { az: { type: 'azure-openai', base_url: 'https://x.openai.azure.com' } } }, /models\.providers\.az\.deployment: expected string/],
    [{ default: 'v', providers: { v: { type: 'vertex', project_id: 'p' } } }, /models\.providers\.v\.location/],
    [{ default: 'b', providers: { b: { type: 'bedrock', region: 'mars' } } }, /models\.providers\.b\.region: must be an AWS region/],
    [{ default: 'local', providers: {} }, /models\.providers: configure at least one provider/],
  ])('rejects bad config %#', (input, message) => {
    expect(() => parseModelsConfig(input)).toThrow(message);
  });

  it('names the unset key variable when the router is created', () => {
    const config = parseModelsConfig(base);
    expect(() => createModelRouter(config, { env: {} })).toThrow(/models\.providers\.local\.api_key_env: the environment variable LOCAL_MODEL_KEY is not set/);
    const openai = parseModelsConfig({ default: 'o', providers: { o: { type: 'openai' } } });
    expect(() => createModelRouter(openai, { env: {} })).toThrow(/OPENAI_API_KEY is not set .*or name another variable/);
  });
});

describe('routing and pass-through', () => {
  it('routes by provider prefix, replaces the model with the configured one, and passes a chat stream through byte for byte', async () => {
    const server = await start([{ text: 'Hello there, friend.', usage: { input: 11, output: 4 } }, { text: 'Routed.', usage: { input: 5, output: 2 } }]);
    const router = routerFor(server, { model: 'pinned-model' });
    const response = await router.handle(llmRequest('chat', chat({ stream: true, stream_options: { include_usage: true } })));
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toMatch(/text\/event-stream/);
    const text = await readAll(response);
    const direct = parseSseText(text);
    expect(direct.at(-1)!.data).toBe('[DONE]');
    const content = direct.slice(0, -1).map((e) => JSON.parse(e.data)).flatMap((c) => c.choices.map((ch: any) => ch.delta.content ?? '')).join('');
    expect(content).toBe('Hello there, friend.');
    expect(await response.usage).toEqual({ input_tokens: 11, output_tokens: 4, model: 'pinned-model' });
    expect(server.requests[0]!.body).toMatchObject({ model: 'pinned-model' });
    expect(server.requests[0]!.hasAuthorization).toBe(true);

    const routed = await router.handle(llmRequest('messages', { model: 'claude/claude-test', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] }));
    expect(routed.status).toBe(200);
    expect(JSON.parse(await readAll(routed))).toMatchObject({ type: 'message', model: 'claude-test', content: [{ type: 'text', text: 'Routed.' }] });
    expect(await routed.usage).toEqual({ input_tokens: 5, output_tokens: 2, model: 'claude-test' });
    expect(server.requests[1]!.path).toBe('/v1/messages');
    expect(server.requests[1]!.headers['anthropic-version']).toBe('2023-06-01');
  });

  it('asks for usage on chat streams and drops the usage chunk the client did not ask for', async () => {
    const server = await start([{ text: 'abc', usage: { input: 3, output: 1 } }]);
    const response = await routerFor(server).handle(llmRequest('chat', chat({ stream: true })));
    const events = parseSseText(await readAll(response));
    expect((server.requests[0]!.body as any).stream_options).toEqual({ include_usage: true });
    expect(events.every((e) => e.data === '[DONE]' || JSON.parse(e.data).choices.length > 0)).toBe(true);
    expect(await response.usage).toMatchObject({ input_tokens: 3, output_tokens: 1 });
  });

  it.each<[LlmApi, Record<string, unknown>]>([
    ['responses', { model: 'gpt-test', input: 'hi', stream: true }],
    ['messages', { model: 'claude/claude-test', max_tokens: 50, messages: [{ role: 'user', content: 'hi' }], stream: true }],
  ])('passes a %s stream through and taps its usage', async (api, body) => {
    const server = await start([{ text: 'streamed words', usage: { input: 7, output: 3 } }]);
    const response = await routerFor(server).handle(llmRequest(api, body));
    const events = parseSseText(await readAll(response));
    expect(events.at(-1)!.event).toBe(api === 'responses' ? 'response.completed' : 'message_stop');
    expect(await response.usage).toMatchObject({ input_tokens: 7, output_tokens: 3 });
  });
});

describe('errors in the client format', () => {
  it.each<[LlmApi, Record<string, unknown>, RegExp]>([
    ['chat', { messages: [{ role: 'user', content: 'x' }] }, /model: required/],
    ['chat', { model: 'm', messages: [] }, /messages: must contain at least one message/],
    ['responses', { model: 'm' }, /input: required/],
    ['messages', { model: 'm', max_tokens: 0, messages: [{ role: 'user', content: 'x' }] }, /max_tokens: must be a positive integer/],
    ['chat', chat({ model: 'nobody/gpt' }), /no provider named "nobody" is configured \(configured: local, claude\)/],
    ['chat', chat({ model: 'default' }), /provider "local" has no default model — set models.providers.local.model/],
    ['messages', { model: 'claude/default', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }, /provider "claude" has no default model/],
  ])('%s request %# → 400', async (api, body, message) => {
    const server = await start([]);
    const response = await routerFor(server).handle(llmRequest(api, body));
    expect(response.status).toBe(400);
    const parsed = JSON.parse(await readAll(response));
    if (api === 'messages') expect(parsed).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringMatching(message) } });
    else expect(parsed).toMatchObject({ error: { type: 'invalid_request_error', message: expect.stringMatching(message) } });
    expect(await response.usage).toBeNull();
    expect(server.requests).toHaveLength(0);
  });

  it('relays an upstream HTTP error with its status in the client format', async () => {
    const server = await start([{ error: { status: 429, message: 'slow down' } }]);
    const response = await routerFor(server).handle(llmRequest('chat', chat()));
    expect(response.status).toBe(429);
    expect(JSON.parse(await readAll(response))).toMatchObject({ error: { message: expect.stringContaining('slow down'), code: 'rate_limit_exceeded' } });
  });

  it('answers 504 in the client format when the provider does not answer in time', async () => {
    const server = await start([{ text: 'late', delayMs: 5_000 }]);
    const response = await routerFor(server, { timeout_seconds: 0.2 }).handle(llmRequest('responses', { model: 'x', input: 'hi' }));
    expect(response.status).toBe(504);
    expect(JSON.parse(await readAll(response))).toMatchObject({ error: { message: expect.stringMatching(/did not answer within 0\.2 s/) } });
  });

  it('answers 502 naming the base_url when the provider is unreachable', async () => {
    const closed = await start([]);
    const url = closed.url;
    await servers.pop()!.close();
    const response = await routerFor({ url }).handle(llmRequest('chat', chat()));
    expect(response.status).toBe(502);
    expect(JSON.parse(await readAll(response)).error.message).toMatch(/could not reach the provider "local" at http:\/\/127\.0\.0\.1:\d+\/v1: ECONNREFUSED — check models\.providers\.local\.base_url/);
  });

  it('appends the stream error event when a 200 stream errors (passed through) or is cut off', async () => {
    const server = await start([{ midStreamError: 'overloaded' }]);
    const events = parseSseText(await readAll(await routerFor(server).handle(llmRequest('responses', { model: 'm', input: 'x', stream: true }))));
    expect(events.at(-1)).toMatchObject({ event: 'error' });
    expect(JSON.parse(events.at(-1)!.data)).toMatchObject({ type: 'error', message: 'overloaded' });

    const cut = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"par"}}]}\n\ndata: {"id":"c","obj');
      setTimeout(() => res.destroy(), 20);
    });
    raw.push(cut);
    await new Promise<void>((resolve) => cut.listen(0, '127.0.0.1', resolve));
    const port = (cut.address() as any).port;
    const response = await routerFor({ url: `http://127.0.0.1:${port}` }).handle(llmRequest('chat', chat({ stream: true })));
    const broken = parseSseText(await readAll(response));
    expect(broken).toHaveLength(2);
    expect(JSON.parse(broken[1]!.data)).toMatchObject({ error: { message: expect.stringMatching(/broke in the middle of the stream|ended the stream before it was complete/) } });
    expect(await response.usage).toBeNull();
  });

  it('appends a timeout error event when a stream goes silent', async () => {
    const silent = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('event: message_start\ndata: {"type":"message_start","message":{"model":"m","usage":{"input_tokens":9,"output_tokens":1}}}\n\n');
    });
    raw.push(silent);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as any).port;
    const response = await routerFor({ url: `http://127.0.0.1:${port}` }, {}, 300).handle(llmRequest('messages', { model: 'claude/m', max_tokens: 5, messages: [{ role: 'user', content: 'x' }], stream: true }));
    const events = parseSseText(await readAll(response));
    expect(events.at(-1)!.event).toBe('error');
    expect(JSON.parse(events.at(-1)!.data).error.message).toMatch(/sent nothing for 0\.3 s in the middle of the stream/);
    expect(await response.usage).toEqual({ input_tokens: 9, output_tokens: 1, model: 'm' });
  });
});
