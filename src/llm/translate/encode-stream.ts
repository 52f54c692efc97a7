/**
 * Canonical events → a client's SSE stream, one encoder per API. Each emits the events its API's
 * SDKs expect in the order they expect them: Chat Completions chunks ending in `[DONE]` (with the
 * usage chunk when the client asked for it); Responses `response.created` … typed item events …
 * `response.completed`; Messages `message_start` … content blocks … `message_delta` +
 * `message_stop`. Invariants: after `fail` or `end` nothing more is written; a block is opened
 * before its first delta; tool argument fragments are written as they came.
 */
import { streamErrorEvent } from '../errors.js';
import { encodeSse } from '../sse.js';
import type { LlmApi } from '../types.js';
import { nowSeconds, randomId, type CanonicalEvent, type StopReason, type StreamEncoder } from './canonical.js';
import { CHAT_FINISH } from './chat.js';
import { ANTHROPIC_STOP } from './messages.js';
import { responseObject } from './responses.js';

export interface EncoderOptions {
  /** The model name to show when the provider names none. */
  model: string;
  /** Chat Completions: the client asked for `stream_options.include_usage`. */
  includeUsage?: boolean;
}

abstract class BaseEncoder implements StreamEncoder {
  protected id = randomId();
  protected model: string;
  protected inputTokens: number | undefined;
  protected outputTokens: number | undefined;
  protected stop: StopReason | undefined;
  protected closed = false;
  protected toolCount = 0;

  constructor(
    protected readonly api: LlmApi,
    options: EncoderOptions,
  ) {
    this.model = options.model;
  }

  encode(event: CanonicalEvent): string {
    if (this.closed) return '';
    switch (event.type) {
      case 'start':
        if (event.id) this.id = event.id;
        if (event.model) this.model = event.model;
        return '';
      case 'usage':
        if (event.input !== undefined) this.inputTokens = event.input;
        if (event.output !== undefined) this.outputTokens = event.output;
        return '';
      case 'finish':
        this.stop = event.reason;
        return this.onFinish();
      case 'error':
        return this.fail(event.message, event.status);
      default:
        return this.onContent(event);
    }
  }

  fail(message: string, status = 500): string {
    if (this.closed) return '';
    this.closed = true;
    return this.errorEvent(message, status);
  }

  end(): string {
    if (this.closed) return '';
    this.closed = true;
    return this.close();
  }

  protected errorEvent(message: string, status: number): string {
    return streamErrorEvent(this.api, message, { status });
  }

  protected get stopReason(): StopReason {
    return this.stop ?? (this.toolCount > 0 ? 'tool_calls' : 'stop');
  }

  protected onFinish(): string {
    return '';
  }

  protected abstract onContent(event: Extract<CanonicalEvent, { type: 'text' | 'tool_start' | 'tool_args' }>): string;
  protected abstract close(): string;
}

class ChatEncoder extends BaseEncoder {
  private readonly created = nowSeconds();
  private started = false;
  private finished = false;

  constructor(private readonly options: EncoderOptions) {
    super('chat', options);
  }

  private chunk(delta: Record<string, unknown>, finish: string | null = null): string {
    const id = this.id.startsWith('chatcmpl-') ? this.id : `chatcmpl-${this.id}`;
    const body = { id, object: 'chat.completion.chunk', created: this.created, model: this.model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...(this.options.includeUsage ? { usage: null } : {}) };
    return encodeSse({ data: JSON.stringify(body) });
  }

  private begin(): string {
    if (this.started) return '';
    this.started = true;
    return this.chunk({ role: 'assistant', content: '', refusal: null });
  }

  protected onContent(event: Extract<CanonicalEvent, { type: 'text' | 'tool_start' | 'tool_args' }>): string {
    const head = this.begin();
    if (event.type === 'text') return head + this.chunk({ content: event.text });
    if (event.type === 'tool_start') {
      this.toolCount++;
      return head + this.chunk({ tool_calls: [{ index: event.index, id: event.id, type: 'function', function: { name: event.name, arguments: '' } }] });
    }
    return head + this.chunk({ tool_calls: [{ index: event.index, function: { arguments: event.fragment } }] });
  }

  protected override onFinish(): string {
    if (this.finished) return '';
    this.finished = true;
    return this.begin() + this.chunk({}, CHAT_FINISH[this.stopReason]);
  }

  protected close(): string {
    let out = this.onFinish();
    if (this.options.includeUsage) {
      const id = this.id.startsWith('chatcmpl-') ? this.id : `chatcmpl-${this.id}`;
      const input = this.inputTokens ?? 0;
      const output = this.outputTokens ?? 0;
      out += encodeSse({ data: JSON.stringify({ id, object: 'chat.completion.chunk', created: this.created, model: this.model, choices: [], usage: { prompt_tokens: input, completion_tokens: output, total_tokens: input + output } }) });
    }
    return out + encodeSse({ data: '[DONE]' });
  }
}

class MessagesEncoder extends BaseEncoder {
  private started = false;
  private nextBlock = 0;
  private open: { index: number } | undefined;
  private openKind: 'text' | 'tool' | undefined;
  private readonly toolBlocks = new Map<number, number>();

  constructor(options: EncoderOptions) {
    super('messages', options);
  }

  private event(type: string, payload: Record<string, unknown>): string {
    return encodeSse({ event: type, data: JSON.stringify({ type, ...payload }) });
  }

  private begin(): string {
    if (this.started) return '';
    this.started = true;
    const id = this.id.startsWith('msg_') ? this.id : `msg_${this.id}`;
    return this.event('message_start', {
      message: { id, type: 'message', role: 'assistant', model: this.model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: this.inputTokens ?? 0, output_tokens: 1 } },
    });
  }

  private closeBlock(): string {
    if (!this.open) return '';
    const out = this.event('content_block_stop', { index: this.open.index });
    this.open = undefined;
    this.openKind = undefined;
    return out;
  }

  protected onContent(event: Extract<CanonicalEvent, { type: 'text' | 'tool_start' | 'tool_args' }>): string {
    let out = this.begin();
    if (event.type === 'text') {
      if (this.openKind !== 'text') {
        out += this.closeBlock();
        this.open = { index: this.nextBlock++ };
        this.openKind = 'text';
        out += this.event('content_block_start', { index: this.open.index, content_block: { type: 'text', text: '' } });
      }
      return out + this.event('content_block_delta', { index: this.open!.index, delta: { type: 'text_delta', text: event.text } });
    }
    if (event.type === 'tool_start') {
      this.toolCount++;
      out += this.closeBlock();
      this.open = { index: this.nextBlock++ };
      this.openKind = 'tool';
      this.toolBlocks.set(event.index, this.open.index);
      return out + this.event('content_block_start', { index: this.open.index, content_block: { type: 'tool_use', id: event.id, name: event.name, input: {} } });
    }
    const block = this.toolBlocks.get(event.index);
    if (block === undefined) return out;
    return out + this.event('content_block_delta', { index: block, delta: { type: 'input_json_delta', partial_json: event.fragment } });
  }

  protected close(): string {
    const usage = { ...(this.inputTokens !== undefined ? { input_tokens: this.inputTokens } : {}), output_tokens: this.outputTokens ?? 0 };
    return (
      this.begin() +
      this.closeBlock() +
      this.event('message_delta', { delta: { stop_reason: ANTHROPIC_STOP[this.stopReason], stop_sequence: null }, usage }) +
      this.event('message_stop', {})
    );
  }
}

interface OpenItem {
  kind: 'text' | 'tool';
  id: string;
  outputIndex: number;
  text: string;
  callId: string;
  name: string;
}

class ResponsesEncoder extends BaseEncoder {
  private sequence = 0;
  private started = false;
  private open: OpenItem | undefined;
  private readonly output: Array<Record<string, unknown>> = [];
  private readonly tools = new Map<number, OpenItem>();

  constructor(options: EncoderOptions) {
    super('responses', options);
  }

  private event(type: string, payload: Record<string, unknown>): string {
    return encodeSse({ event: type, data: JSON.stringify({ type, sequence_number: this.sequence++, ...payload }) });
  }

  private snapshot(status: string): Record<string, unknown> {
    const answer = { id: this.id, model: this.model, stop: this.stop, usage: status === 'in_progress' ? undefined : { input: this.inputTokens ?? 0, output: this.outputTokens ?? 0 } };
    return responseObject(answer, status === 'in_progress' ? [] : this.output, status);
  }

  private begin(): string {
    if (this.started) return '';
    this.started = true;
    return this.event('response.created', { response: this.snapshot('in_progress') }) + this.event('response.in_progress', { response: this.snapshot('in_progress') });
  }

  private closeItem(): string {
    const item = this.open;
    if (!item) return '';
    this.open = undefined;
    const at = { item_id: item.id, output_index: item.outputIndex };
    if (item.kind === 'text') {
      const part = { type: 'output_text', text: item.text, annotations: [] };
      const done = { id: item.id, type: 'message', status: 'completed', role: 'assistant', content: [part] };
      this.output.push(done);
      return (
        this.event('response.output_text.done', { ...at, content_index: 0, text: item.text, logprobs: [] }) +
        this.event('response.content_part.done', { ...at, content_index: 0, part }) +
        this.event('response.output_item.done', { output_index: item.outputIndex, item: done })
      );
    }
    const done = { id: item.id, type: 'function_call', status: 'completed', call_id: item.callId, name: item.name, arguments: item.text };
    this.output.push(done);
    return this.event('response.function_call_arguments.done', { ...at, arguments: item.text }) + this.event('response.output_item.done', { output_index: item.outputIndex, item: done });
  }

  protected onContent(event: Extract<CanonicalEvent, { type: 'text' | 'tool_start' | 'tool_args' }>): string {
    let out = this.begin();
    if (event.type === 'text') {
      if (this.open?.kind !== 'text') {
        out += this.closeItem();
        this.open = { kind: 'text', id: `msg_${randomId()}`, outputIndex: this.output.length, text: '', callId: '', name: '' };
        out += this.event('response.output_item.added', { output_index: this.open.outputIndex, item: { id: this.open.id, type: 'message', status: 'in_progress', role: 'assistant', content: [] } });
        out += this.event('response.content_part.added', { item_id: this.open.id, output_index: this.open.outputIndex, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } });
      }
      this.open.text += event.text;
      return out + this.event('response.output_text.delta', { item_id: this.open.id, output_index: this.open.outputIndex, content_index: 0, delta: event.text, logprobs: [] });
    }
    if (event.type === 'tool_start') {
      this.toolCount++;
      out += this.closeItem();
      const item: OpenItem = { kind: 'tool', id: `fc_${randomId()}`, outputIndex: this.output.length, text: '', callId: event.id, name: event.name };
      this.open = item;
      this.tools.set(event.index, item);
      return out + this.event('response.output_item.added', { output_index: item.outputIndex, item: { id: item.id, type: 'function_call', status: 'in_progress', call_id: item.callId, name: item.name, arguments: '' } });
    }
    const item = this.tools.get(event.index);
    if (!item) return out;
    item.text += event.fragment;
    return out + this.event('response.function_call_arguments.delta', { item_id: item.id, output_index: item.outputIndex, delta: event.fragment });
  }

  protected close(): string {
    let out = this.begin() + this.closeItem();
    const snapshot = this.snapshot(this.stop === 'length' || this.stop === 'content_filter' ? 'incomplete' : 'completed');
    out += this.event(snapshot.status === 'incomplete' ? 'response.incomplete' : 'response.completed', { response: snapshot });
    return out;
  }

  protected override errorEvent(message: string, status: number): string {
    return streamErrorEvent('responses', message, { status, sequenceNumber: this.sequence++ });
  }
}

export function createEncoder(api: LlmApi, options: EncoderOptions): StreamEncoder {
  return api === 'chat' ? new ChatEncoder(options) : api === 'responses' ? new ResponsesEncoder(options) : new MessagesEncoder(options);
}
