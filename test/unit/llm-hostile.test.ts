// Hostile providers and hostile clients: a provider that answers garbage, hangs, cuts the
// connection, or breaks its stream with malformed events; a client whose request cannot be
// translated, or who goes away mid-stream. Every case ends in a well-formed answer of the
// client's own API (or a clean stop), never a crash or a hung request.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { createModelRouter, createProvider, parseModelsConfig, type LlmApi } from '../../src/llm/index.js';
import { httpPost } from '../../src/lib/http-post.js';
import { llmRequest, readAll } from '../support/llm-client.js';
import { readBody, readStream } from '../support/llm-readers.js';

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((done) => { s.closeAllConnections(); s.close(done); })));
});

/** A provider that does whatever `handler` does. */
async function rawProvider(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

/** A router whose default provider speaks `api` at `url`. */
function routerAt(url: string, api: LlmApi, timeoutMs = 5_000) {
  const provider = api === 'messages' ? { type: 'anthropic', base_url: url, api_key_env: 'K' } : { type: 'openai-compatible', base_url: `${url}/v1`, api };
  return createModelRouter(parseModelsConfig({ default: 'p', providers: { p: provider } }), { env: { K: 'k' }, timeoutMs });
}

const BODIES: Record<LlmApi, (stream: boolean) => Record<string, unknown>> = {
  chat: (stream) => ({ model: 'm', messages: [{ role: 'user', content: 'hi' }], stream }),
  responses: (stream) => ({ model: 'm', input: 'hi', stream }),
  messages: (stream) => ({ model: 'm', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }], stream }),
};
const APIS: LlmApi[] = ['chat', 'responses', 'messages'];
const PAIRS = APIS.flatMap((client) => APIS.map((provider) => [client, provider] as [LlmApi, LlmApi]));

describe('a provider answering garbage', () => {
  it.each(PAIRS)('client %s, provider %s: a 200 body that is not JSON → 502 in the client format', async (client, provider) => {
    const url = await rawProvider((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"id": "x", "choices": [tru');
    });
    const response = await routerAt(url, provider).handle(llmRequest(client, BODIES[client](false)));
    expect(response.status).toBe(502);
    expect(readBody(client, await readAll(response)).error).toMatch(/not a JSON object/);
  });

  it.each(PAIRS)('client %s, provider %s: an HTML error page → its status and a short message in the client format', async (client, provider) => {
    const url = await rawProvider((_req, res) => {
      res.writeHead(503, { 'content-type': 'text/html' });
      res.end('<html><body>' + 'x'.repeat(100_000) + '</body></html>');
    });
    const response = await routerAt(url, provider).handle(llmRequest(client, BODIES[client](true)));
    expect(response.status).toBe(503);
    const message = readBody(client, await readAll(response)).error!;
    expect(message).toMatch(/HTTP 503/);
    expect(message.length).toBeLessThan(300);
  });

  it.each<LlmApi>(['responses', 'messages'])('client %s: malformed stream events from a chat provider are skipped in translation, the rest arrives', async (client) => {
    const url = await rawProvider((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n');
      res.write('data: {not json at all\n\n: a comment line\n\n');
      res.write('data: {"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}\n\n');
      res.end('data: [DONE]\n\n');
    });
    const response = await routerAt(url, 'chat').handle(llmRequest(client, BODIES[client](true)));
    const answer = readStream(client, await readAll(response));
    expect(answer.text).toBe('Hello');
    expect(answer.error).toBeNull();
  });
});

describe('a provider failing in time', () => {
  it.each(PAIRS)('client %s, provider %s: a provider that never answers → 504 naming the timeout', async (client, provider) => {
    const url = await rawProvider(() => undefined);
    const response = await routerAt(url, provider, 200).handle(llmRequest(client, BODIES[client](true)));
    expect(response.status).toBe(504);
    expect(readBody(client, await readAll(response)).error).toMatch(/did not answer within 0\.2 s/);
  });

  it.each(APIS)('client %s: a messages provider closing the connection mid-stream → the client API error event', async (client) => {
    const url = await rawProvider((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","model":"m","usage":{"input_tokens":3,"output_tokens":1}}}\n\n');
      res.write('event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"run","input":{}}}\n\n');
      res.write('event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\\"cmd\\": \\"ls"}}\n\n');
      setTimeout(() => res.destroy(), 30);
    });
    const response = await routerAt(url, 'messages').handle(llmRequest(client, BODIES[client](true)));
    expect(response.status).toBe(200);
    const answer = readStream(client, await readAll(response));
    expect(answer.toolCalls).toEqual([{ id: 'toolu_1', name: 'run', arguments: '{"cmd": "ls' }]);
    expect(answer.error).toMatch(/broke in the middle of the stream|ended the stream before it was complete/);
    expect(await response.usage).toMatchObject({ input_tokens: 3 });
  });
});

describe('lenient where it is safe', () => {
  it.each(APIS)('client %s: a chat provider that ends after finish_reason without [DONE] is complete, not an error', async (client) => {
    const url = await rawProvider((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end('data: {"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"Done."},"finish_reason":"stop"}]}\n\n');
    });
    const response = await routerAt(url, 'chat').handle(llmRequest(client, BODIES[client](true)));
    const text = await readAll(response);
    if (client === 'chat') {
      expect(text).not.toMatch(/error/);
      return;
    }
    expect(readStream(client, text)).toMatchObject({ text: 'Done.', error: null });
  });
});

describe('keep-alive', () => {
  it('a translated stream that goes quiet (thinking, pings) gets SSE comments, which clients ignore', async () => {
    const url = await rawProvider((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const events = [
        '{"type":"message_start","message":{"id":"msg_1","model":"m","usage":{"input_tokens":2,"output_tokens":1}}}',
        '{"type":"ping"}',
        '{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}',
        '{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}',
        '{"type":"content_block_stop","index":0}',
        '{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}',
        '{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Answer."}}',
        '{"type":"content_block_stop","index":1}',
        '{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}',
        '{"type":"message_stop"}',
      ];
      let i = 0;
      const timer = setInterval(() => {
        const data = events[i++]!;
        res.write(`event: ${JSON.parse(data).type}\ndata: ${data}\n\n`);
        if (i === events.length) {
          clearInterval(timer);
          res.end();
        }
      }, 5);
    });
    const upstream = { apis: ['messages'] as LlmApi[], target: url, send: (call: any) => httpPost(`${url}/v1/messages`, { headers: {}, body: JSON.stringify(call.body), signal: call.signal }) };
    const provider = createProvider({ name: 'p', type: 'anthropic', upstream, timeoutMs: 5_000, keepAliveMs: 0 });
    const response = await provider.handle(llmRequest('chat', BODIES.chat(true)));
    const text = await readAll(response);
    expect(text).toContain(': keep-alive\n\n');
    expect(readStream('chat', text)).toMatchObject({ text: 'Answer.', error: null, stop: 'stop' });
  });
});

describe('pass-through stays byte for byte', () => {
  it('malformed events from a chat provider reach a chat client unchanged', async () => {
    const stream = 'data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\ndata: {not json at all\n\n: comment\n\ndata: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n';
    const url = await rawProvider((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(stream);
    });
    const response = await routerAt(url, 'chat').handle(llmRequest('chat', { ...BODIES.chat(true), stream_options: { include_usage: true } }));
    expect(await readAll(response)).toBe(stream);
  });
});

describe('hostile clients', () => {
  it.each<[LlmApi, LlmApi, Record<string, unknown>, RegExp]>([
    ['responses', 'chat', { model: 'm', input: 'hi', tools: [{ type: 'web_search' }] }, /tools\[0\]: "web_search" tools cannot be translated/],
    ['responses', 'messages', { model: 'm', input: 'hi', previous_response_id: 'resp_1' }, /previous_response_id: stored conversations cannot be translated/],
    ['messages', 'chat', { model: 'm', max_tokens: 5, messages: [{ role: 'user', content: [{ type: 'document', source: {} }] }] }, /messages\[0\]\.content\[0\]\.type: "document" blocks cannot be translated/],
    ['chat', 'messages', { model: 'm', messages: [{ role: 'wizard', content: 'x' }] }, /messages\[0\]\.role: "wizard" is not one of/],
    ['chat', 'responses', { model: 'm', messages: [{ role: 'tool', content: 'x' }] }, /messages\[0\]\.tool_call_id: required/],
  ])('a %s request that cannot be translated for a %s provider → 400 naming the field', async (client, provider, body, message) => {
    let called = false;
    const url = await rawProvider((_req, res) => {
      called = true;
      res.end();
    });
    const response = await routerAt(url, provider).handle(llmRequest(client, body));
    expect(response.status).toBe(400);
    expect(readBody(client, await readAll(response)).error).toMatch(message);
    expect(called).toBe(false);
  });

  it('a client that goes away mid-stream closes the provider connection and usage still settles', async () => {
    let closed!: () => void;
    const providerSawClose = new Promise<void>((done) => (closed = done));
    const url = await rawProvider((req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('event: message_start\ndata: {"type":"message_start","message":{"model":"m","usage":{"input_tokens":4,"output_tokens":1}}}\n\n');
      res.write('event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n');
      res.write('event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}\n\n');
      const timer = setInterval(() => res.write('event: ping\ndata: {"type":"ping"}\n\n'), 10);
      res.on('close', () => {
        clearInterval(timer);
        closed();
      });
      req.resume();
    });
    const controller = new AbortController();
    const response = await routerAt(url, 'messages').handle(llmRequest('chat', BODIES.chat(true), { signal: controller.signal }));
    for await (const _chunk of response.body) break;
    await providerSawClose;
    expect(await response.usage).toMatchObject({ input_tokens: 4 });
  });

  it('a client that aborts before the provider answers gets a 499 and the provider call is cancelled', async () => {
    let closed!: () => void;
    const providerSawClose = new Promise<void>((done) => (closed = done));
    const url = await rawProvider((req) => req.on('close', () => closed()));
    const controller = new AbortController();
    const pending = routerAt(url, 'chat').handle(llmRequest('chat', BODIES.chat(false), { signal: controller.signal }));
    setTimeout(() => controller.abort(), 50);
    expect((await pending).status).toBe(499);
    await providerSawClose;
  });
});
