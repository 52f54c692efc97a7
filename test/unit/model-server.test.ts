// The scripted model server (a test double) over real HTTP: each provider format, streaming and
// not, must reassemble into exactly what the script said — a client built for the real provider
// has to be able to read it.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { conversationStep, offersNoTools, runModelServerCommand, startScriptedModelServer, TEST_DOUBLE_HEADER, type ScriptedModelServer, type ScriptedTurn } from '../support/model-server.js';

const servers: ScriptedModelServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(script: ScriptedTurn[] | ((r: any) => ScriptedTurn)): Promise<ScriptedModelServer> {
  const server = await startScriptedModelServer({ script });
  servers.push(server);
  return server;
}

async function post(server: ScriptedModelServer, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

interface Sse {
  event: string | undefined;
  data: string;
}
function parseSse(text: string): Sse[] {
  return text
    .split('\n\n')
    .filter((block) => block.trim() !== '')
    .map((block) => {
      let event: string | undefined;
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      return { event, data: data.join('\n') };
    });
}

const chat = { model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }] };
const responses = { model: 'gpt-test', input: 'hi' };
const messages = { model: 'claude-test', max_tokens: 1024, messages: [{ role: 'user', content: 'hi' }] };
const toolTurn: ScriptedTurn = { text: 'Let me look.', toolCalls: [{ name: 'read_file', arguments: { path: 'src/index.ts', lines: [1, 40], note: 'ünïcödé 🚀' } }, { name: 'run', arguments: { cmd: 'npm test' } }], usage: { input: 120, output: 30 } };

describe('OpenAI Chat Completions', () => {
  it('answers non-streaming with text, tool calls, finish_reason and usage', async () => {
    const server = await start([{ text: 'Hello there.', usage: { input: 10, output: 3 } }, toolTurn]);
    const first = await post(server, '/v1/chat/completions', chat);
    expect(first.status).toBe(200);
    expect(first.headers.get(TEST_DOUBLE_HEADER)).toBe('scripted-model-server');
    const a = await first.json() as any;
    expect(a.object).toBe('chat.completion');
    expect(a.model).toBe('gpt-test');
    expect(a.choices[0].message).toMatchObject({ role: 'assistant', content: 'Hello there.' });
    expect(a.choices[0].finish_reason).toBe('stop');
    expect(a.usage).toEqual({ prompt_tokens: 10, completion_tokens: 3, total_tokens: 13 });

    const b = await (await post(server, '/v1/chat/completions', chat)).json() as any;
    expect(b.choices[0].finish_reason).toBe('tool_calls');
    const calls = b.choices[0].message.tool_calls;
    expect(calls).toHaveLength(2);
    expect(calls[0]).toMatchObject({ type: 'function', function: { name: 'read_file' } });
    expect(typeof calls[0].id).toBe('string');
    expect(JSON.parse(calls[0].function.arguments)).toEqual(toolTurn.toolCalls![0]!.arguments);
    expect(JSON.parse(calls[1].function.arguments)).toEqual({ cmd: 'npm test' });
  });

  it('streams chunks whose tool arguments arrive split, by index, then a usage chunk and [DONE]', async () => {
    const server = await start([toolTurn]);
    const res = await post(server, '/v1/chat/completions', { ...chat, stream: true, stream_options: { include_usage: true } });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(res.headers.get(TEST_DOUBLE_HEADER)).toBe('scripted-model-server');
    const events = parseSse(await res.text());
    expect(events.at(-1)).toEqual({ event: undefined, data: '[DONE]' });
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
    for (const chunk of chunks) expect(chunk.object).toBe('chat.completion.chunk');
    const usageChunk = chunks.at(-1);
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage).toEqual({ prompt_tokens: 120, completion_tokens: 30, total_tokens: 150 });
    const body = chunks.slice(0, -1);
    for (const chunk of body) expect(chunk.usage).toBeNull();

    let text = '';
    const calls: Array<{ id?: string; name?: string; arguments: string; deltas: number }> = [];
    let finish: string | null = null;
    for (const chunk of body) {
      const choice = chunk.choices[0];
      if (choice.delta.content) text += choice.delta.content;
      for (const delta of choice.delta.tool_calls ?? []) {
        const call = (calls[delta.index] ??= { arguments: '', deltas: 0 });
        if (delta.id) call.id = delta.id;
        if (delta.function?.name) call.name = delta.function.name;
        if (delta.function?.arguments) {
          call.arguments += delta.function.arguments;
          call.deltas++;
        }
      }
      finish = choice.finish_reason ?? finish;
    }
    expect(text).toBe('Let me look.');
    expect(finish).toBe('tool_calls');
    expect(calls.map((c) => c.name)).toEqual(['read_file', 'run']);
    expect(calls.every((c) => c.deltas > 1)).toBe(true);
    expect(JSON.parse(calls[0]!.arguments)).toEqual(toolTurn.toolCalls![0]!.arguments);
    expect(JSON.parse(calls[1]!.arguments)).toEqual({ cmd: 'npm test' });
  });

  it('streams without a usage chunk unless include_usage asks for one', async () => {
    const server = await start([{ text: 'abc def ghi' }]);
    const events = parseSse(await (await post(server, '/v1/chat/completions', { ...chat, stream: true })).text());
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
    expect(chunks.every((c) => c.choices.length === 1 && !('usage' in c))).toBe(true);
    expect(chunks.map((c) => c.choices[0].delta.content ?? '').join('')).toBe('abc def ghi');
  });

  it('fails mid-stream with an in-stream error and no [DONE]', async () => {
    const server = await start([{ text: 'Starting the work now', midStreamError: 'upstream connection reset' }]);
    const res = await post(server, '/v1/chat/completions', { ...chat, stream: true });
    expect(res.status).toBe(200);
    const events = parseSse(await res.text());
    expect(events.some((e) => e.data === '[DONE]')).toBe(false);
    const payloads = events.map((e) => JSON.parse(e.data));
    expect(payloads.some((p) => p.choices?.[0]?.delta?.content)).toBe(true);
    expect(payloads.at(-1)).toEqual({ error: { message: 'upstream connection reset', type: 'server_error', param: null, code: null } });
  });
});

describe('OpenAI Responses', () => {
  it('answers non-streaming with message and function_call items and usage', async () => {
    const server = await start([toolTurn]);
    const res = await post(server, '/v1/responses', responses);
    expect(res.headers.get(TEST_DOUBLE_HEADER)).toBe('scripted-model-server');
    const body = await res.json() as any;
    expect(body).toMatchObject({ object: 'response', status: 'completed', model: 'gpt-test' });
    expect(body.output[0]).toMatchObject({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Let me look.' }] });
    expect(body.output[1]).toMatchObject({ type: 'function_call', name: 'read_file' });
    expect(body.output[1].call_id).toMatch(/^call_/);
    expect(JSON.parse(body.output[1].arguments)).toEqual(toolTurn.toolCalls![0]!.arguments);
    expect(body.output[2]).toMatchObject({ type: 'function_call', name: 'run' });
    expect(body.usage).toMatchObject({ input_tokens: 120, output_tokens: 30, total_tokens: 150 });
  });

  it('streams typed events whose deltas reassemble, ending with response.completed', async () => {
    const server = await start([toolTurn]);
    const events = parseSse(await (await post(server, '/v1/responses', { ...responses, stream: true })).text());
    const payloads = events.map((e) => JSON.parse(e.data));
    events.forEach((e, i) => {
      expect(e.event).toBe(payloads[i].type);
      expect(payloads[i].sequence_number).toBe(i);
    });
    const types = payloads.map((p) => p.type);
    expect(types[0]).toBe('response.created');
    expect(types.at(-1)).toBe('response.completed');
    for (const t of ['response.output_item.added', 'response.output_text.delta', 'response.function_call_arguments.delta', 'response.output_item.done']) expect(types).toContain(t);

    const text = payloads.filter((p) => p.type === 'response.output_text.delta').map((p) => p.delta).join('');
    expect(text).toBe('Let me look.');
    const added = payloads.filter((p) => p.type === 'response.output_item.added' && p.item.type === 'function_call');
    expect(added.map((p) => p.item.name)).toEqual(['read_file', 'run']);
    for (const [n, item] of added.entries()) {
      const deltas = payloads.filter((p) => p.type === 'response.function_call_arguments.delta' && p.item_id === item.item.id);
      expect(deltas.length).toBeGreaterThan(1);
      expect(deltas.every((d) => d.output_index === item.output_index)).toBe(true);
      expect(JSON.parse(deltas.map((d) => d.delta).join(''))).toEqual(toolTurn.toolCalls![n]!.arguments);
    }
    const completed = payloads.at(-1).response;
    expect(completed.status).toBe('completed');
    expect(completed.usage).toMatchObject({ input_tokens: 120, output_tokens: 30 });
    expect(completed.output).toHaveLength(3);
  });

  it('fails mid-stream with an error event', async () => {
    const server = await start([{ midStreamError: 'model overloaded' }]);
    const events = parseSse(await (await post(server, '/v1/responses', { ...responses, stream: true })).text());
    expect(events.map((e) => e.event)).toContain('response.output_text.delta');
    const last = events.at(-1)!;
    expect(last.event).toBe('error');
    expect(JSON.parse(last.data)).toMatchObject({ type: 'error', code: 'server_error', message: 'model overloaded' });
    expect(events.map((e) => e.event)).not.toContain('response.completed');
  });
});

describe('Anthropic Messages', () => {
  it('answers non-streaming with text and tool_use blocks, stop_reason and usage', async () => {
    const server = await start([{ text: 'Done.', usage: { input: 5, output: 2 } }, toolTurn]);
    const a = await (await post(server, '/v1/messages', messages)).json() as any;
    expect(a).toMatchObject({ type: 'message', role: 'assistant', model: 'claude-test', content: [{ type: 'text', text: 'Done.' }], stop_reason: 'end_turn', usage: { input_tokens: 5, output_tokens: 2 } });
    const b = await (await post(server, '/v1/messages', messages)).json() as any;
    expect(b.stop_reason).toBe('tool_use');
    expect(b.content[1]).toMatchObject({ type: 'tool_use', name: 'read_file', input: toolTurn.toolCalls![0]!.arguments });
    expect(b.content[1].id).toMatch(/^toolu_/);
    expect(b.content[2]).toMatchObject({ type: 'tool_use', name: 'run', input: { cmd: 'npm test' } });
  });

  it('streams event:/data: pairs whose input_json_delta fragments reassemble', async () => {
    const server = await start([toolTurn]);
    const res = await post(server, '/v1/messages', { ...messages, stream: true });
    expect(res.headers.get(TEST_DOUBLE_HEADER)).toBe('scripted-model-server');
    const events = parseSse(await res.text());
    const payloads = events.map((e) => JSON.parse(e.data));
    events.forEach((e, i) => expect(e.event).toBe(payloads[i].type));
    const types = payloads.map((p) => p.type);
    expect(types[0]).toBe('message_start');
    expect(types.slice(-2)).toEqual(['message_delta', 'message_stop']);
    expect(payloads[0].message).toMatchObject({ role: 'assistant', content: [], usage: { input_tokens: 120 } });

    const blocks: Array<{ type: string; name?: string; text: string; json: string; deltas: number; stopped: boolean }> = [];
    for (const p of payloads) {
      if (p.type === 'content_block_start') blocks[p.index] = { type: p.content_block.type, name: p.content_block.name, text: '', json: '', deltas: 0, stopped: false };
      if (p.type === 'content_block_delta') {
        const block = blocks[p.index]!;
        block.deltas++;
        if (p.delta.type === 'text_delta') block.text += p.delta.text;
        if (p.delta.type === 'input_json_delta') block.json += p.delta.partial_json;
      }
      if (p.type === 'content_block_stop') blocks[p.index]!.stopped = true;
    }
    expect(blocks.map((b) => b.type)).toEqual(['text', 'tool_use', 'tool_use']);
    expect(blocks.every((b) => b.stopped && b.deltas > 1)).toBe(true);
    expect(blocks[0]!.text).toBe('Let me look.');
    expect(JSON.parse(blocks[1]!.json)).toEqual(toolTurn.toolCalls![0]!.arguments);
    expect(JSON.parse(blocks[2]!.json)).toEqual({ cmd: 'npm test' });
    const delta = payloads.at(-2);
    expect(delta).toMatchObject({ delta: { stop_reason: 'tool_use' }, usage: { output_tokens: 30 } });
  });

  it('fails mid-stream with an error event in Anthropic form', async () => {
    const server = await start([{ text: 'Working on it', midStreamError: 'Overloaded' }]);
    const res = await post(server, '/v1/messages', { ...messages, stream: true });
    expect(res.status).toBe(200);
    const events = parseSse(await res.text());
    expect(events.map((e) => e.event)).toContain('content_block_delta');
    expect(events.at(-1)!.event).toBe('error');
    expect(JSON.parse(events.at(-1)!.data)).toEqual({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
  });
});

describe('scripted errors, delays, exhaustion and malformed requests', () => {
  it('answers a scripted error with the status and each provider’s own error body', async () => {
    const server = await start([
      { error: { status: 429, message: 'slow down' } },
      { error: { status: 529, message: 'overloaded' } },
      { error: { status: 401, message: 'bad key' } },
    ]);
    const openai = await post(server, '/v1/chat/completions', chat);
    expect(openai.status).toBe(429);
    expect(openai.headers.get(TEST_DOUBLE_HEADER)).toBe('scripted-model-server');
    expect(await openai.json() as any).toEqual({ error: { message: 'slow down', type: 'requests', param: null, code: 'rate_limit_exceeded' } });
    const anthropic = await post(server, '/v1/messages', { ...messages, stream: true });
    expect(anthropic.status).toBe(529);
    expect(await anthropic.json() as any).toEqual({ type: 'error', error: { type: 'overloaded_error', message: 'overloaded' } });
    const resp = await post(server, '/v1/responses', responses);
    expect(resp.status).toBe(401);
    expect((await resp.json() as any).error).toMatchObject({ message: 'bad key', code: 'invalid_api_key' });
  });

  it('waits delayMs before answering', async () => {
    const server = await start([{ text: 'slow', delayMs: 300 }]);
    const started = performance.now();
    const res = await post(server, '/v1/chat/completions', chat);
    expect(res.status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
  });

  it('closes promptly even while a delayed turn is pending', async () => {
    const server = await startScriptedModelServer({ script: [{ text: 'never', delayMs: 60_000 }] });
    const pending = post(server, '/v1/chat/completions', chat).catch((e: unknown) => e);
    while (server.requests.length === 0) await new Promise((r) => setTimeout(r, 10));
    // The turn waits 60 s, twice the test timeout: if close waited for it, this test would time out.
    await server.close();
    expect(await pending).toBeInstanceOf(Error);
  });

  it('answers 500 naming the script length once the script runs out', async () => {
    const server = await start([{ text: 'one' }, { text: 'two' }]);
    await post(server, '/v1/chat/completions', chat);
    await post(server, '/v1/messages', messages);
    const res = await post(server, '/v1/messages', messages);
    expect(res.status).toBe(500);
    const body = await res.json() as any;
    expect(body.type).toBe('error');
    expect(body.error.type).toBe('api_error');
    expect(body.error.message).toMatch(/script ran out — it had 2 turns and this is request 3/);
  });

  it('answers malformed requests with 400 in the provider’s shape, without consuming a turn', async () => {
    const server = await start([{ text: 'kept' }]);
    const noModel = await post(server, '/v1/chat/completions', { messages: chat.messages });
    expect(noModel.status).toBe(400);
    const a = await noModel.json() as any;
    expect(a.error.type).toBe('invalid_request_error');
    expect(a.error.message).toMatch(/model/);
    const notJson = await post(server, '/v1/messages', '{not json');
    expect(notJson.status).toBe(400);
    const b = await notJson.json() as any;
    expect(b).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
    expect(b.error.message).toMatch(/not valid JSON/);
    const noInput = await post(server, '/v1/responses', { model: 'gpt-test' });
    expect(noInput.status).toBe(400);
    expect((await noInput.json() as any).error.message).toMatch(/input/);
    const noMaxTokens = await post(server, '/v1/messages', { model: 'c', messages: messages.messages });
    expect((await noMaxTokens.json() as any).error.message).toMatch(/max_tokens/);
    const ok = await (await post(server, '/v1/chat/completions', chat)).json() as any;
    expect(ok.choices[0].message.content).toBe('kept');
  });

  it('answers unknown routes 404 naming the routes it serves', async () => {
    const server = await start([]);
    const res = await fetch(`${server.url}/v1/embeddings`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(404);
    expect(res.headers.get(TEST_DOUBLE_HEADER)).toBe('scripted-model-server');
    expect((await res.json() as any).error.message).toMatch(/\/v1\/chat\/completions/);
  });
});

describe('what CLI agents call around the model routes', () => {
  it('answers HEAD /, GET /v1/models (both dialects) and count_tokens without taking a turn, and accepts ?beta=true', async () => {
    const server = await startScriptedModelServer({ script: [{ text: 'the only turn' }], models: ['m-a', 'm-b'] });
    servers.push(server);
    const head = await fetch(`${server.url}/`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get(TEST_DOUBLE_HEADER)).toBe('scripted-model-server');
    const openai = await (await fetch(`${server.url}/v1/models`)).json() as any;
    expect(openai).toMatchObject({ object: 'list', data: [{ id: 'm-a', object: 'model' }, { id: 'm-b' }] });
    const anthropic = await (await fetch(`${server.url}/v1/models`, { headers: { 'anthropic-version': '2023-06-01' } })).json() as any;
    expect(anthropic).toMatchObject({ data: [{ type: 'model', id: 'm-a' }, { id: 'm-b' }], has_more: false, first_id: 'm-a', last_id: 'm-b' });
    const count = await (await post(server, '/v1/messages/count_tokens', { model: 'c', messages: [{ role: 'user', content: 'x'.repeat(400) }] })).json() as any;
    expect(count.input_tokens).toBeGreaterThan(90);
    const answer = await (await post(server, '/v1/messages?beta=true', messages)).json() as any;
    expect(answer.content[0].text).toBe('the only turn');
    expect(server.requests.map((r) => r.api)).toEqual(['unknown', 'unknown', 'unknown', 'unknown', 'messages']);
    expect(server.requests.at(-1)!.path).toBe('/v1/messages?beta=true');
  });

  it('conversationStep counts tool results in each API; offersNoTools spots side calls', () => {
    const rec = (api: any, body: unknown) => ({ api, method: 'POST', path: '/', headers: {}, hasAuthorization: false, body });
    expect(conversationStep(rec('chat-completions', { messages: [{ role: 'user' }, { role: 'assistant' }, { role: 'tool' }, { role: 'tool' }] }))).toBe(2);
    expect(conversationStep(rec('responses', { input: [{ type: 'message' }, { type: 'function_call' }, { type: 'function_call_output' }] }))).toBe(1);
    expect(conversationStep(rec('messages', { messages: [{ role: 'user', content: 'hi' }, { role: 'user', content: [{ type: 'tool_result' }, { type: 'text' }, { type: 'tool_result' }] }] }))).toBe(2);
    expect(conversationStep(rec('responses', 'not json'))).toBe(0);
    expect(offersNoTools(rec('messages', { tools: [] }))).toBe(true);
    expect(offersNoTools(rec('messages', { tools: [{ name: 'Bash' }] }))).toBe(false);
  });
});

describe('recording and the function form', () => {
  it('records path, headers and body, but only the presence of credentials', async () => {
    const server = await start([{ text: 'a' }, { text: 'b' }]);
    await post(server, '/v1/chat/completions', chat, { authorization: 'Bearer sk-secret-123', 'x-custom': 'yes' });
    await post(server, '/v1/messages', messages, { 'x-api-key': 'sk-ant-secret', 'anthropic-version': '2023-06-01' });
    expect(server.requests).toHaveLength(2);
    expect(server.requests[0]).toMatchObject({ api: 'chat-completions', method: 'POST', path: '/v1/chat/completions', hasAuthorization: true, body: chat });
    expect(server.requests[0]!.headers['x-custom']).toBe('yes');
    expect(server.requests[1]).toMatchObject({ api: 'messages', hasAuthorization: true, body: messages });
    expect(server.requests[1]!.headers['anthropic-version']).toBe('2023-06-01');
    expect(JSON.stringify(server.requests)).not.toMatch(/secret/);
  });

  it('lets a function choose each turn from the recorded request', async () => {
    const server = await start((request) => ({ text: `you said ${request.body.messages.at(-1).content}` }));
    const a = await (await post(server, '/v1/messages', messages)).json() as any;
    expect(a.content[0].text).toBe('you said hi');
    const b = await (await post(server, '/v1/chat/completions', { ...chat, messages: [{ role: 'user', content: 'again' }] })).json() as any;
    expect(b.choices[0].message.content).toBe('you said again');
  });

  it('rejects a malformed script naming the turn and field', async () => {
    await expect(startScriptedModelServer({ script: [{ text: 'ok' }, { txet: 'typo' } as ScriptedTurn] })).rejects.toThrow(/: \[1\]: unknown field "txet"/);
    await expect(startScriptedModelServer({ script: [{ error: { status: 200, message: 'x' } }] })).rejects.toThrow(/\[0\]\.error\.status: a scripted error status must be 4xx or 5xx/);
  });
});

describe('runModelServerCommand', () => {
  it('loads a YAML script, serves it and prints the URL', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'airlock-model-script-'));
    try {
      const file = join(dir, 'script.yaml');
      await writeFile(file, '- text: from yaml\n- toolCalls:\n    - name: run\n      arguments: { cmd: ls }\n');
      const lines: string[] = [];
      const server = await runModelServerCommand({ port: 0, scriptFile: file, print: (line) => lines.push(line) });
      servers.push(server);
      expect(lines.join('\n')).toContain(server.url);
      expect(lines[0]).toMatch(/TEST DOUBLE/);
      const a = await (await post(server, '/v1/chat/completions', chat)).json() as any;
      expect(a.choices[0].message.content).toBe('from yaml');
      const b = await (await post(server, '/v1/messages', messages)).json() as any;
      expect(b.content[0]).toMatchObject({ type: 'tool_use', name: 'run', input: { cmd: 'ls' } });

      const bad = join(dir, 'bad.json');
      await writeFile(bad, JSON.stringify([{ text: 'x' }, { toolCalls: [{ name: 'run', arguments: 'ls' }] }]));
      await expect(runModelServerCommand({ port: 0, scriptFile: bad, print: () => {} })).rejects.toThrow(/bad\.json.*\[1\]\.toolCalls\[0\]\.arguments: expected record/);
      const notList = join(dir, 'map.yaml');
      await writeFile(notList, 'text: hi\n');
      await expect(runModelServerCommand({ port: 0, scriptFile: notList, print: () => {} })).rejects.toThrow(/must be a list of turns/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('serves a canned answer when run without a script file', async () => {
    const server = await runModelServerCommand({ port: 0, print: () => {} });
    servers.push(server);
    const body = await (await post(server, '/v1/responses', responses)).json() as any;
    expect(body.output[0].content[0].text).toMatch(/test double/);
  });
});
