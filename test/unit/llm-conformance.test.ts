// Streaming conformance: the same scripted turns through every (client API × provider API) pair
// — Chat Completions, Responses and Messages on each side, pass-through on the diagonal and
// translation elsewhere — over real HTTP against the scripted model server (a test double). The
// client must get a well-formed stream (or body) of its own API with the same text, the same tool
// calls (name + parsed arguments), the same usage and the error; tool results of a follow-up
// request must reach the provider in its own format.
import { afterEach, describe, expect, it } from 'vitest';
import { createModelRouter, parseModelsConfig, type LlmApi } from '../../src/llm/index.js';
import { startScriptedModelServer, type ScriptedModelServer, type ScriptedTurn } from '../support/model-server.js';
import { llmRequest, readAll } from '../support/llm-client.js';
import { readBody, readStream } from '../support/llm-readers.js';

const APIS: LlmApi[] = ['chat', 'responses', 'messages'];
const PROVIDER_FOR: Record<LlmApi, string> = { chat: 'p-chat', responses: 'p-responses', messages: 'p-messages' };

const servers: ScriptedModelServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function setup(script: ScriptedTurn[]) {
  const server = await startScriptedModelServer({ script });
  servers.push(server);
  const config = parseModelsConfig({
    default: 'p-chat',
    providers: {
      'p-chat': { type: 'openai-compatible', base_url: `${server.url}/v1`, api: 'chat', api_key_env: 'K' },
      'p-responses': { type: 'openai-compatible', base_url: `${server.url}/v1`, api: 'responses', api_key_env: 'K' },
      'p-messages': { type: 'anthropic', base_url: server.url, api_key_env: 'K' },
    },
  });
  return { server, router: createModelRouter(config, { env: { K: 'secret' } }) };
}

const readArgs = { type: 'object', properties: { path: { type: 'string' } }, required: ['path'] };
const TOOLS = [
  { name: 'read_file', description: 'Read a file', parameters: readArgs },
  { name: 'run', description: 'Run a command', parameters: { type: 'object', properties: { cmd: { type: 'string' } } } },
];

function firstRequest(api: LlmApi, model: string, stream: boolean): Record<string, unknown> {
  if (api === 'chat') {
    return {
      model,
      messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Fix the bug' }],
      tools: TOOLS.map((t) => ({ type: 'function', function: t })),
      ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
    };
  }
  if (api === 'responses') {
    return { model, instructions: 'Be brief.', input: 'Fix the bug', tools: TOOLS.map((t) => ({ type: 'function', ...t })), ...(stream ? { stream: true } : {}) };
  }
  return { model, system: 'Be brief.', max_tokens: 1024, messages: [{ role: 'user', content: 'Fix the bug' }], tools: TOOLS.map((t) => ({ name: t.name, description: t.description, input_schema: t.parameters })), ...(stream ? { stream: true } : {}) };
}

/** A follow-up carrying the previous tool call and its result, in the client's format. */
function followUp(api: LlmApi, model: string): Record<string, unknown> {
  const args = '{"path":"src/a.ts"}';
  if (api === 'chat') {
    return {
      model,
      messages: [
        { role: 'user', content: 'Fix the bug' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_77', type: 'function', function: { name: 'read_file', arguments: args } }] },
        { role: 'tool', tool_call_id: 'call_77', content: 'export const a = 1;' },
      ],
      tools: TOOLS.map((t) => ({ type: 'function', function: t })),
    };
  }
  if (api === 'responses') {
    return {
      model,
      input: [
        { role: 'user', content: 'Fix the bug' },
        { type: 'function_call', call_id: 'call_77', name: 'read_file', arguments: args },
        { type: 'function_call_output', call_id: 'call_77', output: 'export const a = 1;' },
      ],
      tools: TOOLS.map((t) => ({ type: 'function', ...t })),
    };
  }
  return {
    model,
    max_tokens: 1024,
    messages: [
      { role: 'user', content: 'Fix the bug' },
      { role: 'assistant', content: [{ type: 'tool_use', id: 'call_77', name: 'read_file', input: { path: 'src/a.ts' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'call_77', content: 'export const a = 1;' }] },
    ],
    tools: TOOLS.map((t) => ({ name: t.name, description: t.description, input_schema: t.parameters })),
  };
}

/** The tool result, the call id and the system prompt as the provider received them. */
function providerView(api: LlmApi, body: any): { system: string | undefined; toolNames: string[]; toolResult: { id: string; content: string } | undefined; callId: string | undefined } {
  if (api === 'chat') {
    const tool = body.messages.find((m: any) => m.role === 'tool');
    const call = body.messages.find((m: any) => m.tool_calls)?.tool_calls[0];
    return { system: body.messages.find((m: any) => m.role === 'system')?.content, toolNames: (body.tools ?? []).map((t: any) => t.function.name), toolResult: tool && { id: tool.tool_call_id, content: tool.content }, callId: call?.id };
  }
  if (api === 'responses') {
    const input = Array.isArray(body.input) ? body.input : [];
    const output = input.find((i: any) => i.type === 'function_call_output');
    const call = input.find((i: any) => i.type === 'function_call');
    return { system: body.instructions, toolNames: (body.tools ?? []).map((t: any) => t.name), toolResult: output && { id: output.call_id, content: output.output }, callId: call?.call_id };
  }
  const blocks = body.messages.flatMap((m: any) => (Array.isArray(m.content) ? m.content : []));
  const result = blocks.find((b: any) => b.type === 'tool_result');
  const call = blocks.find((b: any) => b.type === 'tool_use');
  return { system: body.system, toolNames: (body.tools ?? []).map((t: any) => t.name), toolResult: result && { id: result.tool_use_id, content: typeof result.content === 'string' ? result.content : result.content.map((c: any) => c.text).join('') }, callId: call?.id };
}

const TOOL_TURN: ScriptedTurn = {
  text: 'Let me look — ünïcödé 🚀.',
  toolCalls: [
    { name: 'read_file', arguments: { path: 'src/index.ts', note: 'quotes " and \\ backslashes, 🚀', lines: [1, 40] } },
    { name: 'run', arguments: { cmd: 'npm test -- --grep "a b"' } },
  ],
  usage: { input: 120, output: 30 },
};
const STOP_FOR: Record<LlmApi, { tools: string; text: string }> = {
  chat: { tools: 'tool_calls', text: 'stop' },
  responses: { tools: 'completed', text: 'completed' },
  messages: { tools: 'tool_use', text: 'end_turn' },
};

describe.each(APIS)('client %s', (client) => {
  describe.each(APIS)('provider %s', (provider) => {
    const model = `${PROVIDER_FOR[provider]}/model-x`;

    it.each([true, false])('text, parallel tool calls, stop reason and usage (stream: %s)', async (stream) => {
      const { server, router } = await setup([TOOL_TURN]);
      const response = await router.handle(llmRequest(client, firstRequest(client, model, stream)));
      expect(response.status).toBe(200);
      const text = await readAll(response);
      const answer = stream ? readStream(client, text) : readBody(client, text);
      expect(answer.error).toBeNull();
      expect(answer.text).toBe(TOOL_TURN.text);
      expect(answer.toolCalls.map((c) => ({ name: c.name, arguments: c.arguments }))).toEqual(TOOL_TURN.toolCalls);
      expect(new Set(answer.toolCalls.map((c) => c.id)).size).toBe(2);
      expect(answer.stop).toBe(STOP_FOR[client].tools);
      expect(answer.usage).toEqual({ input: 120, output: 30 });
      expect(await response.usage).toMatchObject({ input_tokens: 120, output_tokens: 30 });

      const seen = providerView(provider, server.requests[0]!.body);
      expect(server.requests[0]!.path).toBe({ chat: '/v1/chat/completions', responses: '/v1/responses', messages: '/v1/messages' }[provider]);
      expect(seen.system).toBe('Be brief.');
      expect(seen.toolNames).toEqual(['read_file', 'run']);
      expect((server.requests[0]!.body as any).model).toBe('model-x');
    });

    it('a follow-up carries the tool call and its result to the provider in its format', async () => {
      const { server, router } = await setup([{ text: 'All done.', usage: { input: 200, output: 5 } }]);
      const response = await router.handle(llmRequest(client, followUp(client, model)));
      const answer = readBody(client, await readAll(response));
      expect(answer).toMatchObject({ text: 'All done.', toolCalls: [], stop: STOP_FOR[client].text, usage: { input: 200, output: 5 } });
      const seen = providerView(provider, server.requests[0]!.body);
      expect(seen.toolResult).toEqual({ id: 'call_77', content: 'export const a = 1;' });
      expect(seen.callId).toBe('call_77');
    });

    it('a 200 stream that then errors ends with the client API stream error event', async () => {
      const { router } = await setup([{ text: 'Partial words then trouble', midStreamError: 'the model is overloaded' }]);
      const response = await router.handle(llmRequest(client, firstRequest(client, model, true)));
      expect(response.status).toBe(200);
      const answer = readStream(client, await readAll(response));
      expect(answer.error).toContain('the model is overloaded');
      expect(answer.text).toBe('Partial w');
    });

    it.each([true, false])('an HTTP error before the stream keeps its status, in the client format (stream: %s)', async (stream) => {
      const { router } = await setup([{ error: { status: 429, message: 'slow down' } }]);
      const response = await router.handle(llmRequest(client, firstRequest(client, model, stream)));
      expect(response.status).toBe(429);
      expect(response.headers['content-type']).toBe('application/json');
      expect(readBody(client, await readAll(response)).error).toContain('slow down');
      expect(await response.usage).toBeNull();
    });
  });
});
