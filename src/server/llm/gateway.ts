/**
 * The control plane's LLM gateway: `POST /llm/v1/chat/completions`, `/llm/v1/responses` and
 * `/llm/v1/messages`, for workers relaying their tasks' model requests. Authenticated by
 * task-scoped LLM tokens (tokens.ts), routed to the team's providers (its own `models:` block, or
 * the server's), metered per execution and model (store: llm_usage).
 *
 * Invariants:
 * - Only a valid, unexpired LLM token of an execution that is not terminal is accepted; API keys
 *   are refused (a team key must never be usable from inside a task environment).
 * - Authentication runs before the body is read: an unauthenticated client cannot make the
 *   server parse 32 MiB.
 * - Every error reaches the client in its own API's format (OpenAI or Anthropic error bodies),
 *   never in the REST API's `{"error":{"code"}}` shape.
 * - Zero data retention: no request or response body is stored or logged — the log line of a
 *   request carries ids, status, model and token counts only.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ModelsConfig } from '../../llm/config.js';
import { writeAnswer } from '../../llm/body.js';
import { errorBody } from '../../llm/errors.js';
import { LLM_API_PATHS, type LlmApi, type LlmRequest, type LlmResponse, type LlmUsage } from '../../llm/types.js';
import { AirlockError, describeError } from '../../protocol/errors.js';
import { fromFastifyError } from '../../protocol/fastify-errors.js';
import { TERMINAL_EXECUTION_STATES } from '../../protocol/lifecycle.js';
import type { ServerContext } from '../context.js';
import type { LlmGatewayConfig } from './config.js';
import type { ActiveExecution, LlmTokenAuthority } from './tokens.js';

/** Where the gateway lives: the three APIs' own paths under this prefix. */
export const LLM_GATEWAY_PREFIX = '/llm';
/** Agent conversations resend their whole context each turn; providers accept bodies this large. */
const MAX_MODEL_REQUEST_BYTES = 32 * 1024 * 1024;
/** Client headers passed on to the provider (never credentials: the provider adds its own). */
const FORWARDED_HEADERS = ['anthropic-version', 'anthropic-beta', 'openai-beta'];
/** Team names rarely change; looked up once per team and process. */
const TEAM_NAME_CACHE_LIMIT = 10_000;

export interface ModelRouter {
  handle(request: LlmRequest): Promise<LlmResponse>;
}

export interface LlmGatewayOptions {
  config: LlmGatewayConfig;
  tokens: LlmTokenAuthority;
  /** Builds the router of one `models:` block (the llm module's `createModelRouter`). */
  createRouter: (models: ModelsConfig) => ModelRouter;
}

/** An error in the client's format, with the status it is sent with. */
class GatewayError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

type Caller = ActiveExecution;

/** The paths the gateway serves, by API. */
export const LLM_GATEWAY_PATHS: { readonly [api in LlmApi]: string } = {
  chat: `${LLM_GATEWAY_PREFIX}${LLM_API_PATHS.chat}`,
  responses: `${LLM_GATEWAY_PREFIX}${LLM_API_PATHS.responses}`,
  messages: `${LLM_GATEWAY_PREFIX}${LLM_API_PATHS.messages}`,
};

/** Register the gateway's routes on the server's app (before it listens). */
export function attachLlmGateway(app: FastifyInstance, ctx: Omit<ServerContext, 'dispatch' | 'workers'>, options: LlmGatewayOptions): void {
  const log = ctx.log.child({ component: 'llm-gateway' });
  const globalRouter = options.config.models ? options.createRouter(options.config.models) : null;
  const teamRouters = new Map<string, ModelRouter | null>();
  for (const [name, team] of Object.entries(options.config.teams)) teamRouters.set(name, team.models ? options.createRouter(team.models) : null);
  const teamNames = new Map<string, string>();
  const callers = new WeakMap<FastifyRequest, Caller>();

  const apiOf = (request: FastifyRequest): LlmApi => {
    const url = request.routeOptions.url ?? request.url;
    if (url.endsWith(LLM_API_PATHS.messages)) return 'messages';
    if (url.endsWith(LLM_API_PATHS.responses)) return 'responses';
    return 'chat';
  };

  const teamName = async (teamId: string): Promise<string | undefined> => {
    const known = teamNames.get(teamId);
    if (known !== undefined) return known;
    const team = await ctx.store.getTeam(teamId);
    if (!team) return undefined;
    if (teamNames.size >= TEAM_NAME_CACHE_LIMIT) teamNames.clear();
    teamNames.set(teamId, team.name);
    return team.name;
  };

  const routerFor = async (teamId: string): Promise<ModelRouter | null> => {
    if (teamRouters.size > 0) {
      const name = await teamName(teamId);
      if (name !== undefined && teamRouters.has(name)) return teamRouters.get(name)!;
    }
    return globalRouter;
  };

  const authenticate = async (request: FastifyRequest): Promise<void> => {
    const header = request.headers.authorization;
    const bearer = typeof header === 'string' ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header)?.[1] : undefined;
    const apiKeyHeader = request.headers['x-api-key'];
    const token = bearer ?? (typeof apiKeyHeader === 'string' ? apiKeyHeader.trim() : undefined);
    if (!token) {
      throw new GatewayError(
        401,
        'missing LLM token — the control plane\'s LLM gateway takes the task-scoped token a worker receives for each execution ("Authorization: Bearer allt.…"); agents send model requests to their worker\'s task gateway, which adds it',
      );
    }
    if (token.startsWith('alk_')) {
      throw new GatewayError(
        401,
        'API keys are not accepted by the LLM gateway — it takes only task-scoped LLM tokens, which workers receive for each execution; send model requests through a worker\'s task gateway (or configure `models:` on the worker to call your provider directly)',
      );
    }
    const now = ctx.clock.now();
    const check = options.tokens.verify(token, now);
    if (!check.ok) {
      if (check.reason === 'expired') {
        throw new GatewayError(401, `the LLM token of execution ${check.executionId} has expired — workers receive fresh tokens on heartbeats; check that the worker is connected to this server`);
      }
      throw new GatewayError(401, 'the LLM token is not valid (malformed, or signed by another server) — use the token the server issued for this execution');
    }
    const cached = options.tokens.recentlyActive(check.executionId, now);
    if (cached) {
      callers.set(request, cached);
      return;
    }
    const execution = await ctx.store.getExecution(check.executionId);
    if (!execution) throw new GatewayError(401, `the LLM token names execution ${check.executionId}, which this server does not know — use the token issued with the claim`);
    if (TERMINAL_EXECUTION_STATES.has(execution.state)) {
      throw new GatewayError(401, `execution ${execution.id} has ended (${execution.state}): its LLM tokens are revoked`);
    }
    const caller = { executionId: execution.id, taskId: execution.taskId, teamId: execution.teamId };
    options.tokens.rememberActive(caller, now);
    callers.set(request, caller);
  };

  const sendError = (request: FastifyRequest, reply: FastifyReply, status: number, message: string) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (status === 401) headers['www-authenticate'] = 'Bearer';
    return reply.code(status).headers(headers).send(errorBody(apiOf(request), status, message));
  };

  const handle = async (api: LlmApi, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const caller = callers.get(request);
    if (!caller) throw new GatewayError(500, 'internal error: the request ran without authentication');
    const body = request.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new GatewayError(400, `the request body must be a JSON object (a ${LLM_API_PATHS[api]} request)`);
    }
    const router = await routerFor(caller.teamId);
    if (!router) {
      throw new GatewayError(
        503,
        'no model provider is configured on the control plane — an operator adds a `models:` block to the server config file (airlock server --config FILE), or the team configures `models:` on its workers (BYOLLM)',
      );
    }
    const abort = new AbortController();
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) abort.abort(new Error('the client closed the connection'));
    });
    const headers: Record<string, string> = {};
    for (const name of FORWARDED_HEADERS) {
      const value = request.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    const started = performance.now();
    const answer = await router.handle({ api, body: body as Record<string, unknown>, headers, signal: abort.signal });
    const requested = typeof (body as { model?: unknown }).model === 'string' ? (body as { model: string }).model : 'unknown';
    void answer.usage.then((usage) => account(caller, api, answer.status, requested, usage, performance.now() - started));
    reply.hijack();
    await writeAnswer(reply.raw, answer);
    return reply;
  };

  const account = async (caller: Caller, api: LlmApi, status: number, requested: string, usage: LlmUsage | null, ms: number): Promise<void> => {
    const model = (usage?.model ?? requested).slice(0, 200) || 'unknown';
    const inputTokens = usage?.input_tokens ?? 0;
    const outputTokens = usage?.output_tokens ?? 0;
    log.info({ execution: caller.executionId, task: caller.taskId, api, status, model, inputTokens, outputTokens, ms: Math.round(ms) }, 'llm:request');
    const increment = {
      teamId: caller.teamId,
      taskId: caller.taskId,
      executionId: caller.executionId,
      model,
      requests: 1,
      errors: status >= 400 ? 1 : 0,
      inputTokens,
      outputTokens,
      now: ctx.clock.now(),
    };
    if (ctx.llmUsage) ctx.llmUsage.add(increment);
    else await ctx.store.recordLlmUsage(increment).catch((err: unknown) => log.error({ execution: caller.executionId, err: describeError(err) }, 'llm:usage:record-failed'));
  };

  app.register(async (scope) => {
    scope.addHook('onRequest', authenticate);
    scope.setErrorHandler((err, request, reply) => {
      if (err instanceof GatewayError) {
        if (err.status >= 500) log.error({ status: err.status, message: err.message }, 'llm:request:failed');
        return sendError(request, reply, err.status, err.message);
      }
      if ((err as { code?: unknown }).code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
        return sendError(request, reply, 413, `the request body is over the LLM gateway's limit of ${MAX_MODEL_REQUEST_BYTES / (1024 * 1024)} MiB — shorten the conversation`);
      }
      const fastify = typeof err === 'object' && err !== null ? fromFastifyError(err, () => new AirlockError('payload_too_large', 'too large')) : undefined;
      if (fastify) return sendError(request, reply, fastify.status ?? 400, fastify.error.message);
      // Ours, not the client's: the details go to the log (never a body), the client gets a generic message.
      log.error({ err: describeError(err) }, 'llm:request:failed');
      return sendError(request, reply, 500, 'internal error in the control plane\'s LLM gateway — the server\'s log has the details; retry');
    });
    for (const [api, path] of Object.entries(LLM_GATEWAY_PATHS) as Array<[LlmApi, string]>) {
      scope.post(path, { bodyLimit: MAX_MODEL_REQUEST_BYTES }, (request, reply) => handle(api, request, reply));
    }
  });
}
