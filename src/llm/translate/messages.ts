/**
 * Anthropic Messages ⇄ canonical: requests (system, user/assistant content blocks with tool_use
 * and tool_result, tools with input_schema, tool_choice) and non-streaming answers.
 * Invariants: consecutive canonical messages of one role merge into one Anthropic message (its
 * API wants tool results together, in the user turn right after the tool calls); thinking blocks
 * from earlier turns are dropped (other APIs cannot carry their signatures); `max_tokens`, which
 * Anthropic requires, defaults to DEFAULT_MAX_TOKENS.
 */
import { ValidationError } from '../../protocol/errors.js';
import { isRecord } from '../sse.js';
import { num, parseArguments, randomId, str, type CanonicalMessage, type CanonicalPart, type CanonicalRequest, type CanonicalResponse, type CanonicalToolChoice, type StopReason } from './canonical.js';
import { textOf } from './chat.js';

/** Anthropic requires max_tokens; OpenAI clients often omit it. Every current Claude model allows at least this many. */
export const DEFAULT_MAX_TOKENS = 4096;

function blockParts(content: unknown, role: 'user' | 'assistant', field: string): CanonicalPart[] {
  if (typeof content === 'string') return [{ type: 'text', text: content }];
  if (!Array.isArray(content)) throw new ValidationError(`${field}: expected a string or a list of content blocks`);
  return content.flatMap((block, i): CanonicalPart[] => {
    const where = `${field}[${i}]`;
    if (!isRecord(block)) throw new ValidationError(`${where}: expected a content block object`);
    switch (block.type) {
      case 'text':
        return [{ type: 'text', text: str(block.text) ?? '' }];
      case 'image': {
        const source = isRecord(block.source) ? block.source : {};
        if (source.type === 'base64' && typeof source.data === 'string') return [{ type: 'image', url: `data:${str(source.media_type) ?? 'image/png'};base64,${source.data}` }];
        if (source.type === 'url' && typeof source.url === 'string') return [{ type: 'image', url: source.url }];
        throw new ValidationError(`${where}.source: only base64 and url image sources can be translated`);
      }
      case 'tool_use':
        if (role !== 'assistant') throw new ValidationError(`${where}: tool_use blocks belong in assistant messages`);
        return [{ type: 'tool_call', id: str(block.id) ?? '', name: str(block.name) ?? '', arguments: JSON.stringify(block.input ?? {}) }];
      case 'tool_result':
        return [{ type: 'tool_result', id: str(block.tool_use_id) ?? '', content: textOf(block.content, `${where}.content`), ...(block.is_error === true ? { isError: true } : {}) }];
      case 'thinking':
      case 'redacted_thinking':
        return [];
      default:
        throw new ValidationError(`${where}.type: ${JSON.stringify(block.type)} blocks cannot be translated for this provider — send text, image, tool_use or tool_result`);
    }
  });
}

export function messagesRequestToCanonical(body: Record<string, unknown>): CanonicalRequest {
  // Some clients (Claude Code among them) put `system` messages among the turns; like the
  // Responses reader does with system/developer items, their text joins the system prompt.
  const system: string[] = body.system !== undefined ? [textOf(body.system, 'system')] : [];
  const messages: CanonicalMessage[] = [];
  (Array.isArray(body.messages) ? body.messages : []).forEach((message, i) => {
    const field = `messages[${i}]`;
    if (isRecord(message) && message.role === 'system') {
      system.push(textOf(message.content, `${field}.content`));
      return;
    }
    if (!isRecord(message) || (message.role !== 'user' && message.role !== 'assistant')) throw new ValidationError(`${field}.role: must be user, assistant or system`);
    messages.push({ role: message.role, content: blockParts(message.content, message.role, `${field}.content`) });
  });
  const tools = (Array.isArray(body.tools) ? body.tools : []).map((tool, i) => {
    if (!isRecord(tool) || typeof tool.name !== 'string' || (tool.type !== undefined && tool.type !== 'custom') || !isRecord(tool.input_schema)) {
      throw new ValidationError(`tools[${i}]: only client tools ({"name", "input_schema"}) can be translated for this provider, not server tools`);
    }
    return { name: tool.name, ...(typeof tool.description === 'string' ? { description: tool.description } : {}), parameters: tool.input_schema };
  });
  const choice = isRecord(body.tool_choice) ? body.tool_choice : undefined;
  let toolChoice: CanonicalToolChoice | undefined;
  if (choice?.type === 'auto') toolChoice = 'auto';
  else if (choice?.type === 'any') toolChoice = 'required';
  else if (choice?.type === 'none') toolChoice = 'none';
  else if (choice?.type === 'tool' && typeof choice.name === 'string') toolChoice = { name: choice.name };
  const stop = Array.isArray(body.stop_sequences) ? body.stop_sequences.filter((s): s is string => typeof s === 'string') : [];
  return {
    model: String(body.model),
    stream: body.stream === true,
    ...(system.length > 0 ? { system: system.join('\n\n') } : {}),
    messages,
    tools,
    ...(toolChoice ? { toolChoice } : {}),
    ...(choice?.disable_parallel_tool_use === true ? { parallelToolCalls: false } : {}),
    ...(num(body.max_tokens) !== undefined ? { maxTokens: num(body.max_tokens)! } : {}),
    ...(num(body.temperature) !== undefined ? { temperature: num(body.temperature)! } : {}),
    ...(num(body.top_p) !== undefined ? { topP: num(body.top_p)! } : {}),
    ...(stop.length > 0 ? { stop } : {}),
  };
}

function toBlock(part: CanonicalPart): Record<string, unknown> | undefined {
  switch (part.type) {
    case 'text':
      return part.text === '' ? undefined : { type: 'text', text: part.text };
    case 'image': {
      const data = /^data:([^;,]+);base64,(.*)$/s.exec(part.url);
      return { type: 'image', source: data ? { type: 'base64', media_type: data[1], data: data[2] } : { type: 'url', url: part.url } };
    }
    case 'tool_call':
      return { type: 'tool_use', id: part.id, name: part.name, input: parseArguments(part.arguments) };
    case 'tool_result':
      return { type: 'tool_result', tool_use_id: part.id, content: part.content, ...(part.isError ? { is_error: true } : {}) };
  }
}

export function canonicalToMessagesRequest(request: CanonicalRequest): Record<string, unknown> {
  const messages: Array<{ role: string; content: Array<Record<string, unknown>> }> = [];
  for (const message of request.messages) {
    // Tool results first: Anthropic wants them at the start of the user turn after the calls.
    const ordered = message.role === 'user' ? [...message.content.filter((p) => p.type === 'tool_result'), ...message.content.filter((p) => p.type !== 'tool_result')] : message.content;
    const blocks = ordered.map(toBlock).filter((b): b is Record<string, unknown> => b !== undefined);
    if (blocks.length === 0) continue;
    const last = messages.at(-1);
    if (last && last.role === message.role) {
      if (message.role === 'user' && blocks[0]?.type === 'tool_result') last.content.unshift(...blocks);
      else last.content.push(...blocks);
    } else messages.push({ role: message.role, content: blocks });
  }
  const choice = request.toolChoice;
  let toolChoice: Record<string, unknown> | undefined;
  if (choice === 'auto') toolChoice = { type: 'auto' };
  else if (choice === 'required') toolChoice = { type: 'any' };
  else if (choice === 'none') toolChoice = { type: 'none' };
  else if (choice !== undefined) toolChoice = { type: 'tool', name: choice.name };
  if (request.parallelToolCalls === false && request.tools.length > 0) toolChoice = { ...(toolChoice ?? { type: 'auto' }), disable_parallel_tool_use: true };
  return {
    model: request.model,
    max_tokens: request.maxTokens ?? DEFAULT_MAX_TOKENS,
    messages,
    ...(request.system !== undefined && request.system !== '' ? { system: request.system } : {}),
    ...(request.stream ? { stream: true } : {}),
    ...(request.tools.length > 0 ? { tools: request.tools.map((t) => ({ name: t.name, ...(t.description !== undefined ? { description: t.description } : {}), input_schema: t.parameters })) } : {}),
    ...(toolChoice && request.tools.length > 0 ? { tool_choice: toolChoice } : {}),
    ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
    ...(request.topP !== undefined ? { top_p: request.topP } : {}),
    ...(request.stop ? { stop_sequences: request.stop } : {}),
  };
}

export const ANTHROPIC_STOP: Record<StopReason, string> = { stop: 'end_turn', length: 'max_tokens', tool_calls: 'tool_use', content_filter: 'refusal' };

export function anthropicStopToCanonical(value: unknown): StopReason {
  if (value === 'max_tokens' || value === 'model_context_window_exceeded') return 'length';
  if (value === 'tool_use') return 'tool_calls';
  if (value === 'refusal') return 'content_filter';
  return 'stop';
}

export function anthropicInputTokens(usage: Record<string, unknown>): number {
  return (num(usage.input_tokens) ?? 0) + (num(usage.cache_read_input_tokens) ?? 0) + (num(usage.cache_creation_input_tokens) ?? 0);
}

export function messagesBodyToCanonical(body: Record<string, unknown>): CanonicalResponse {
  const content: CanonicalResponse['content'] = [];
  for (const block of Array.isArray(body.content) ? body.content : []) {
    if (!isRecord(block)) continue;
    if (block.type === 'text' && typeof block.text === 'string') content.push({ type: 'text', text: block.text });
    if (block.type === 'tool_use') content.push({ type: 'tool_call', id: str(block.id) ?? `toolu_${randomId()}`, name: str(block.name) ?? '', arguments: JSON.stringify(block.input ?? {}) });
  }
  const usage = isRecord(body.usage) ? body.usage : {};
  return {
    id: str(body.id) ?? `msg_${randomId()}`,
    model: str(body.model) ?? '',
    content,
    stop: anthropicStopToCanonical(body.stop_reason),
    usage: { input: anthropicInputTokens(usage), output: num(usage.output_tokens) ?? 0 },
  };
}

export function canonicalToMessagesBody(answer: CanonicalResponse): Record<string, unknown> {
  return {
    id: answer.id.startsWith('msg_') ? answer.id : `msg_${answer.id}`,
    type: 'message',
    role: 'assistant',
    model: answer.model,
    content: answer.content.map((part) => (part.type === 'text' ? { type: 'text', text: part.text } : { type: 'tool_use', id: part.id, name: part.name, input: parseArguments(part.arguments) })),
    stop_reason: ANTHROPIC_STOP[answer.stop],
    stop_sequence: null,
    usage: { input_tokens: answer.usage.input, output_tokens: answer.usage.output },
  };
}
