/**
 * The built-in harness's model client: OpenAI Chat Completions over the task gateway
 * (`POST /v1/chat/completions`, bearer = the task token), always streamed with usage, reassembled
 * into one `ModelTurn` — the assistant text, every tool call (arguments joined across chunks,
 * parallel calls kept apart by their index), the finish reason and the token usage.
 *
 * Invariants:
 * - `complete` resolves to a whole turn or rejects with a `ModelCallError` that says what went
 *   wrong (HTTP status and the provider's message, an error inside a 200 stream, malformed JSON,
 *   a dropped or silent connection) and whether it was retried; nothing half-parsed escapes.
 * - 429, 5xx, errors inside the stream and connection failures are retried with capped, jittered
 *   backoff (at most `maxAttempts` calls; `retry-after` is honoured up to the cap); other 4xx are
 *   never retried — the request itself is wrong.
 * - An aborted signal stops the call in flight (and any backoff wait) at once; the rejection is a
 *   `ModelCallError` with code `aborted`.
 */
import http from 'node:http';
import { Backoff } from '../../../lib/backoff.js';
import type { GatewayAddress } from '../../report/client.js';

export const CHAT_COMPLETIONS_PATH = '/v1/chat/completions';
/** Calls per request, the first included: three retries ride out a provider blip or a rate limit. */
export const DEFAULT_MAX_ATTEMPTS = 4;
const DEFAULT_BACKOFF_BASE_MS = 500;
const DEFAULT_BACKOFF_CAP_MS = 8_000;
/**
 * A stream with no byte for this long is dead (a model thinking hard still sends keep-alives or
 * tokens well within it); the call is retried.
 */
const DEFAULT_IDLE_TIMEOUT_MS = 180_000;
/**
 * The task gateway itself unreachable (status 0: the worker is restarting, and reattaches to this
 * task within its lease period) is retried for this long, whatever the attempt count.
 */
export const GATEWAY_DOWN_RETRY_MS = 60_000;
/** Most of an error body kept for the message. */
const MAX_ERROR_BODY_CHARS = 2_000;

export interface ChatToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export type ChatMessage =
  | { role: 'system'; content: string }
  | { role: 'user'; content: string }
  | { role: 'assistant'; content: string | null; tool_calls?: ChatToolCall[] }
  | { role: 'tool'; tool_call_id: string; content: string };

export interface ChatTool {
  type: 'function';
  function: { name: string; description: string; parameters: Record<string, unknown> };
}

export interface ModelToolCall {
  id: string;
  name: string;
  /** The arguments JSON exactly as the model sent it (possibly invalid: the tool layer says so). */
  arguments: string;
}

export interface ModelTurn {
  text: string;
  toolCalls: ModelToolCall[];
  /** `stop`, `tool_calls`, `length`, `content_filter`…, or null when the stream did not say. */
  finishReason: string | null;
  /** Null when the gateway reported no usage. */
  usage: { input_tokens: number; output_tokens: number } | null;
  /** Calls made for this turn (1 unless retried). */
  attempts: number;
}

export interface CompleteRequest {
  messages: ChatMessage[];
  tools?: ChatTool[];
  /** `none` forbids tool calls (the wrap-up turn). */
  toolChoice?: 'auto' | 'none';
  signal?: AbortSignal;
}

export interface ModelClientOptions {
  address: GatewayAddress;
  token: string;
  /** The model name sent in every request (the gateway maps `default` to its default route). */
  model: string;
  maxAttempts?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  idleTimeoutMs?: number;
  /** Told about each retry (the harness records it in the transcript). */
  onRetry?: (info: { attempt: number; delayMs: number; error: ModelCallError }) => void;
  /** Test seam for GATEWAY_DOWN_RETRY_MS. */
  gatewayDownRetryMs?: number;
}

export type ModelErrorCode = 'http' | 'stream_error' | 'malformed' | 'connection' | 'aborted';

export class ModelCallError extends Error {
  readonly code: ModelErrorCode;
  /** HTTP status, or 0 when no status applies. */
  readonly status: number;
  readonly retryable: boolean;
  /** Seconds the server asked to wait (429/503 `retry-after`), when it said. */
  readonly retryAfterMs: number | undefined;
  /** Nothing serves the task gateway's socket (the worker is away): worth waiting for. */
  gatewayUnreachable = false;

  constructor(message: string, code: ModelErrorCode, status = 0, retryAfterMs?: number) {
    super(message);
    this.name = 'ModelCallError';
    this.code = code;
    this.status = status;
    this.retryable = code === 'connection' || code === 'stream_error' || (code === 'http' && (status === 429 || status === 408 || status >= 500));
    this.retryAfterMs = retryAfterMs;
  }
}

export class ModelClient {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  readonly model: string;

  constructor(private readonly options: ModelClientOptions) {
    this.model = options.model;
  }

  /** One model turn, retried as the header says; rejects with a ModelCallError. */
  async complete(request: CompleteRequest): Promise<ModelTurn> {
    const maxAttempts = Math.max(1, this.options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS);
    const backoff = new Backoff({ baseMs: this.options.backoffBaseMs ?? DEFAULT_BACKOFF_BASE_MS, capMs: this.options.backoffCapMs ?? DEFAULT_BACKOFF_CAP_MS });
    const body = Buffer.from(JSON.stringify(this.requestBody(request)), 'utf8');
    let gatewayDownSince: number | undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        const turn = await this.once(body, request.signal);
        return { ...turn, attempts: attempt };
      } catch (err) {
        const error = err instanceof ModelCallError ? err : new ModelCallError(`model call failed: ${(err as Error).message}`, 'connection');
        if (request.signal?.aborted) throw abortedError(request.signal);
        if (!error.retryable) throw error;
        const gatewayDown = error.gatewayUnreachable;
        if (gatewayDown) gatewayDownSince ??= Date.now();
        else gatewayDownSince = undefined;
        const waitingForWorker = gatewayDown && Date.now() - gatewayDownSince! < (this.options.gatewayDownRetryMs ?? GATEWAY_DOWN_RETRY_MS);
        if (attempt >= maxAttempts && !waitingForWorker) {
          throw new ModelCallError(`${error.message} (gave up after ${attempt} attempts)`, error.code, error.status);
        }
        const cap = this.options.backoffCapMs ?? DEFAULT_BACKOFF_CAP_MS;
        const delayMs = Math.min(cap, Math.max(backoff.next(), error.retryAfterMs ?? 0));
        this.options.onRetry?.({ attempt, delayMs, error });
        await abortableSleep(delayMs, request.signal);
      }
    }
  }

  /** Close idle keep-alive connections. */
  close(): void {
    this.agent.destroy();
  }

  private requestBody(request: CompleteRequest): Record<string, unknown> {
    const body: Record<string, unknown> = {
      model: this.model,
      messages: request.messages,
      stream: true,
      stream_options: { include_usage: true },
    };
    if (request.tools && request.tools.length > 0) {
      body.tools = request.tools;
      body.tool_choice = request.toolChoice ?? 'auto';
    }
    return body;
  }

  private once(payload: Buffer, signal: AbortSignal | undefined): Promise<Omit<ModelTurn, 'attempts'>> {
    const { address, token } = this.options;
    const where = address.kind === 'unix' ? { socketPath: address.socketPath } : { host: address.host, port: address.port };
    const idleMs = this.options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    if (signal?.aborted) return Promise.reject(abortedError(signal));
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (error: Error | null, turn?: Omit<ModelTurn, 'attempts'>) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        req.setTimeout(0);
        if (error) {
          req.destroy();
          reject(error);
        } else resolve(turn!);
      };
      const onAbort = () => finish(abortedError(signal!));
      const req = http.request(
        {
          ...where,
          method: 'POST',
          path: CHAT_COMPLETIONS_PATH,
          agent: this.agent,
          headers: {
            authorization: `Bearer ${token}`,
            'content-type': 'application/json',
            'content-length': payload.length,
            accept: 'text/event-stream',
          },
        },
        (res) => {
          const status = res.statusCode ?? 0;
          res.setEncoding('utf8');
          const contentType = String(res.headers['content-type'] ?? '');
          if (status !== 200 || !contentType.includes('text/event-stream')) {
            let text = '';
            res.on('data', (chunk: string) => {
              if (text.length < 64 * 1024) text += chunk;
            });
            res.on('error', (err) => finish(connectionError(address.display, err)));
            res.on('end', () => {
              if (status === 200) {
                const whole = parseWholeBody(text);
                if (whole instanceof ModelCallError) finish(whole);
                else finish(null, whole);
              }
              else finish(httpError(status, text, res.headers['retry-after']));
            });
            return;
          }
          const stream = new ChatStreamAssembler();
          let buffer = '';
          res.on('data', (chunk: string) => {
            buffer += chunk;
            let newline: number;
            while ((newline = buffer.indexOf('\n')) !== -1) {
              const line = buffer.slice(0, newline).replace(/\r$/, '');
              buffer = buffer.slice(newline + 1);
              const error = stream.line(line);
              if (error) {
                finish(error);
                return;
              }
            }
          });
          res.on('error', (err) => finish(connectionError(address.display, err)));
          res.on('aborted', () => finish(connectionError(address.display, new Error('the connection was closed mid-stream'))));
          res.on('end', () => {
            if (buffer.length > 0) {
              const error = stream.line(buffer.replace(/\r$/, ''));
              if (error) return finish(error);
            }
            const result = stream.end();
            if (result instanceof ModelCallError) finish(result);
            else finish(null, result);
          });
        },
      );
      req.setTimeout(idleMs, () => finish(new ModelCallError(`model call failed: no data from the task gateway for ${Math.round(idleMs / 1000)} s — the connection is considered dead`, 'connection')));
      req.on('error', (err) => finish(connectionError(address.display, err)));
      signal?.addEventListener('abort', onAbort, { once: true });
      req.end(payload);
    });
  }
}

/** Reassembles `chat.completion.chunk`s, one SSE line at a time. */
class ChatStreamAssembler {
  private text = '';
  private readonly calls = new Map<number, { id: string; name: string; arguments: string }>();
  private finishReason: string | null = null;
  private usage: ModelTurn['usage'] = null;
  private done = false;
  private sawChunk = false;
  private dataLines: string[] = [];

  /** Feed one line; returns an error to stop the stream with. */
  line(line: string): ModelCallError | undefined {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return undefined; // SSE comment (keep-alive)
    if (line.startsWith('data:')) this.dataLines.push(line.slice(5).replace(/^ /, ''));
    // `event:`, `id:`, `retry:` carry nothing for chat completions.
    return undefined;
  }

  end(): Omit<ModelTurn, 'attempts'> | ModelCallError {
    const error = this.dispatch();
    if (error) return error;
    // A stream cut before [DONE] and before any finish reason is a dropped connection, not an answer.
    if (!this.done && this.finishReason === null) {
      return new ModelCallError(
        `model call failed: the stream ended without finishing (${this.sawChunk ? 'after some output' : 'before any output'}) — the connection dropped`,
        'connection',
      );
    }
    return this.result();
  }

  result(): Omit<ModelTurn, 'attempts'> {
    const toolCalls = [...this.calls.entries()]
      .sort(([a], [b]) => a - b)
      .map(([index, call]) => ({ id: call.id || `call_${index}`, name: call.name, arguments: call.arguments }));
    return { text: this.text, toolCalls, finishReason: this.finishReason, usage: this.usage };
  }

  private dispatch(): ModelCallError | undefined {
    if (this.dataLines.length === 0) return undefined;
    const data = this.dataLines.join('\n');
    this.dataLines = [];
    if (data.trim() === '[DONE]') {
      this.done = true;
      return undefined;
    }
    let chunk: unknown;
    try {
      chunk = JSON.parse(data);
    } catch {
      return new ModelCallError(`model call failed: the stream carried malformed JSON: ${excerpt(data, 200)}`, 'malformed');
    }
    if (typeof chunk !== 'object' || chunk === null) {
      return new ModelCallError(`model call failed: the stream carried ${excerpt(data, 200)} where a chunk object belongs`, 'malformed');
    }
    const record = chunk as Record<string, unknown>;
    if (record.error !== undefined && record.error !== null) {
      return new ModelCallError(`model call failed: the model's stream broke off with an error: ${errorMessageOf(record.error)}`, 'stream_error');
    }
    this.sawChunk = true;
    const usage = record.usage as { prompt_tokens?: unknown; completion_tokens?: unknown } | null | undefined;
    if (usage && typeof usage === 'object') {
      this.usage = { input_tokens: toCount(usage.prompt_tokens), output_tokens: toCount(usage.completion_tokens) };
    }
    const choices = Array.isArray(record.choices) ? (record.choices as Array<Record<string, unknown>>) : [];
    for (const choice of choices) {
      if ((choice.index ?? 0) !== 0) continue; // we ask for one choice
      if (typeof choice.finish_reason === 'string') this.finishReason = choice.finish_reason;
      const delta = choice.delta as Record<string, unknown> | undefined;
      if (!delta) continue;
      if (typeof delta.content === 'string') this.text += delta.content;
      if (Array.isArray(delta.tool_calls)) {
        for (const raw of delta.tool_calls as Array<Record<string, unknown>>) this.toolCallDelta(raw);
      }
    }
    return undefined;
  }

  private toolCallDelta(raw: Record<string, unknown>): void {
    const fn = (raw.function ?? {}) as { name?: unknown; arguments?: unknown };
    let index = typeof raw.index === 'number' ? raw.index : undefined;
    if (index === undefined) {
      // Some servers omit the index: a delta with a new id starts a call, one without continues the last.
      const id = typeof raw.id === 'string' ? raw.id : undefined;
      const existing = id === undefined ? undefined : [...this.calls.entries()].find(([, call]) => call.id === id);
      index = existing ? existing[0] : id !== undefined || this.calls.size === 0 ? this.calls.size : this.calls.size - 1;
    }
    let call = this.calls.get(index);
    if (!call) {
      call = { id: '', name: '', arguments: '' };
      this.calls.set(index, call);
    }
    if (typeof raw.id === 'string' && raw.id !== '') call.id = raw.id;
    if (typeof fn.name === 'string') call.name += fn.name;
    if (typeof fn.arguments === 'string') call.arguments += fn.arguments;
  }
}

/** A 200 answer that is not a stream: a whole `chat.completion` (some gateways do this). */
function parseWholeBody(text: string): ModelCallError | Omit<ModelTurn, 'attempts'> {
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return new ModelCallError(`model call failed: the answer was neither a stream nor JSON: ${excerpt(text, 200)}`, 'malformed');
  }
  if (body.error) return new ModelCallError(`model call failed: ${errorMessageOf(body.error)}`, 'stream_error');
  const choice = (Array.isArray(body.choices) ? body.choices[0] : undefined) as { message?: Record<string, unknown>; finish_reason?: unknown } | undefined;
  if (!choice?.message) return new ModelCallError(`model call failed: the answer has no choices[0].message: ${excerpt(text, 200)}`, 'malformed');
  const message = choice.message;
  const calls = Array.isArray(message.tool_calls) ? (message.tool_calls as Array<{ id?: unknown; function?: { name?: unknown; arguments?: unknown } }>) : [];
  const usage = body.usage as { prompt_tokens?: unknown; completion_tokens?: unknown } | undefined;
  return {
      text: typeof message.content === 'string' ? message.content : '',
      toolCalls: calls.map((call, index) => ({
        id: typeof call.id === 'string' ? call.id : `call_${index}`,
        name: typeof call.function?.name === 'string' ? call.function.name : '',
        arguments: typeof call.function?.arguments === 'string' ? call.function.arguments : '',
      })),
      finishReason: typeof choice.finish_reason === 'string' ? choice.finish_reason : null,
      usage: usage ? { input_tokens: toCount(usage.prompt_tokens), output_tokens: toCount(usage.completion_tokens) } : null,
  };
}

function httpError(status: number, text: string, retryAfter: string | string[] | undefined): ModelCallError {
  let detail = excerpt(text, MAX_ERROR_BODY_CHARS) || 'no details';
  try {
    const parsed = JSON.parse(text) as { error?: unknown };
    if (parsed.error !== undefined) detail = errorMessageOf(parsed.error);
  } catch {
    /* not JSON: keep the text */
  }
  const hint =
    status === 401 || status === 403
      ? ' — the task token was refused; the execution may have ended'
      : status === 404
        ? ' — the gateway or model route does not know this model; check the task\'s "model"'
        : status === 503
          ? ' — the worker may route no models (configure `models:` on the worker)'
          : '';
  const seconds = typeof retryAfter === 'string' ? Number(retryAfter) : NaN;
  return new ModelCallError(`model call failed: HTTP ${status}: ${detail}${hint}`, 'http', status, Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined);
}

function errorMessageOf(error: unknown): string {
  if (typeof error === 'string') return error;
  if (typeof error === 'object' && error !== null) {
    const record = error as { message?: unknown; code?: unknown; type?: unknown };
    const message = typeof record.message === 'string' ? record.message : JSON.stringify(error);
    const kind = typeof record.code === 'string' ? record.code : typeof record.type === 'string' ? record.type : undefined;
    return kind ? `${kind}: ${excerpt(message, MAX_ERROR_BODY_CHARS)}` : excerpt(message, MAX_ERROR_BODY_CHARS);
  }
  return String(error);
}

function connectionError(display: string, err: Error): ModelCallError {
  const code = (err as NodeJS.ErrnoException).code;
  const unreachable = code === 'ENOENT' || code === 'ECONNREFUSED';
  const hint = unreachable ? ` — nothing serves ${display}; the worker may have stopped` : '';
  const error = new ModelCallError(`model call failed: the connection to the task gateway at ${display} failed: ${err.message}${hint}`, 'connection');
  error.gatewayUnreachable = unreachable;
  return error;
}

function abortedError(signal: AbortSignal): ModelCallError {
  const reason = signal.reason instanceof Error ? signal.reason.message : 'cancelled';
  return new ModelCallError(`model call stopped: ${reason}`, 'aborted');
}

function toCount(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? Math.floor(value) : 0;
}

function excerpt(text: string, max: number): string {
  const trimmed = text.trim();
  return trimmed.length <= max ? trimmed : `${trimmed.slice(0, max)}…`;
}

function abortableSleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortedError(signal));
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortedError(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
