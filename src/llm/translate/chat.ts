/**
 * OpenAI Chat Completions ⇄ canonical: requests (messages with system/developer, user, assistant
 * tool_calls and `tool` results; function tools; tool_choice) and non-streaming answers.
 * Invariant: what the canonical form cannot carry is refused with a message naming the field,
 * never silently dropped — except sampling knobs other APIs lack (seed, logprobs, …).
 */
import { ValidationError } from '../../protocol/errors.js';
import { isRecord } from '../sse.js';
import { nowSeconds, num, randomId, str, type CanonicalMessage, type CanonicalPart, type CanonicalRequest, type CanonicalResponse, type CanonicalToolChoice, type StopReason } from './canonical.js';

/** Text of a content value that may be a string or a list of `{type:'text', text}` parts. */
export function textOf(content: unknown, field: string): string {
  if (typeof content === 'string') return content;
  if (content === null || content === undefined) return '';
  if (Array.isArray(content)) {
    return content
      .map((part, i) => {
        if (typeof part === 'string') return part;
        if (isRecord(part) && typeof part.text === 'string') return part.text;
        throw new ValidationError(`${field}[${i}]: only text parts can be translated here`);
      })
      .join('');
  }
  throw new ValidationError(`${field}: expected a string or a list of text parts`);
}

function userParts(content: unknown, field: string): CanonicalPart[] {
  if (typeof content === 'string') return [{ type: 'text', text: content }];
  if (!Array.isArray(content)) throw new ValidationError(`${field}: expected a string or a list of content parts`);
  return content.map((part, i): CanonicalPart => {
    if (isRecord(part) && part.type === 'text' && typeof part.text === 'string') return { type: 'text', text: part.text };
    if (isRecord(part) && part.type === 'image_url') {
      const url = isRecord(part.image_url) ? str(part.image_url.url) : str(part.image_url);
      if (url) return { type: 'image', url };
    }
    throw new ValidationError(`${field}[${i}]: content part type ${JSON.stringify(isRecord(part) ? part.type : typeof part)} cannot be translated for this provider — send text or image_url parts`);
  });
}

export function chatRequestToCanonical(body: Record<string, unknown>): CanonicalRequest {
  const system: string[] = [];
  const messages: CanonicalMessage[] = [];
  const raw = Array.isArray(body.messages) ? body.messages : [];
  raw.forEach((message, i) => {
    const field = `messages[${i}]`;
    if (!isRecord(message)) throw new ValidationError(`${field}: expected an object`);
    switch (message.role) {
      case 'system':
      case 'developer':
        system.push(textOf(message.content, `${field}.content`));
        return;
      case 'user':
        messages.push({ role: 'user', content: userParts(message.content, `${field}.content`) });
        return;
      case 'assistant': {
        const content: CanonicalPart[] = [];
        const text = textOf(message.content, `${field}.content`);
        if (text !== '') content.push({ type: 'text', text });
        const calls = Array.isArray(message.tool_calls) ? message.tool_calls : [];
        calls.forEach((call, j) => {
          if (!isRecord(call) || !isRecord(call.function) || typeof call.id !== 'string' || typeof call.function.name !== 'string') {
            throw new ValidationError(`${field}.tool_calls[${j}]: needs id and function.name`);
          }
          content.push({ type: 'tool_call', id: call.id, name: call.function.name, arguments: str(call.function.arguments) ?? '' });
        });
        messages.push({ role: 'assistant', content });
        return;
      }
      case 'tool':
        if (typeof message.tool_call_id !== 'string') throw new ValidationError(`${field}.tool_call_id: required on a tool message`);
        messages.push({ role: 'user', content: [{ type: 'tool_result', id: message.tool_call_id, content: textOf(message.content, `${field}.content`) }] });
        return;
      default:
        throw new ValidationError(`${field}.role: ${JSON.stringify(message.role)} is not one of system, developer, user, assistant, tool`);
    }
  });
  const tools = (Array.isArray(body.tools) ? body.tools : []).map((tool, i) => {
    if (!isRecord(tool) || tool.type !== 'function' || !isRecord(tool.function) || typeof tool.function.name !== 'string') {
      throw new ValidationError(`tools[${i}]: only {"type":"function","function":{"name":…}} tools can be translated for this provider`);
    }
    return {
      name: tool.function.name,
      ...(typeof tool.function.description === 'string' ? { description: tool.function.description } : {}),
      parameters: isRecord(tool.function.parameters) ? tool.function.parameters : { type: 'object', properties: {} },
    };
  });
  const stop = typeof body.stop === 'string' ? [body.stop] : Array.isArray(body.stop) ? body.stop.filter((s): s is string => typeof s === 'string') : undefined;
  const maxTokens = num(body.max_completion_tokens) ?? num(body.max_tokens);
  const toolChoice = chatToolChoice(body.tool_choice);
  return {
    model: String(body.model),
    stream: body.stream === true,
    ...(system.length > 0 ? { system: system.join('\n\n') } : {}),
    messages,
    tools,
    ...(toolChoice ? { toolChoice } : {}),
    ...(typeof body.parallel_tool_calls === 'boolean' ? { parallelToolCalls: body.parallel_tool_calls } : {}),
    ...(maxTokens !== undefined ? { maxTokens } : {}),
    ...(num(body.temperature) !== undefined ? { temperature: num(body.temperature)! } : {}),
    ...(num(body.top_p) !== undefined ? { topP: num(body.top_p)! } : {}),
    ...(stop && stop.length > 0 ? { stop } : {}),
    includeUsage: isRecord(body.stream_options) && body.stream_options.include_usage === true,
  };
}

function chatToolChoice(value: unknown): CanonicalToolChoice | undefined {
  if (value === 'auto' || value === 'none' || value === 'required') return value;
  if (isRecord(value) && isRecord(value.function) && typeof value.function.name === 'string') return { name: value.function.name };
  return undefined;
}

export function canonicalToChatRequest(request: CanonicalRequest): Record<string, unknown> {
  const messages: Array<Record<string, unknown>> = [];
  if (request.system !== undefined) messages.push({ role: 'system', content: request.system });
  for (const message of request.messages) {
    if (message.role === 'assistant') {
      const text = message.content.flatMap((p) => (p.type === 'text' ? [p.text] : [])).join('');
      const calls = message.content.flatMap((p) => (p.type === 'tool_call' ? [{ id: p.id, type: 'function', function: { name: p.name, arguments: p.arguments } }] : []));
      messages.push({ role: 'assistant', content: text === '' && calls.length > 0 ? null : text, ...(calls.length > 0 ? { tool_calls: calls } : {}) });
      continue;
    }
    for (const part of message.content) if (part.type === 'tool_result') messages.push({ role: 'tool', tool_call_id: part.id, content: part.content });
    const rest = message.content.filter((p) => p.type === 'text' || p.type === 'image');
    if (rest.length === 0) continue;
    const onlyText = rest.every((p) => p.type === 'text');
    messages.push({
      role: 'user',
      content: onlyText ? rest.map((p) => (p.type === 'text' ? p.text : '')).join('') : rest.map((p) => (p.type === 'text' ? { type: 'text', text: p.text } : { type: 'image_url', image_url: { url: p.type === 'image' ? p.url : '' } })),
    });
  }
  const choice = request.toolChoice;
  return {
    model: request.model,
    messages,
    ...(request.stream ? { stream: true, stream_options: { include_usage: true } } : {}),
    ...(request.tools.length > 0
      ? { tools: request.tools.map((t) => ({ type: 'function', function: { name: t.name, ...(t.description !== undefined ? { description: t.description } : {}), parameters: t.parameters } })) }
      : {}),
    ...(choice === undefined ? {} : { tool_choice: typeof choice === 'string' ? choice : { type: 'function', function: { name: choice.name } } }),
    ...(request.parallelToolCalls !== undefined && request.tools.length > 0 ? { parallel_tool_calls: request.parallelToolCalls } : {}),
    ...(request.maxTokens !== undefined ? { max_tokens: request.maxTokens } : {}),
    ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
    ...(request.topP !== undefined ? { top_p: request.topP } : {}),
    ...(request.stop ? { stop: request.stop } : {}),
  };
}

export const CHAT_FINISH: Record<StopReason, string> = { stop: 'stop', length: 'length', tool_calls: 'tool_calls', content_filter: 'content_filter' };

export function chatFinishToCanonical(value: unknown): StopReason {
  if (value === 'length') return 'length';
  if (value === 'tool_calls' || value === 'function_call') return 'tool_calls';
  if (value === 'content_filter') return 'content_filter';
  return 'stop';
}

export function chatBodyToCanonical(body: Record<string, unknown>): CanonicalResponse {
  const choice = Array.isArray(body.choices) && isRecord(body.choices[0]) ? body.choices[0] : {};
  const message = isRecord(choice.message) ? choice.message : {};
  const content: CanonicalResponse['content'] = [];
  const text = typeof message.content === 'string' ? message.content : '';
  if (text !== '') content.push({ type: 'text', text });
  for (const call of Array.isArray(message.tool_calls) ? message.tool_calls : []) {
    if (isRecord(call) && isRecord(call.function)) content.push({ type: 'tool_call', id: str(call.id) ?? `call_${randomId()}`, name: str(call.function.name) ?? '', arguments: str(call.function.arguments) ?? '' });
  }
  const usage = isRecord(body.usage) ? body.usage : {};
  return {
    id: str(body.id) ?? `chatcmpl-${randomId()}`,
    model: str(body.model) ?? '',
    content,
    stop: chatFinishToCanonical(choice.finish_reason),
    usage: { input: num(usage.prompt_tokens) ?? 0, output: num(usage.completion_tokens) ?? 0 },
  };
}

export function canonicalToChatBody(answer: CanonicalResponse): Record<string, unknown> {
  const text = answer.content.flatMap((p) => (p.type === 'text' ? [p.text] : [])).join('');
  const calls = answer.content.flatMap((p) => (p.type === 'tool_call' ? [{ id: p.id, type: 'function', function: { name: p.name, arguments: p.arguments } }] : []));
  return {
    id: answer.id.startsWith('chatcmpl-') ? answer.id : `chatcmpl-${answer.id}`,
    object: 'chat.completion',
    created: nowSeconds(),
    model: answer.model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: text === '' && calls.length > 0 ? null : text, refusal: null, ...(calls.length > 0 ? { tool_calls: calls } : {}) },
        logprobs: null,
        finish_reason: CHAT_FINISH[answer.stop],
      },
    ],
    usage: { prompt_tokens: answer.usage.input, completion_tokens: answer.usage.output, total_tokens: answer.usage.input + answer.usage.output },
  };
}
