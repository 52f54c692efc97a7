/**
 * The scripted model server: a TEST DOUBLE, not an LLM provider. It stands in, at the wire level,
 * for the providers tests and demos cannot reach — OpenAI Chat Completions, OpenAI Responses and
 * Anthropic Messages — and answers each request with the next scripted turn, never with a model.
 * Invariants: it listens on loopback unless told otherwise; every response carries
 * `x-airlock-test-double: scripted-model-server`; it records every request but never a credential.
 *
 * Besides the three model routes it answers what real CLI agents call around them, without
 * taking a turn: `HEAD /` (Claude Code's connectivity check), `GET /v1/models` (in the OpenAI or,
 * with `anthropic-version`, the Anthropic shape) and `POST /v1/messages/count_tokens`. Query
 * strings such as Claude Code's `/v1/messages?beta=true` are accepted on every route. Real CLIs
 * also make side calls (e.g. a session title) and retry: script them with a function and
 * `conversationStep`, which counts the tool results a request carries, rather than a fixed list.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { z } from 'zod';
import { zodToValidationError } from '../protocol/zod-errors.js';
import { loadScriptFile, parseScript, type ScriptedTurn } from './model-script.js';
import {
  chatCompletionBody,
  chatCompletionStream,
  encodeSse,
  errorBody,
  messagesBody,
  messagesStream,
  responsesBody,
  responsesStream,
  type ProviderApi,
  type ResolvedTurn,
  type SseEvent,
} from './model-wire.js';

export type { ScriptedTurn } from './model-script.js';
export { loadScriptFile, parseScript } from './model-script.js';

/** The header that marks every answer as coming from this double, so no log mistakes it for a provider. */
export const TEST_DOUBLE_HEADER = 'x-airlock-test-double';
export const TEST_DOUBLE_NAME = 'scripted-model-server';

/** Loopback by default: a test double has no business being reachable from other hosts. */
const DEFAULT_HOST = '127.0.0.1';

/**
 * Agent conversations resend the whole context each turn, and long tool outputs make that tens
 * of megabytes; the providers accept bodies this large, so the double must too.
 */
const BODY_LIMIT_BYTES = 32 * 1024 * 1024;

/** Rule of thumb for English text and JSON: about four characters per token. Used only when a turn scripts no usage. */
const CHARS_PER_TOKEN = 4;

/** Headers that carry credentials: recorded only as present or absent. */
const CREDENTIAL_HEADERS = new Set(['authorization', 'x-api-key', 'api-key']);

export interface RecordedRequest {
  api: ProviderApi | 'unknown';
  method: string;
  path: string;
  /** Request headers except credentials (authorization, x-api-key, api-key). */
  headers: Record<string, string>;
  /** Whether the request carried `authorization` or `x-api-key`; their values are never kept. */
  hasAuthorization: boolean;
  /** The parsed JSON body, or the raw text when it was not JSON. */
  body: unknown;
}

export type ModelScript = ScriptedTurn[] | ((request: RecordedRequest) => ScriptedTurn);

export interface ScriptedModelServerOptions {
  /** 0 (the default) picks a free port. */
  port?: number;
  host?: string;
  script: ModelScript;
  /** Model ids `GET /v1/models` lists (default: one, `scripted-model`). */
  models?: string[];
}

/**
 * How far a client's conversation has got: the number of tool results it sends back (Chat
 * `role: tool` messages, Responses `*_call_output` items, Messages `tool_result` blocks). A script
 * function indexes its steps with it, so side requests and retries do not shift the script.
 */
export function conversationStep(request: RecordedRequest): number {
  const body = (typeof request.body === 'object' && request.body !== null ? request.body : {}) as { messages?: unknown; input?: unknown };
  const items = (value: unknown): Array<Record<string, unknown>> => (Array.isArray(value) ? value.filter((v): v is Record<string, unknown> => typeof v === 'object' && v !== null) : []);
  if (request.api === 'responses') return items(body.input).filter((item) => item.type === 'function_call_output' || item.type === 'custom_tool_call_output').length;
  if (request.api === 'chat-completions') return items(body.messages).filter((m) => m.role === 'tool').length;
  if (request.api === 'messages') {
    return items(body.messages)
      .filter((m) => m.role === 'user')
      .reduce((n, m) => n + items(m.content).filter((block) => block.type === 'tool_result').length, 0);
  }
  return 0;
}

/** Whether a request offers the model no tools: a side call (a title, a summary), not an agent turn. */
export function offersNoTools(request: RecordedRequest): boolean {
  const body = (typeof request.body === 'object' && request.body !== null ? request.body : {}) as { tools?: unknown };
  return !Array.isArray(body.tools) || body.tools.length === 0;
}

export interface ScriptedModelServer {
  /** Base URL without `/v1` (Anthropic SDKs want it so; OpenAI SDKs want `${url}/v1`). */
  url: string;
  /** Every request received, in order, malformed ones included. */
  requests: RecordedRequest[];
  close(): Promise<void>;
}

// Minimal request checks: what every provider rejects with a 400, not a full schema.
const chatRequestSchema = z.looseObject({
  model: z.string().min(1),
  messages: z.array(z.unknown()).min(1, 'messages must contain at least one message'),
  stream: z.boolean().nullish(),
  stream_options: z.looseObject({ include_usage: z.boolean().nullish() }).nullish(),
});
const responsesRequestSchema = z.looseObject({
  model: z.string().min(1),
  input: z.union([z.string(), z.array(z.unknown())]),
  stream: z.boolean().nullish(),
});
const messagesRequestSchema = z.looseObject({
  model: z.string().min(1),
  messages: z.array(z.unknown()).min(1, 'messages must contain at least one message'),
  max_tokens: z.number().int().positive(),
  stream: z.boolean().nullish(),
});

const ROUTES: Array<{ path: string; api: ProviderApi; schema: z.ZodType<{ model: string; stream?: boolean | null | undefined }> }> = [
  { path: '/v1/chat/completions', api: 'chat-completions', schema: chatRequestSchema },
  { path: '/v1/responses', api: 'responses', schema: responsesRequestSchema },
  { path: '/v1/messages', api: 'messages', schema: messagesRequestSchema },
];

function recordHeaders(raw: FastifyRequest['headers']): { headers: Record<string, string>; hasAuthorization: boolean } {
  const headers: Record<string, string> = {};
  let hasAuthorization = false;
  for (const [name, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    if (CREDENTIAL_HEADERS.has(name)) {
      hasAuthorization = true;
      continue;
    }
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return { headers, hasAuthorization };
}

function estimateTokens(value: unknown): number {
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? '');
  return Math.max(1, Math.ceil(text.length / CHARS_PER_TOKEN));
}

export async function startScriptedModelServer(options: ScriptedModelServerOptions): Promise<ScriptedModelServer> {
  const script = options.script;
  const turns = typeof script === 'function' ? undefined : parseScript(script);
  let nextTurn = 0;
  let nextId = 0;
  const requests: RecordedRequest[] = [];
  /** Aborts pending turn delays on close, so closing never waits for a scripted pause. */
  const closing = new AbortController();

  const app = Fastify({ logger: false, bodyLimit: BODY_LIMIT_BYTES, forceCloseConnections: true });
  // Take bodies as text and parse them here, so malformed JSON gets the provider's error shape
  // rather than fastify's, and is still recorded.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => done(null, body));
  app.addHook('onRequest', async (_request, reply) => {
    reply.raw.setHeader(TEST_DOUBLE_HEADER, TEST_DOUBLE_NAME);
  });

  const takeTurn = (recorded: RecordedRequest): ScriptedTurn | { exhausted: string } => {
    if (typeof script === 'function') {
      try {
        return parseScript([script(recorded)], 'turn returned by the script function')[0]!;
      } catch (error) {
        return { exhausted: `scripted model server (test double): the script function failed for ${recorded.path}: ${(error as Error).message}` };
      }
    }
    const turn = turns![nextTurn];
    if (!turn) {
      return {
        exhausted: `scripted model server (test double): the script ran out — it had ${turns!.length} turn${turns!.length === 1 ? '' : 's'} and this is request ${nextTurn + 1} for one; add turns to the script or check why the client called again`,
      };
    }
    nextTurn++;
    return turn;
  };

  const sendError = (reply: FastifyReply, api: ProviderApi, status: number, message: string): FastifyReply =>
    reply.code(status).type('application/json').send(errorBody(api, status, message));

  const sendStream = (reply: FastifyReply, api: ProviderApi, events: SseEvent[]): void => {
    reply.hijack();
    reply.raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      ...(api === 'messages' ? { 'request-id': `req_scripted_${nextId}` } : { 'x-request-id': `req_scripted_${nextId}` }),
    });
    for (const event of events) reply.raw.write(encodeSse(event));
    reply.raw.end();
  };

  for (const route of ROUTES) {
    app.post(route.path, async (request, reply) => {
      const { headers, hasAuthorization } = recordHeaders(request.headers);
      const rawBody = typeof request.body === 'string' ? request.body : '';
      let body: unknown = rawBody;
      let isJson = false;
      try {
        body = JSON.parse(rawBody) as unknown;
        isJson = true;
      } catch {
        /* recorded as text, answered below */
      }
      const recorded: RecordedRequest = { api: route.api, method: request.method, path: request.url, headers, hasAuthorization, body };
      requests.push(recorded);

      if (!isJson) return sendError(reply, route.api, 400, `scripted model server (test double): the body of POST ${route.path} is not valid JSON — send a JSON object`);
      const parsed = route.schema.safeParse(body);
      if (!parsed.success) return sendError(reply, route.api, 400, `scripted model server (test double): ${zodToValidationError(parsed.error, `${route.path} request`).message}`);

      const turn = takeTurn(recorded);
      if ('exhausted' in turn) return sendError(reply, route.api, 500, turn.exhausted);
      if (turn.delayMs) {
        try {
          await sleep(turn.delayMs, undefined, { signal: closing.signal });
        } catch {
          return reply; // closing: the connection is being torn down
        }
      }
      if (turn.error) return sendError(reply, route.api, turn.error.status, turn.error.message);

      nextId++;
      const text = turn.text;
      const toolCalls = (turn.toolCalls ?? []).map((call, index) => ({
        id: route.api === 'messages' ? `toolu_scripted_${nextId}_${index}` : `call_scripted_${nextId}_${index}`,
        name: call.name,
        argumentsJson: JSON.stringify(call.arguments),
      }));
      const resolved: ResolvedTurn = {
        model: parsed.data.model,
        id: `scripted_${nextId}`,
        text,
        toolCalls,
        usage: turn.usage ?? { input: estimateTokens(body), output: estimateTokens((text ?? '') + toolCalls.map((c) => c.argumentsJson).join('')) },
        created: Math.floor(Date.now() / 1000),
      };
      const failWith = turn.midStreamError;

      if (parsed.data.stream !== true) {
        // A non-streaming call cannot fail half-way: the provider answers 500 instead.
        if (failWith !== undefined) return sendError(reply, route.api, 500, failWith);
        const answer = route.api === 'chat-completions' ? chatCompletionBody(resolved) : route.api === 'responses' ? responsesBody(resolved) : messagesBody(resolved);
        return reply.code(200).type('application/json').send(answer);
      }
      const streamOptions = failWith === undefined ? {} : { failWith };
      const events =
        route.api === 'chat-completions'
          ? chatCompletionStream(resolved, { includeUsage: (body as { stream_options?: { include_usage?: boolean } | null }).stream_options?.include_usage === true, ...streamOptions })
          : route.api === 'responses'
            ? responsesStream(resolved, streamOptions)
            : messagesStream(resolved, streamOptions);
      sendStream(reply, route.api, events);
      return reply;
    });
  }

  // What CLI agents call around the model routes; recorded (as `unknown`), never a turn.
  const recordExtra = (request: FastifyRequest) => {
    const { headers, hasAuthorization } = recordHeaders(request.headers);
    requests.push({ api: 'unknown', method: request.method, path: request.url, headers, hasAuthorization, body: request.body ?? null });
  };
  app.route({
    method: ['GET', 'HEAD'],
    url: '/',
    handler: async (request, reply) => {
      recordExtra(request);
      return reply.code(200).type('text/plain').send(`${TEST_DOUBLE_NAME}: a test double, not a provider\n`);
    },
  });
  app.get('/v1/models', async (request, reply) => {
    recordExtra(request);
    const ids = options.models ?? ['scripted-model'];
    if (request.headers['anthropic-version'] !== undefined) {
      return reply.send({ data: ids.map((id) => ({ type: 'model', id, display_name: id, created_at: '1970-01-01T00:00:00Z' })), has_more: false, first_id: ids[0] ?? null, last_id: ids.at(-1) ?? null });
    }
    return reply.send({ object: 'list', data: ids.map((id) => ({ id, object: 'model', created: 0, owned_by: TEST_DOUBLE_NAME })) });
  });
  app.post('/v1/messages/count_tokens', async (request, reply) => {
    recordExtra(request);
    return reply.send({ input_tokens: estimateTokens(typeof request.body === 'string' ? request.body : '') });
  });

  app.setNotFoundHandler(async (request, reply) => {
    const { headers, hasAuthorization } = recordHeaders(request.headers);
    requests.push({ api: 'unknown', method: request.method, path: request.url, headers, hasAuthorization, body: request.body });
    const api: ProviderApi = request.url.startsWith('/v1/messages') ? 'messages' : 'chat-completions';
    return sendError(reply, api, 404, `scripted model server (test double) has no route ${request.method} ${request.url} — it serves POST ${ROUTES.map((r) => r.path).join(', ')}, POST /v1/messages/count_tokens, GET /v1/models and HEAD /`);
  });

  const host = options.host ?? DEFAULT_HOST;
  await app.listen({ port: options.port ?? 0, host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : (options.port ?? 0);
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${port}`,
    requests,
    close: async () => {
      closing.abort();
      await app.close();
    },
  };
}

/** A script for `airlock dev model-server` run without a file: every request gets the same short answer. */
const DEFAULT_COMMAND_TURN: ScriptedTurn = { text: 'This is the scripted model server (a test double), run without a script file.' };

/**
 * `airlock dev model-server [--port N] [--script FILE]`: loads the script (JSON or YAML list of
 * turns), starts the server and prints its URL. The caller owns the returned server and closes it
 * on shutdown signals.
 */
export async function runModelServerCommand(options: { port: number; scriptFile?: string; host?: string; print?: (line: string) => void }): Promise<ScriptedModelServer> {
  const script: ModelScript = options.scriptFile === undefined ? () => DEFAULT_COMMAND_TURN : await loadScriptFile(options.scriptFile);
  const server = await startScriptedModelServer({ port: options.port, ...(options.host === undefined ? {} : { host: options.host }), script });
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const source = options.scriptFile === undefined ? 'no script file: every request gets a canned text answer' : `${(script as ScriptedTurn[]).length} turns from ${options.scriptFile}`;
  print(`scripted model server (TEST DOUBLE, not a provider) listening on ${server.url} — ${source}`);
  print(`  OpenAI base URL: ${server.url}/v1   Anthropic base URL: ${server.url}`);
  return server;
}
