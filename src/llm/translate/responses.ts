/**
 * OpenAI Responses ⇄ canonical: requests (`instructions`, `input` as a string or items — messages,
 * function_call, function_call_output; function tools) and non-streaming answers.
 * Invariants: translated requests are stateless (`store: false`, no previous_response_id: the
 * whole conversation travels each time, as it does for the other APIs); reasoning items of
 * earlier turns are dropped; built-in tools (web search, file search, …) are refused by name.
 */
import { ValidationError } from '../../protocol/errors.js';
import { isRecord } from '../sse.js';
import { nowSeconds, num, randomId, str, type CanonicalMessage, type CanonicalPart, type CanonicalRequest, type CanonicalResponse, type CanonicalToolChoice } from './canonical.js';

function contentParts(content: unknown, field: string): CanonicalPart[] {
  if (typeof content === 'string') return [{ type: 'text', text: content }];
  if (!Array.isArray(content)) throw new ValidationError(`${field}: expected a string or a list of content parts`);
  return content.map((part, i): CanonicalPart => {
    if (isRecord(part) && (part.type === 'input_text' || part.type === 'output_text' || part.type === 'text') && typeof part.text === 'string') return { type: 'text', text: part.text };
    if (isRecord(part) && part.type === 'input_image' && typeof part.image_url === 'string') return { type: 'image', url: part.image_url };
    throw new ValidationError(`${field}[${i}].type: ${JSON.stringify(isRecord(part) ? part.type : typeof part)} parts cannot be translated for this provider — send input_text or input_image (with image_url)`);
  });
}

function push(messages: CanonicalMessage[], role: 'user' | 'assistant', parts: CanonicalPart[]): void {
  const last = messages.at(-1);
  if (last && last.role === role && (role === 'assistant' || parts.every((p) => p.type === 'tool_result'))) last.content.push(...parts);
  else messages.push({ role, content: parts });
}

export function responsesRequestToCanonical(body: Record<string, unknown>): CanonicalRequest {
  const system: string[] = typeof body.instructions === 'string' && body.instructions !== '' ? [body.instructions] : [];
  const messages: CanonicalMessage[] = [];
  if (body.previous_response_id !== undefined && body.previous_response_id !== null) {
    throw new ValidationError('previous_response_id: stored conversations cannot be translated for this provider — send the whole conversation in input');
  }
  const items = typeof body.input === 'string' ? [{ role: 'user', content: body.input }] : Array.isArray(body.input) ? body.input : [];
  items.forEach((item, i) => {
    const field = `input[${i}]`;
    if (!isRecord(item)) throw new ValidationError(`${field}: expected an object`);
    const type = item.type ?? 'message';
    if (type === 'message') {
      if (item.role === 'system' || item.role === 'developer') system.push(contentParts(item.content, `${field}.content`).map((p) => (p.type === 'text' ? p.text : '')).join(''));
      else if (item.role === 'user' || item.role === 'assistant') push(messages, item.role, contentParts(item.content, `${field}.content`));
      else throw new ValidationError(`${field}.role: ${JSON.stringify(item.role)} is not one of user, assistant, system, developer`);
    } else if (type === 'function_call') {
      push(messages, 'assistant', [{ type: 'tool_call', id: str(item.call_id) ?? '', name: str(item.name) ?? '', arguments: str(item.arguments) ?? '' }]);
    } else if (type === 'function_call_output') {
      const output = typeof item.output === 'string' ? item.output : contentParts(item.output, `${field}.output`).map((p) => (p.type === 'text' ? p.text : '')).join('');
      push(messages, 'user', [{ type: 'tool_result', id: str(item.call_id) ?? '', content: output }]);
    } else if (type === 'reasoning') {
      return;
    } else {
      throw new ValidationError(`${field}.type: ${JSON.stringify(type)} items cannot be translated for this provider — send message, function_call or function_call_output items`);
    }
  });
  const tools = (Array.isArray(body.tools) ? body.tools : []).map((tool, i) => {
    if (!isRecord(tool) || tool.type !== 'function' || typeof tool.name !== 'string') {
      throw new ValidationError(`tools[${i}]: ${isRecord(tool) ? JSON.stringify(tool.type) : 'this'} tools cannot be translated for this provider — only {"type":"function","name":…} tools`);
    }
    return { name: tool.name, ...(typeof tool.description === 'string' ? { description: tool.description } : {}), parameters: isRecord(tool.parameters) ? tool.parameters : { type: 'object', properties: {} } };
  });
  let toolChoice: CanonicalToolChoice | undefined;
  if (body.tool_choice === 'auto' || body.tool_choice === 'none' || body.tool_choice === 'required') toolChoice = body.tool_choice;
  else if (isRecord(body.tool_choice) && typeof body.tool_choice.name === 'string') toolChoice = { name: body.tool_choice.name };
  return {
    model: String(body.model),
    stream: body.stream === true,
    ...(system.length > 0 ? { system: system.join('\n\n') } : {}),
    messages,
    tools,
    ...(toolChoice ? { toolChoice } : {}),
    ...(typeof body.parallel_tool_calls === 'boolean' ? { parallelToolCalls: body.parallel_tool_calls } : {}),
    ...(num(body.max_output_tokens) !== undefined ? { maxTokens: num(body.max_output_tokens)! } : {}),
    ...(num(body.temperature) !== undefined ? { temperature: num(body.temperature)! } : {}),
    ...(num(body.top_p) !== undefined ? { topP: num(body.top_p)! } : {}),
  };
}

export function canonicalToResponsesRequest(request: CanonicalRequest): Record<string, unknown> {
  const input: Array<Record<string, unknown>> = [];
  for (const message of request.messages) {
    let pending: Array<Record<string, unknown>> = [];
    const flush = (): void => {
      if (pending.length > 0) input.push({ type: 'message', role: message.role, content: pending });
      pending = [];
    };
    for (const part of message.content) {
      if (part.type === 'text') pending.push({ type: message.role === 'user' ? 'input_text' : 'output_text', text: part.text });
      else if (part.type === 'image') pending.push({ type: 'input_image', image_url: part.url });
      else {
        flush();
        if (part.type === 'tool_call') input.push({ type: 'function_call', call_id: part.id, name: part.name, arguments: part.arguments });
        else input.push({ type: 'function_call_output', call_id: part.id, output: part.content });
      }
    }
    flush();
  }
  const choice = request.toolChoice;
  return {
    model: request.model,
    input,
    store: false,
    ...(request.system !== undefined ? { instructions: request.system } : {}),
    ...(request.stream ? { stream: true } : {}),
    ...(request.tools.length > 0 ? { tools: request.tools.map((t) => ({ type: 'function', name: t.name, ...(t.description !== undefined ? { description: t.description } : {}), parameters: t.parameters, strict: false })) } : {}),
    ...(choice === undefined ? {} : { tool_choice: typeof choice === 'string' ? choice : { type: 'function', name: choice.name } }),
    ...(request.parallelToolCalls !== undefined ? { parallel_tool_calls: request.parallelToolCalls } : {}),
    ...(request.maxTokens !== undefined ? { max_output_tokens: request.maxTokens } : {}),
    ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
    ...(request.topP !== undefined ? { top_p: request.topP } : {}),
  };
}

/** The output items of a Responses answer, with the ids its stream events refer to. */
export function responsesOutput(answer: CanonicalResponse): Array<Record<string, unknown>> {
  const items: Array<Record<string, unknown>> = [];
  let text = '';
  const flush = (): void => {
    if (text !== '') items.push({ id: `msg_${randomId()}`, type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text, annotations: [] }] });
    text = '';
  };
  for (const part of answer.content) {
    if (part.type === 'text') text += part.text;
    else {
      flush();
      items.push({ id: `fc_${randomId()}`, type: 'function_call', status: 'completed', call_id: part.id, name: part.name, arguments: part.arguments });
    }
  }
  flush();
  return items;
}

export function responsesBodyToCanonical(body: Record<string, unknown>): CanonicalResponse {
  const content: CanonicalResponse['content'] = [];
  for (const item of Array.isArray(body.output) ? body.output : []) {
    if (!isRecord(item)) continue;
    if (item.type === 'message' && Array.isArray(item.content)) {
      const text = item.content.map((p) => (isRecord(p) && p.type === 'output_text' && typeof p.text === 'string' ? p.text : '')).join('');
      if (text !== '') content.push({ type: 'text', text });
    } else if (item.type === 'function_call') {
      content.push({ type: 'tool_call', id: str(item.call_id) ?? `call_${randomId()}`, name: str(item.name) ?? '', arguments: str(item.arguments) ?? '' });
    }
  }
  const usage = isRecord(body.usage) ? body.usage : {};
  const incomplete = isRecord(body.incomplete_details) ? body.incomplete_details.reason : undefined;
  return {
    id: str(body.id) ?? `resp_${randomId()}`,
    model: str(body.model) ?? '',
    content,
    stop: body.status === 'incomplete' ? (incomplete === 'content_filter' ? 'content_filter' : 'length') : content.some((p) => p.type === 'tool_call') ? 'tool_calls' : 'stop',
    usage: { input: num(usage.input_tokens) ?? 0, output: num(usage.output_tokens) ?? 0 },
  };
}

export function responseObject(answer: { id: string; model: string; stop: CanonicalResponse['stop'] | undefined; usage: CanonicalResponse['usage'] | undefined }, output: Array<Record<string, unknown>>, status?: string): Record<string, unknown> {
  const finalStatus = status ?? (answer.stop === 'length' || answer.stop === 'content_filter' ? 'incomplete' : 'completed');
  return {
    id: answer.id.startsWith('resp_') ? answer.id : `resp_${answer.id}`,
    object: 'response',
    created_at: nowSeconds(),
    status: finalStatus,
    error: null,
    incomplete_details: finalStatus === 'incomplete' ? { reason: answer.stop === 'content_filter' ? 'content_filter' : 'max_output_tokens' } : null,
    model: answer.model,
    output,
    parallel_tool_calls: true,
    tool_choice: 'auto',
    tools: [],
    usage: answer.usage
      ? {
          input_tokens: answer.usage.input,
          input_tokens_details: { cached_tokens: 0 },
          output_tokens: answer.usage.output,
          output_tokens_details: { reasoning_tokens: 0 },
          total_tokens: answer.usage.input + answer.usage.output,
        }
      : null,
  };
}

export function canonicalToResponsesBody(answer: CanonicalResponse): Record<string, unknown> {
  return responseObject(answer, responsesOutput(answer));
}
