/**
 * Pure builders for the wire formats the scripted model server (a TEST DOUBLE, not a provider)
 * speaks: OpenAI Chat Completions, OpenAI Responses and Anthropic Messages — response bodies,
 * server-sent event sequences and error bodies, as plain objects. No I/O here: the server turns
 * them into bytes. Invariant: concatenating every streamed delta of a block gives exactly the
 * text or the JSON arguments of the non-streaming answer for the same turn.
 */
import { errorBody as llmErrorBody } from '../llm/errors.js';

/** A turn ready to send: ids assigned, tool arguments serialized once so every format carries the same bytes. */
export interface ResolvedTurn {
  model: string;
  /** Base id of this answer; each format prefixes it the way its provider does. */
  id: string;
  text: string | undefined;
  toolCalls: Array<{ id: string; name: string; argumentsJson: string }>;
  usage: { input: number; output: number };
  /** Seconds since the epoch, as every provider reports it. */
  created: number;
}

/** One server-sent event; `event` is omitted for formats that send bare `data:` lines. */
export interface SseEvent {
  event?: string;
  data: string;
}

export type ProviderApi = 'chat-completions' | 'responses' | 'messages';

/**
 * Streams split every text and every tool argument string into this many deltas: two would
 * already catch a client that keeps only the last delta; three also gives a middle fragment that
 * is neither a prefix nor a suffix, which catches clients that parse each fragment as JSON.
 */
export const STREAM_PIECES = 3;

/** Text sent before a `midStreamError` when the turn scripts none of its own. */
const DEFAULT_PARTIAL_TEXT = 'Partial output before the scripted failure';

/** Split into at most `pieces` non-empty parts, never inside a code point. */
export function splitPieces(value: string, pieces = STREAM_PIECES): string[] {
  const points = Array.from(value);
  if (points.length === 0) return [];
  const size = Math.ceil(points.length / pieces);
  const parts: string[] = [];
  for (let i = 0; i < points.length; i += size) parts.push(points.slice(i, i + size).join(''));
  return parts;
}

/** The text a mid-stream failure sends first: the start of the scripted text, or a placeholder. */
export function partialText(turn: ResolvedTurn): string {
  return turn.text ? (splitPieces(turn.text)[0] ?? DEFAULT_PARTIAL_TEXT) : DEFAULT_PARTIAL_TEXT;
}

const json = (value: unknown): string => JSON.stringify(value);

// ---------------------------------------------------------------------------------------------
// Errors: each provider's own body, by HTTP status.

/** The provider's own error body: the same tables the model router answers with (llm/errors.ts). */
export function errorBody(api: ProviderApi, status: number, message: string): unknown {
  return llmErrorBody(api === 'chat-completions' ? 'chat' : api, status, message);
}

// ---------------------------------------------------------------------------------------------
// OpenAI Chat Completions.

export function chatCompletionBody(turn: ResolvedTurn): unknown {
  const hasTools = turn.toolCalls.length > 0;
  return {
    id: `chatcmpl-${turn.id}`,
    object: 'chat.completion',
    created: turn.created,
    model: turn.model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: turn.text ?? null,
          refusal: null,
          ...(hasTools ? { tool_calls: turn.toolCalls.map((call) => ({ id: call.id, type: 'function', function: { name: call.name, arguments: call.argumentsJson } })) } : {}),
        },
        logprobs: null,
        finish_reason: hasTools ? 'tool_calls' : 'stop',
      },
    ],
    usage: { prompt_tokens: turn.usage.input, completion_tokens: turn.usage.output, total_tokens: turn.usage.input + turn.usage.output },
  };
}

/**
 * `data: {chat.completion.chunk}` lines, then `data: [DONE]`. With `includeUsage`, every chunk
 * carries `usage: null` and one last chunk with empty `choices` carries the totals (OpenAI's
 * `stream_options.include_usage`). With `failWith`, the stream stops after some text with
 * OpenAI's in-stream error (`data: {"error": …}`) and no `[DONE]`.
 */
export function chatCompletionStream(turn: ResolvedTurn, options: { includeUsage: boolean; failWith?: string }): SseEvent[] {
  const chunk = (delta: Record<string, unknown>, finishReason: string | null = null): SseEvent => ({
    data: json({
      id: `chatcmpl-${turn.id}`,
      object: 'chat.completion.chunk',
      created: turn.created,
      model: turn.model,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
      ...(options.includeUsage ? { usage: null } : {}),
    }),
  });
  const events: SseEvent[] = [chunk({ role: 'assistant', content: '', refusal: null })];
  if (options.failWith !== undefined) {
    events.push(chunk({ content: partialText(turn) }));
    events.push({ data: json(errorBody('chat-completions', 500, options.failWith)) });
    return events;
  }
  for (const piece of splitPieces(turn.text ?? '')) events.push(chunk({ content: piece }));
  turn.toolCalls.forEach((call, index) => {
    events.push(chunk({ tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } }] }));
    for (const piece of splitPieces(call.argumentsJson)) events.push(chunk({ tool_calls: [{ index, function: { arguments: piece } }] }));
  });
  events.push(chunk({}, turn.toolCalls.length > 0 ? 'tool_calls' : 'stop'));
  if (options.includeUsage) {
    events.push({
      data: json({
        id: `chatcmpl-${turn.id}`,
        object: 'chat.completion.chunk',
        created: turn.created,
        model: turn.model,
        choices: [],
        usage: { prompt_tokens: turn.usage.input, completion_tokens: turn.usage.output, total_tokens: turn.usage.input + turn.usage.output },
      }),
    });
  }
  events.push({ data: '[DONE]' });
  return events;
}

// ---------------------------------------------------------------------------------------------
// OpenAI Responses.

type ResponsesItem = Record<string, unknown> & { id: string; type: 'message' | 'function_call' };

function responsesItems(turn: ResolvedTurn): ResponsesItem[] {
  const items: ResponsesItem[] = [];
  if (turn.text !== undefined) {
    items.push({ id: `msg_${turn.id}`, type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: turn.text, annotations: [] }] });
  }
  for (const call of turn.toolCalls) {
    items.push({ id: `fc_${call.id}`, type: 'function_call', status: 'completed', call_id: call.id, name: call.name, arguments: call.argumentsJson });
  }
  return items;
}

function responseObject(turn: ResolvedTurn, status: 'in_progress' | 'completed', output: ResponsesItem[]): Record<string, unknown> {
  return {
    id: `resp_${turn.id}`,
    object: 'response',
    created_at: turn.created,
    status,
    error: null,
    incomplete_details: null,
    model: turn.model,
    output,
    parallel_tool_calls: true,
    tool_choice: 'auto',
    tools: [],
    usage:
      status === 'completed'
        ? {
            input_tokens: turn.usage.input,
            input_tokens_details: { cached_tokens: 0 },
            output_tokens: turn.usage.output,
            output_tokens_details: { reasoning_tokens: 0 },
            total_tokens: turn.usage.input + turn.usage.output,
          }
        : null,
  };
}

export function responsesBody(turn: ResolvedTurn): unknown {
  return responseObject(turn, 'completed', responsesItems(turn));
}

/**
 * Typed events (`event: <type>` and a `data:` whose `type` repeats it, each with a growing
 * `sequence_number`), ending with `response.completed` — the Responses API sends no `[DONE]`.
 * With `failWith`, an `error` event follows some text and the stream ends.
 */
export function responsesStream(turn: ResolvedTurn, options: { failWith?: string }): SseEvent[] {
  const events: SseEvent[] = [];
  const emit = (type: string, payload: Record<string, unknown>): void => {
    events.push({ event: type, data: json({ type, sequence_number: events.length, ...payload }) });
  };
  emit('response.created', { response: responseObject(turn, 'in_progress', []) });
  emit('response.in_progress', { response: responseObject(turn, 'in_progress', []) });
  const items = responsesItems(turn);
  if (options.failWith !== undefined) {
    const itemId = `msg_${turn.id}`;
    emit('response.output_item.added', { output_index: 0, item: { id: itemId, type: 'message', status: 'in_progress', role: 'assistant', content: [] } });
    emit('response.content_part.added', { item_id: itemId, output_index: 0, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } });
    emit('response.output_text.delta', { item_id: itemId, output_index: 0, content_index: 0, delta: partialText(turn), logprobs: [] });
    emit('error', { code: 'server_error', message: options.failWith, param: null });
    return events;
  }
  items.forEach((item, outputIndex) => {
    if (item.type === 'message') {
      const text = turn.text ?? '';
      const part = { type: 'output_text', text, annotations: [] };
      emit('response.output_item.added', { output_index: outputIndex, item: { ...item, status: 'in_progress', content: [] } });
      emit('response.content_part.added', { item_id: item.id, output_index: outputIndex, content_index: 0, part: { ...part, text: '' } });
      for (const delta of splitPieces(text)) emit('response.output_text.delta', { item_id: item.id, output_index: outputIndex, content_index: 0, delta, logprobs: [] });
      emit('response.output_text.done', { item_id: item.id, output_index: outputIndex, content_index: 0, text, logprobs: [] });
      emit('response.content_part.done', { item_id: item.id, output_index: outputIndex, content_index: 0, part });
    } else {
      const args = String(item.arguments);
      emit('response.output_item.added', { output_index: outputIndex, item: { ...item, status: 'in_progress', arguments: '' } });
      for (const delta of splitPieces(args)) emit('response.function_call_arguments.delta', { item_id: item.id, output_index: outputIndex, delta });
      emit('response.function_call_arguments.done', { item_id: item.id, output_index: outputIndex, arguments: args });
    }
    emit('response.output_item.done', { output_index: outputIndex, item });
  });
  emit('response.completed', { response: responseObject(turn, 'completed', items) });
  return events;
}

// ---------------------------------------------------------------------------------------------
// Anthropic Messages.

function anthropicContent(turn: ResolvedTurn): Array<Record<string, unknown>> {
  const blocks: Array<Record<string, unknown>> = [];
  if (turn.text !== undefined) blocks.push({ type: 'text', text: turn.text });
  for (const call of turn.toolCalls) blocks.push({ type: 'tool_use', id: call.id, name: call.name, input: JSON.parse(call.argumentsJson) as unknown });
  return blocks;
}

export function messagesBody(turn: ResolvedTurn): unknown {
  return {
    id: `msg_${turn.id}`,
    type: 'message',
    role: 'assistant',
    model: turn.model,
    content: anthropicContent(turn),
    stop_reason: turn.toolCalls.length > 0 ? 'tool_use' : 'end_turn',
    stop_sequence: null,
    usage: { input_tokens: turn.usage.input, output_tokens: turn.usage.output },
  };
}

/**
 * `event:` + `data:` pairs: message_start, per block content_block_start / _delta / _stop
 * (text as `text_delta`, tool input as `input_json_delta` partial JSON), message_delta with the
 * stop reason and output tokens, message_stop. With `failWith`, an `error` event follows some
 * text (Anthropic's mid-stream `overloaded_error`) and the stream ends.
 */
export function messagesStream(turn: ResolvedTurn, options: { failWith?: string }): SseEvent[] {
  const events: SseEvent[] = [];
  const emit = (type: string, payload: Record<string, unknown>): void => {
    events.push({ event: type, data: json({ type, ...payload }) });
  };
  emit('message_start', {
    message: { id: `msg_${turn.id}`, type: 'message', role: 'assistant', model: turn.model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: turn.usage.input, output_tokens: 1 } },
  });
  if (options.failWith !== undefined) {
    emit('content_block_start', { index: 0, content_block: { type: 'text', text: '' } });
    emit('content_block_delta', { index: 0, delta: { type: 'text_delta', text: partialText(turn) } });
    emit('error', { error: { type: 'overloaded_error', message: options.failWith } });
    return events;
  }
  emit('ping', {});
  let index = 0;
  if (turn.text !== undefined) {
    emit('content_block_start', { index, content_block: { type: 'text', text: '' } });
    for (const text of splitPieces(turn.text)) emit('content_block_delta', { index, delta: { type: 'text_delta', text } });
    emit('content_block_stop', { index });
    index++;
  }
  for (const call of turn.toolCalls) {
    emit('content_block_start', { index, content_block: { type: 'tool_use', id: call.id, name: call.name, input: {} } });
    for (const partial of splitPieces(call.argumentsJson)) emit('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: partial } });
    emit('content_block_stop', { index });
    index++;
  }
  emit('message_delta', { delta: { stop_reason: turn.toolCalls.length > 0 ? 'tool_use' : 'end_turn', stop_sequence: null }, usage: { output_tokens: turn.usage.output } });
  emit('message_stop', {});
  return events;
}

/** Bytes of one event on the wire. */
export function encodeSse(event: SseEvent): string {
  return `${event.event === undefined ? '' : `event: ${event.event}\n`}data: ${event.data}\n\n`;
}
