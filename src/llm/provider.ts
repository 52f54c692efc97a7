/**
 * Turns an upstream adapter into an `LlmProvider`: sends the client's request in an API the
 * provider speaks (the client's own when it can — pass-through — or its first one, translated),
 * applies the silence timeout, and answers in the client's API whatever happens.
 * Invariants: a pass-through stream reaches the client byte for byte (only an error event is
 * appended when the provider breaks off, and a usage-only chunk we asked for is dropped); the
 * returned promise never rejects; bodies are never logged.
 */
import type { Readable } from 'node:stream';
import { describeError, isAirlockError } from '../protocol/errors.js';
import { WholeBody } from './body.js';
import { Deadline } from './deadline.js';
import { errorResponse, streamErrorEvent, upstreamErrorMessage } from './errors.js';
import { isRecord, SseParser, tryJson, utf8, type ParsedSseEvent } from './sse.js';
import { createStreamTranslator, translateBody, translateRequest, type StreamTranslator } from './translate/index.js';
import type { LlmApi, LlmProvider, LlmRequest, LlmResponse, LlmUsage, ProviderType } from './types.js';
import { relayedHeaders, type Upstream, type UpstreamAnswer } from './upstream.js';
import { UsageTap } from './usage.js';

/** Largest non-streaming body we read: far above any real completion, small enough to never exhaust memory. */
const MAX_JSON_BODY_BYTES = 64 * 1024 * 1024;

/** How long a provider may stay silent when its config sets no timeout_seconds: long prompts take a while to first token. */
export const DEFAULT_TIMEOUT_MS = 600_000;

/**
 * A translated stream can go quiet while the provider streams things the client's API cannot
 * carry (thinking, pings): an SSE comment at most this often keeps client idle timers and
 * proxies from hanging up. Every SSE parser ignores comments.
 */
export const KEEP_ALIVE_MS = 15_000;

export interface ProviderOptions {
  name: string;
  type: ProviderType;
  upstream: Upstream;
  timeoutMs: number;
  /** Test seam for KEEP_ALIVE_MS. */
  keepAliveMs?: number;
}

export function createProvider(options: ProviderOptions): LlmProvider {
  return {
    name: options.name,
    type: options.type,
    handle: (request) => handle(options, request),
  };
}

async function handle(options: ProviderOptions, request: LlmRequest): Promise<LlmResponse> {
  const { upstream, name } = options;
  const clientApi = request.api;
  const upstreamApi = upstream.apis.includes(clientApi) ? clientApi : upstream.apis[0]!;
  let body: Record<string, unknown>;
  try {
    body = clientApi === upstreamApi ? request.body : translateRequest(clientApi, upstreamApi, request.body);
  } catch (error) {
    return errorResponse(clientApi, 400, isAirlockError(error) ? error.message : `the request cannot be translated for provider "${name}": ${describeError(error)}`);
  }
  const streaming = body.stream === true;
  // Ask a Chat Completions provider for usage on streams: budgets depend on it. When the client
  // did not ask for it, the usage-only chunk is dropped again before it reaches the client.
  let dropUsageChunk = false;
  if (streaming && upstreamApi === 'chat') {
    const streamOptions = isRecord(body.stream_options) ? body.stream_options : {};
    if (streamOptions.include_usage !== true) {
      body = { ...body, stream_options: { ...streamOptions, include_usage: true } };
      dropUsageChunk = clientApi === 'chat';
    }
  }

  const deadline = new Deadline(request.signal, options.timeoutMs);
  let response: UpstreamAnswer;
  deadline.arm();
  try {
    response = await upstream.send({ api: upstreamApi, body, headers: request.headers, signal: deadline.signal });
  } catch (error) {
    deadline.close();
    return callFailure(options, clientApi, deadline, error);
  }

  const sse = (response.header('content-type') ?? '').includes('text/event-stream');
  if (!isOk(response) || !sse) {
    let text: string;
    try {
      text = await readText(response);
    } catch (error) {
      return callFailure(options, clientApi, deadline, error);
    } finally {
      deadline.close();
    }
    return jsonAnswer(options, clientApi, upstreamApi, response, text);
  }
  deadline.disarm();
  const translator = clientApi === upstreamApi ? undefined : createStreamTranslator(upstreamApi, clientApi, request.body);
  let settle!: (usage: LlmUsage | null) => void;
  const usage = new Promise<LlmUsage | null>((resolve) => (settle = resolve));
  return {
    status: response.status,
    headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', ...relayedHeaders(response) },
    body: relayStream({ response, deadline, clientApi, tap: new UsageTap(upstreamApi), translator, dropUsageChunk, settle, keepAliveMs: options.keepAliveMs ?? KEEP_ALIVE_MS }),
    usage,
  };
}

function callFailure(options: ProviderOptions, api: LlmApi, deadline: Deadline, error: unknown): LlmResponse {
  if (deadline.timedOut) return errorResponse(api, 504, `the provider "${options.name}" did not answer within ${deadline.seconds} s — try again, or raise models.providers.${options.name}.timeout_seconds`);
  if (deadline.clientGone) return errorResponse(api, 499, 'the client closed the request');
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
  const detail = typeof cause?.code === 'string' ? cause.code : typeof cause?.message === 'string' ? cause.message : describeError(error);
  return errorResponse(api, 502, `could not reach the provider "${options.name}" at ${options.upstream.target}: ${detail} — check models.providers.${options.name}.base_url and that the provider is up`);
}

const isOk = (response: UpstreamAnswer): boolean => response.status >= 200 && response.status < 300;

async function readText(response: UpstreamAnswer): Promise<string> {
  const body = response.body as AsyncIterable<Uint8Array> & Partial<Pick<Readable, 'on' | 'destroy'>>;
  // node:http's answer: collected from its events, without an async iterator per call.
  if (typeof body.on === 'function' && typeof body.destroy === 'function') return readStreamText(body as Readable);
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body) {
    size += chunk.byteLength;
    // Leaving the loop ends the iteration, which releases the connection.
    if (size > MAX_JSON_BODY_BYTES) throw new Error(`the provider's answer exceeds ${MAX_JSON_BODY_BYTES / 1024 / 1024} MiB`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function readStreamText(stream: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size > MAX_JSON_BODY_BYTES) {
        stream.destroy();
        reject(new Error(`the provider's answer exceeds ${MAX_JSON_BODY_BYTES / 1024 / 1024} MiB`));
        return;
      }
      chunks.push(chunk);
    });
    stream.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    stream.once('error', reject);
    stream.once('close', () => {
      if (!stream.readableEnded) reject(new Error('the connection to the provider closed before the answer was complete'));
    });
  });
}

function jsonAnswer(options: ProviderOptions, clientApi: LlmApi, upstreamApi: LlmApi, response: UpstreamAnswer, text: string): LlmResponse {
  if (!isOk(response)) {
    const message = upstreamErrorMessage(text) ?? `HTTP ${response.status} ${response.statusText}`.trim();
    const relayed = errorResponse(clientApi, response.status, `${message} (provider "${options.name}", HTTP ${response.status})`);
    return { ...relayed, headers: { ...relayed.headers, ...relayedHeaders(response) } };
  }
  const parsed = tryJson(text);
  if (!isRecord(parsed)) return errorResponse(clientApi, 502, `the provider "${options.name}" answered with a body that is not a JSON object — check that models.providers.${options.name}.base_url points at the API itself`);
  const tap = new UsageTap(upstreamApi);
  tap.observeBody(parsed);
  let bytes: Uint8Array;
  try {
    bytes = clientApi === upstreamApi ? utf8(text) : utf8(JSON.stringify(translateBody(upstreamApi, clientApi, parsed)));
  } catch (error) {
    return errorResponse(clientApi, 502, `the answer of provider "${options.name}" could not be translated: ${describeError(error)}`);
  }
  return {
    status: response.status,
    headers: { 'content-type': 'application/json', ...relayedHeaders(response) },
    body: new WholeBody(bytes),
    usage: Promise.resolve(tap.usage),
  };
}

interface StreamContext {
  response: UpstreamAnswer;
  deadline: Deadline;
  clientApi: LlmApi;
  tap: UsageTap;
  translator: StreamTranslator | undefined;
  dropUsageChunk: boolean;
  settle: (usage: LlmUsage | null) => void;
  keepAliveMs: number;
}

/** Read the upstream body chunk by chunk, the silence timer armed while waiting for each. */
async function* readChunks(body: AsyncIterable<Uint8Array>, deadline: Deadline): AsyncGenerator<Uint8Array> {
  const reader = body[Symbol.asyncIterator]();
  let done = false;
  try {
    for (;;) {
      deadline.arm();
      const next = await reader.next();
      deadline.disarm();
      if (next.done) {
        done = true;
        return;
      }
      yield next.value;
    }
  } finally {
    deadline.disarm();
    if (!done) await reader.return?.().catch(() => undefined);
  }
}

async function* relayStream(ctx: StreamContext): AsyncGenerator<Uint8Array> {
  const { deadline, tap, translator, clientApi } = ctx;
  const parser = new SseParser();
  const handleEvent = (event: ParsedSseEvent): string => {
    if (!event.hasData) return translator ? '' : event.raw;
    const data = tap.observeEvent(event);
    if (translator) return translator.push(event, data);
    if (ctx.dropUsageChunk && isRecord(data) && Array.isArray(data.choices) && data.choices.length === 0 && isRecord(data.usage)) return '';
    return event.raw;
  };
  let failure: string | undefined;
  let upstreamDone = false;
  try {
    try {
      let lastWrite = Date.now();
      for await (const chunk of readChunks(ctx.response.body, deadline)) {
        let out = parser.push(chunk).map(handleEvent).join('');
        if (out === '' && translator && Date.now() - lastWrite >= ctx.keepAliveMs) out = ': keep-alive\n\n';
        if (out !== '') {
          lastWrite = Date.now();
          yield utf8(out);
        }
      }
      upstreamDone = true;
      let rest = parser.end().map(handleEvent).join('');
      if (rest !== '' && !translator && !/(\r\n|\r|\n){2}$/.test(rest)) rest += '\n\n';
      if (rest !== '') yield utf8(rest);
    } catch (error) {
      if (deadline.clientGone) return;
      failure = deadline.timedOut
        ? `the provider sent nothing for ${deadline.seconds} s in the middle of the stream`
        : `the connection to the provider broke in the middle of the stream (${describeError(error)})`;
    }
    if (!tap.finished && !(failure === undefined && tap.sawFinish)) {
      const message = failure ?? 'the provider ended the stream before it was complete';
      yield utf8(translator ? translator.fail(message) : streamErrorEvent(clientApi, message, { status: 502, sequenceNumber: tap.nextSequence }));
    } else if (translator) {
      const tail = translator.end();
      if (tail !== '') yield utf8(tail);
    }
  } finally {
    deadline.close();
    // The client stopped reading (or the provider broke off): end the provider call too.
    if (!upstreamDone) deadline.abort();
    ctx.settle(tap.usage);
  }
}
