// Strict readers of each wire API as its client SDK would read it: they reassemble an answer
// (text, tool calls with parsed arguments, usage, stop reason, error) from a stream or a JSON
// body, and throw when the stream is not well-formed for its API (wrong order, unknown block,
// missing terminal event, events after the end). Used by the conformance suite.
import type { LlmApi } from '../../src/llm/index.js';
import { parseSseText, type SseRecord } from './llm-client.js';

export interface ClientAnswer {
  text: string;
  toolCalls: Array<{ id: string; name: string; arguments: unknown }>;
  usage: { input: number; output: number } | null;
  stop: string | null;
  error: string | null;
}

function fail(message: string): never {
  throw new Error(`malformed stream: ${message}`);
}

/** Arguments of a finished call parse as JSON; a stream that failed may leave them cut off (kept as text). */
function finalArguments(text: string, error: string | null): unknown {
  if (error !== null) return text;
  return JSON.parse(text);
}

function json(record: SseRecord): any {
  try {
    return JSON.parse(record.data);
  } catch {
    fail(`data is not JSON: ${record.data.slice(0, 80)}`);
  }
}

function readChat(events: SseRecord[]): ClientAnswer {
  const answer: ClientAnswer = { text: '', toolCalls: [], usage: null, stop: null, error: null };
  const args: string[] = [];
  events.forEach((event, i) => {
    if (event.event !== undefined) fail('chat chunks have no event name');
    if (event.data === '[DONE]') {
      if (i !== events.length - 1) fail('[DONE] is not last');
      return;
    }
    const chunk = json(event);
    if (chunk.error) {
      if (i !== events.length - 1) fail('an error chunk is not last');
      answer.error = chunk.error.message;
      return;
    }
    if (chunk.object !== 'chat.completion.chunk') fail(`object is ${chunk.object}`);
    if (chunk.usage) answer.usage = { input: chunk.usage.prompt_tokens, output: chunk.usage.completion_tokens };
    for (const choice of chunk.choices) {
      if (answer.stop !== null) fail('content after finish_reason');
      const delta = choice.delta ?? {};
      if (typeof delta.content === 'string') answer.text += delta.content;
      for (const call of delta.tool_calls ?? []) {
        if (call.id !== undefined) {
          if (call.index !== answer.toolCalls.length) fail(`tool call index ${call.index} out of order`);
          answer.toolCalls.push({ id: call.id, name: call.function.name, arguments: undefined });
          args.push('');
        }
        if (args[call.index] === undefined) fail(`arguments for unknown tool call ${call.index}`);
        args[call.index] += call.function?.arguments ?? '';
      }
      if (choice.finish_reason) answer.stop = choice.finish_reason;
    }
  });
  const last = events.at(-1);
  if (!answer.error && last?.data !== '[DONE]') fail('no [DONE]');
  answer.toolCalls.forEach((call, i) => (call.arguments = finalArguments(args[i]!, answer.error)));
  return answer;
}

function readResponses(events: SseRecord[]): ClientAnswer {
  const answer: ClientAnswer = { text: '', toolCalls: [], usage: null, stop: null, error: null };
  const items = new Map<string, { type: string; args: string; call?: ClientAnswer['toolCalls'][number] }>();
  let sequence = -1;
  let ended = false;
  events.forEach((event, i) => {
    if (ended) fail('events after the terminal event');
    const data = json(event);
    if (event.event !== data.type) fail(`event name ${event.event} differs from type ${data.type}`);
    if (typeof data.sequence_number !== 'number' || data.sequence_number <= sequence) fail('sequence_number does not grow');
    sequence = data.sequence_number;
    if (i === 0 && data.type !== 'response.created') fail('first event is not response.created');
    switch (data.type) {
      case 'response.output_item.added':
        items.set(data.item.id, { type: data.item.type, args: '' });
        if (data.item.type === 'function_call') {
          const call = { id: data.item.call_id, name: data.item.name, arguments: undefined };
          answer.toolCalls.push(call);
          items.get(data.item.id)!.call = call;
        }
        break;
      case 'response.output_text.delta':
        if (items.get(data.item_id)?.type !== 'message') fail('text delta for an unknown message item');
        answer.text += data.delta;
        break;
      case 'response.function_call_arguments.delta':
        if (items.get(data.item_id)?.type !== 'function_call') fail('arguments delta for an unknown function_call item');
        items.get(data.item_id)!.args += data.delta;
        break;
      case 'response.function_call_arguments.done':
        if (items.get(data.item_id)!.args !== data.arguments) fail('arguments.done differs from the deltas');
        break;
      case 'response.completed':
      case 'response.incomplete':
        ended = true;
        answer.usage = { input: data.response.usage.input_tokens, output: data.response.usage.output_tokens };
        answer.stop = data.response.status;
        break;
      case 'error':
        ended = true;
        answer.error = data.message;
        break;
    }
  });
  if (!ended) fail('no response.completed or error');
  for (const item of items.values()) if (item.call) item.call.arguments = finalArguments(item.args, answer.error);
  return answer;
}

function readMessages(events: SseRecord[]): ClientAnswer {
  const answer: ClientAnswer = { text: '', toolCalls: [], usage: null, stop: null, error: null };
  const blocks = new Map<number, { type: string; open: boolean; json: string; call?: ClientAnswer['toolCalls'][number] }>();
  let ended = false;
  events.forEach((event, i) => {
    if (ended) fail('events after the terminal event');
    const data = json(event);
    if (event.event !== data.type) fail(`event name ${event.event} differs from type ${data.type}`);
    if (i === 0 && data.type !== 'message_start') fail('first event is not message_start');
    switch (data.type) {
      case 'message_start':
        answer.usage = { input: data.message.usage.input_tokens, output: data.message.usage.output_tokens };
        break;
      case 'content_block_start': {
        if (blocks.has(data.index)) fail(`block ${data.index} started twice`);
        const block: { type: string; open: boolean; json: string; call?: ClientAnswer['toolCalls'][number] } = { type: data.content_block.type, open: true, json: '' };
        if (block.type === 'tool_use') {
          block.call = { id: data.content_block.id, name: data.content_block.name, arguments: undefined };
          answer.toolCalls.push(block.call);
        }
        blocks.set(data.index, block);
        break;
      }
      case 'content_block_delta': {
        const block = blocks.get(data.index);
        if (!block?.open) fail(`delta for block ${data.index}, which is not open`);
        if (data.delta.type === 'text_delta') answer.text += data.delta.text;
        else if (data.delta.type === 'input_json_delta') block.json += data.delta.partial_json;
        break;
      }
      case 'content_block_stop':
        if (!blocks.get(data.index)?.open) fail(`stop for block ${data.index}, which is not open`);
        blocks.get(data.index)!.open = false;
        break;
      case 'message_delta':
        answer.stop = data.delta.stop_reason;
        answer.usage = { input: data.usage.input_tokens ?? answer.usage?.input ?? 0, output: data.usage.output_tokens };
        break;
      case 'message_stop':
        if ([...blocks.values()].some((b) => b.open)) fail('message_stop with a block still open');
        ended = true;
        break;
      case 'error':
        ended = true;
        answer.error = data.error.message;
        break;
    }
  });
  if (!ended) fail('no message_stop or error');
  for (const block of blocks.values()) if (block.call) block.call.arguments = block.json === '' ? {} : finalArguments(block.json, answer.error);
  return answer;
}

export function readStream(api: LlmApi, text: string): ClientAnswer {
  const events = parseSseText(text);
  return api === 'chat' ? readChat(events) : api === 'responses' ? readResponses(events) : readMessages(events);
}

/** A non-streaming body (or error body) read the same way. */
export function readBody(api: LlmApi, text: string): ClientAnswer {
  const body = JSON.parse(text);
  const answer: ClientAnswer = { text: '', toolCalls: [], usage: null, stop: null, error: null };
  if (api === 'messages' && body.type === 'error') return { ...answer, error: body.error.message };
  if (api !== 'messages' && body.error) return { ...answer, error: body.error.message };
  if (api === 'chat') {
    const message = body.choices[0].message;
    answer.text = message.content ?? '';
    answer.toolCalls = (message.tool_calls ?? []).map((c: any) => ({ id: c.id, name: c.function.name, arguments: JSON.parse(c.function.arguments) }));
    answer.stop = body.choices[0].finish_reason;
    answer.usage = { input: body.usage.prompt_tokens, output: body.usage.completion_tokens };
  } else if (api === 'responses') {
    for (const item of body.output) {
      if (item.type === 'message') answer.text += item.content.map((p: any) => p.text).join('');
      if (item.type === 'function_call') answer.toolCalls.push({ id: item.call_id, name: item.name, arguments: JSON.parse(item.arguments) });
    }
    answer.stop = body.status;
    answer.usage = { input: body.usage.input_tokens, output: body.usage.output_tokens };
  } else {
    for (const block of body.content) {
      if (block.type === 'text') answer.text += block.text;
      if (block.type === 'tool_use') answer.toolCalls.push({ id: block.id, name: block.name, arguments: block.input });
    }
    answer.stop = body.stop_reason;
    answer.usage = { input: body.usage.input_tokens, output: body.usage.output_tokens };
  }
  return answer;
}
