/**
 * The canonical representation every translation goes through: a request, a complete answer and
 * a stream of answer events, with only what all three wire APIs can express (text, images, tool
 * definitions, tool calls and results, a system prompt, sampling limits, stop reasons, usage,
 * errors). Each API module converts its own format to and from this, so a pair of APIs never
 * needs code of its own. Invariant: tool call `arguments` are the JSON text exactly as the model
 * produced it (a string, possibly split across stream events), never re-serialized.
 */
import { randomBase32 } from '../../lib/ids.js';

export type CanonicalPart =
  | { type: 'text'; text: string }
  /** An image by URL (`data:` URLs included). */
  | { type: 'image'; url: string }
  | { type: 'tool_call'; id: string; name: string; arguments: string }
  | { type: 'tool_result'; id: string; content: string; isError?: boolean };

export interface CanonicalMessage {
  role: 'user' | 'assistant';
  content: CanonicalPart[];
}

export interface CanonicalTool {
  name: string;
  description?: string;
  /** JSON Schema of the arguments. */
  parameters: Record<string, unknown>;
}

export type CanonicalToolChoice = 'auto' | 'none' | 'required' | { name: string };

export interface CanonicalRequest {
  model: string;
  stream: boolean;
  system?: string;
  messages: CanonicalMessage[];
  tools: CanonicalTool[];
  toolChoice?: CanonicalToolChoice;
  parallelToolCalls?: boolean;
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  stop?: string[];
  /** Whether a Chat Completions client asked for the usage chunk at the end of a stream. */
  includeUsage?: boolean;
}

export type StopReason = 'stop' | 'length' | 'tool_calls' | 'content_filter';

export interface CanonicalUsage {
  input: number;
  output: number;
}

export interface CanonicalResponse {
  id: string;
  model: string;
  /** Text and tool calls, in the order the model produced them. */
  content: Array<Extract<CanonicalPart, { type: 'text' | 'tool_call' }>>;
  stop: StopReason;
  usage: CanonicalUsage;
}

/**
 * One step of a streamed answer. Tool calls are numbered 0, 1, … in the order they start;
 * `tool_args` fragments concatenate, per call, to its arguments.
 */
export type CanonicalEvent =
  | { type: 'start'; id?: string; model?: string }
  | { type: 'text'; text: string }
  | { type: 'tool_start'; index: number; id: string; name: string }
  | { type: 'tool_args'; index: number; fragment: string }
  | { type: 'usage'; input?: number; output?: number }
  | { type: 'finish'; reason: StopReason }
  | { type: 'error'; message: string; status?: number };

/** Turns a provider's stream (parsed SSE data, one event at a time) into canonical events. */
export interface StreamDecoder {
  decode(event: { event?: string | undefined; data: string }, data: unknown): CanonicalEvent[];
}

/** Writes canonical events as a client's SSE text. */
export interface StreamEncoder {
  encode(event: CanonicalEvent): string;
  /** The upstream ended properly: the closing events (usage, terminal event). */
  end(): string;
  /** The upstream broke off: the client's in-stream error event (once). */
  fail(message: string, status?: number): string;
}

export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** A short random id suffix for ids the client's format needs and the provider did not give. */
export const randomId = (): string => randomBase32(20);

/** Tool call arguments as an object, for APIs that carry them parsed (Anthropic's `input`). */
export function parseArguments(text: string): Record<string, unknown> {
  if (text.trim() === '') return {};
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    /* fall through: keep what the model produced, visibly */
  }
  return { _arguments: text };
}

export const num = (value: unknown): number | undefined => (typeof value === 'number' && Number.isFinite(value) ? value : undefined);
export const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
