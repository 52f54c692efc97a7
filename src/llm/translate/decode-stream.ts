/**
 * Provider streams → canonical events, one decoder per API. Each keeps only what it needs to
 * number tool calls in the order they start and to route argument fragments to their call.
 * Invariants: argument fragments pass on as they came (never parsed or re-split), so they
 * concatenate to exactly the provider's JSON; a provider that sends arguments only whole (in a
 * `done` event, without deltas) still yields them once.
 */
import type { LlmApi } from '../types.js';
import { isRecord } from '../sse.js';
import { num, str, type CanonicalEvent, type StreamDecoder } from './canonical.js';
import { chatFinishToCanonical } from './chat.js';
import { anthropicInputTokens, anthropicStopToCanonical } from './messages.js';

class ChatDecoder implements StreamDecoder {
  private started = false;
  /** Provider tool index → canonical index. */
  private readonly tools = new Map<number, number>();

  decode(_event: unknown, data: unknown): CanonicalEvent[] {
    if (!isRecord(data)) return [];
    if (isRecord(data.error)) return [{ type: 'error', message: str(data.error.message) ?? 'the provider reported an error' }];
    const out: CanonicalEvent[] = [];
    if (!this.started) {
      this.started = true;
      out.push({ type: 'start', ...(str(data.id) ? { id: str(data.id)! } : {}), ...(str(data.model) ? { model: str(data.model)! } : {}) });
    }
    const choice = Array.isArray(data.choices) && isRecord(data.choices[0]) ? data.choices[0] : undefined;
    const delta = choice && isRecord(choice.delta) ? choice.delta : {};
    if (typeof delta.content === 'string' && delta.content !== '') out.push({ type: 'text', text: delta.content });
    for (const call of Array.isArray(delta.tool_calls) ? delta.tool_calls : []) {
      if (!isRecord(call)) continue;
      const providerIndex = num(call.index) ?? this.tools.size;
      const fn = isRecord(call.function) ? call.function : {};
      let index = this.tools.get(providerIndex);
      if (index === undefined) {
        index = this.tools.size;
        this.tools.set(providerIndex, index);
        out.push({ type: 'tool_start', index, id: str(call.id) ?? `call_${index}`, name: str(fn.name) ?? '' });
      }
      if (typeof fn.arguments === 'string' && fn.arguments !== '') out.push({ type: 'tool_args', index, fragment: fn.arguments });
    }
    if (choice && typeof choice.finish_reason === 'string') out.push({ type: 'finish', reason: chatFinishToCanonical(choice.finish_reason) });
    if (isRecord(data.usage)) out.push({ type: 'usage', input: num(data.usage.prompt_tokens) ?? 0, output: num(data.usage.completion_tokens) ?? 0 });
    return out;
  }
}

class ResponsesDecoder implements StreamDecoder {
  /** item_id → canonical tool index, and whether deltas came for it. */
  private readonly tools = new Map<string, { index: number; streamed: boolean }>();

  decode(_event: unknown, data: unknown): CanonicalEvent[] {
    if (!isRecord(data)) return [];
    switch (data.type) {
      case 'response.created': {
        const response = isRecord(data.response) ? data.response : {};
        return [{ type: 'start', ...(str(response.id) ? { id: str(response.id)! } : {}), ...(str(response.model) ? { model: str(response.model)! } : {}) }];
      }
      case 'response.output_text.delta':
        return typeof data.delta === 'string' && data.delta !== '' ? [{ type: 'text', text: data.delta }] : [];
      case 'response.output_item.added': {
        const item = isRecord(data.item) ? data.item : {};
        if (item.type !== 'function_call') return [];
        const index = this.tools.size;
        const args = str(item.arguments) ?? '';
        this.tools.set(str(item.id) ?? `output_${num(data.output_index) ?? index}`, { index, streamed: args !== '' });
        const out: CanonicalEvent[] = [{ type: 'tool_start', index, id: str(item.call_id) ?? `call_${index}`, name: str(item.name) ?? '' }];
        if (args !== '') out.push({ type: 'tool_args', index, fragment: args });
        return out;
      }
      case 'response.function_call_arguments.delta': {
        const tool = this.toolFor(data);
        if (!tool || typeof data.delta !== 'string' || data.delta === '') return [];
        tool.streamed = true;
        return [{ type: 'tool_args', index: tool.index, fragment: data.delta }];
      }
      case 'response.function_call_arguments.done': {
        const tool = this.toolFor(data);
        if (!tool || tool.streamed || typeof data.arguments !== 'string' || data.arguments === '') return [];
        tool.streamed = true;
        return [{ type: 'tool_args', index: tool.index, fragment: data.arguments }];
      }
      case 'response.completed':
      case 'response.incomplete': {
        const response = isRecord(data.response) ? data.response : {};
        const usage = isRecord(response.usage) ? response.usage : undefined;
        const reason = isRecord(response.incomplete_details) ? response.incomplete_details.reason : undefined;
        return [
          ...(usage ? [{ type: 'usage' as const, input: num(usage.input_tokens) ?? 0, output: num(usage.output_tokens) ?? 0 }] : []),
          { type: 'finish', reason: data.type === 'response.incomplete' ? (reason === 'content_filter' ? 'content_filter' : 'length') : this.tools.size > 0 ? 'tool_calls' : 'stop' },
        ];
      }
      case 'response.failed': {
        const response = isRecord(data.response) ? data.response : {};
        const error = isRecord(response.error) ? response.error : {};
        return [{ type: 'error', message: str(error.message) ?? 'the provider reported that the response failed' }];
      }
      case 'error':
        return [{ type: 'error', message: str(data.message) ?? (isRecord(data.error) ? str(data.error.message) : undefined) ?? 'the provider reported an error' }];
      default:
        return [];
    }
  }

  private toolFor(data: Record<string, unknown>): { index: number; streamed: boolean } | undefined {
    return this.tools.get(str(data.item_id) ?? `output_${num(data.output_index) ?? -1}`);
  }
}

class MessagesDecoder implements StreamDecoder {
  /** content block index → canonical tool index. */
  private readonly tools = new Map<number, number>();

  decode(_event: unknown, data: unknown): CanonicalEvent[] {
    if (!isRecord(data)) return [];
    switch (data.type) {
      case 'message_start': {
        const message = isRecord(data.message) ? data.message : {};
        const usage = isRecord(message.usage) ? message.usage : undefined;
        return [
          { type: 'start', ...(str(message.id) ? { id: str(message.id)! } : {}), ...(str(message.model) ? { model: str(message.model)! } : {}) },
          ...(usage ? [{ type: 'usage' as const, input: anthropicInputTokens(usage), output: num(usage.output_tokens) ?? 0 }] : []),
        ];
      }
      case 'content_block_start': {
        const block = isRecord(data.content_block) ? data.content_block : {};
        if (block.type === 'text' && typeof block.text === 'string' && block.text !== '') return [{ type: 'text', text: block.text }];
        if (block.type !== 'tool_use') return [];
        const index = this.tools.size;
        this.tools.set(num(data.index) ?? -1, index);
        const out: CanonicalEvent[] = [{ type: 'tool_start', index, id: str(block.id) ?? `toolu_${index}`, name: str(block.name) ?? '' }];
        if (isRecord(block.input) && Object.keys(block.input).length > 0) out.push({ type: 'tool_args', index, fragment: JSON.stringify(block.input) });
        return out;
      }
      case 'content_block_delta': {
        const delta = isRecord(data.delta) ? data.delta : {};
        if (delta.type === 'text_delta' && typeof delta.text === 'string' && delta.text !== '') return [{ type: 'text', text: delta.text }];
        if (delta.type === 'input_json_delta' && typeof delta.partial_json === 'string' && delta.partial_json !== '') {
          const index = this.tools.get(num(data.index) ?? -1);
          return index === undefined ? [] : [{ type: 'tool_args', index, fragment: delta.partial_json }];
        }
        return [];
      }
      case 'message_delta': {
        const delta = isRecord(data.delta) ? data.delta : {};
        const usage = isRecord(data.usage) ? data.usage : undefined;
        const hasInput = usage && (usage.input_tokens !== undefined || usage.cache_read_input_tokens !== undefined);
        return [
          ...(usage ? [{ type: 'usage' as const, ...(hasInput ? { input: anthropicInputTokens(usage) } : {}), output: num(usage.output_tokens) ?? 0 }] : []),
          ...(delta.stop_reason !== undefined && delta.stop_reason !== null ? [{ type: 'finish' as const, reason: anthropicStopToCanonical(delta.stop_reason) }] : []),
        ];
      }
      case 'error': {
        const error = isRecord(data.error) ? data.error : {};
        return [{ type: 'error', message: str(error.message) ?? 'the provider reported an error', ...(error.type === 'overloaded_error' ? { status: 529 } : {}) }];
      }
      default:
        return [];
    }
  }
}

export function createDecoder(api: LlmApi): StreamDecoder {
  return api === 'chat' ? new ChatDecoder() : api === 'responses' ? new ResponsesDecoder() : new MessagesDecoder();
}
