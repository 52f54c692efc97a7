/**
 * The task gateway: the HTTP API (protocol/gateway.ts) an agent inside one task environment uses
 * to reach its worker — the execution's spec, transcript event upload, control (cancel and
 * follow-up messages, by long poll) and the final result. One instance per execution, served on
 * a Unix socket the backend exposes to the task.
 *
 * Invariants:
 * - Every request carries the execution's bearer token, compared in constant time (401 otherwise).
 * - Every body and query is validated; unknown fields are refused (400 naming the field).
 * - Events are idempotent by the agent's `seq`: a replay is acknowledged and dropped, a gap is a
 *   409 naming the expected seq, and an upload is answered only after `onEvents` resolved — once
 *   the worker has durably taken the events. Uploads are handled one at a time, in order.
 * - The gateway never redacts: `onEvents`/`onResult` receive what the agent sent; the caller
 *   (the execution runner) redacts before anything leaves the data plane.
 */
import { chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { z } from 'zod';
import { constantTimeEqual } from '../../lib/constant-time.js';
import { silentLog, type Log } from '../../lib/log.js';
import { AirlockError, ConflictError, RetryableError, ValidationError, describeError } from '../../protocol/errors.js';
import {
  AgentEventsUpload,
  AgentResult,
  GATEWAY_PATHS,
  GitCredentialQuery,
  MAX_KEPT_DIFF_BYTES,
  type AgentEvent,
  type ControlState,
  type GitCredential,
} from '../../protocol/gateway.js';
import { writeAnswer } from '../../llm/body.js';
import { errorResponse } from '../../llm/errors.js';
import { LLM_API_PATHS, type LlmApi, type LlmRequest, type LlmResponse } from '../../llm/types.js';
import { MAX_REPOSITORIES } from '../../protocol/environment.js';
import { MAX_EVENT_DATA_BYTES, MAX_REQUEST_BODY_BYTES, type ExecutionSpec } from '../../protocol/task.js';
import { parseOrThrow } from '../../protocol/zod-errors.js';
import { toGatewayHttpError } from './errors.js';
import { assertSocketPathFits, removeStaleSocket } from './socket.js';

/** Longest long poll: short enough that a dead connection is noticed, long enough to be cheap. */
export const MAX_CONTROL_WAIT_MS = 30_000;
/**
 * Anyone who can reach the socket may try it; the token is the authentication. The docker
 * backend's container user may differ from the worker's, so the socket is world-connectable and
 * its directory is what limits who can reach it.
 */
const SOCKET_MODE = 0o666;
/** A request (headers and body) must arrive within this time: no slow-loris hold on a connection. */
const REQUEST_TIMEOUT_MS = 60_000;
/** When `onEvents`/`onResult` fails, ask the agent to retry after this long. */
const RETRY_AFTER_MS = 1_000;
/** Agent conversations resend their whole context each turn; providers accept bodies this large. */
const MAX_MODEL_REQUEST_BYTES = 32 * 1024 * 1024;
/** Client headers a model route forwards (never credentials: the route adds its own). */
const FORWARDED_MODEL_HEADERS = ['anthropic-version', 'anthropic-beta', 'openai-beta'];

const DiffQuery = z.strictObject({
  repository: z.coerce.number().int().min(0).max(MAX_REPOSITORIES - 1),
});

const ControlQuery = z.strictObject({
  after: z.coerce.number().int().min(0).optional(),
  wait: z.coerce.number().int().min(0).optional(),
});

export interface FollowUpMessageInput {
  /** The server's message id: delivering the same id twice is harmless. */
  id: string;
  text: string;
}

export interface TaskGatewayOptions {
  /** Where to listen. Its directory is created if missing; a stale socket file is replaced. */
  socketPath: string;
  /** The execution's bearer token (minted by the worker, given to the agent in AIRLOCK_TASK_TOKEN). */
  token: string;
  spec: ExecutionSpec;
  /** New events, in order, without replays. Must resolve only once they are stored durably. */
  onEvents: (events: AgentEvent[]) => Promise<void>;
  /** The agent's final result (called at most once). */
  onResult: (result: AgentResult) => Promise<void> | void;
  /** Answers the model API routes (chat completions, responses, messages); absent → 503. */
  llm?: (request: LlmRequest) => Promise<LlmResponse>;
  /** Keep the full diff of repository `index` (its reported diff was cut); absent → 404. */
  onDiff?: (index: number, diff: Buffer) => Promise<void>;
  /** Credentials for one of the task's repositories, or null when the worker has none for it. */
  gitCredential?: (query: GitCredentialQuery) => Promise<GitCredential | null>;
  /**
   * Resuming an execution a previous worker process served (a reattached container): the
   * highest agent seq already stored, and the result the agent already reported, if any.
   */
  resume?: { lastSeq: number; result?: AgentResult };
  log?: Log;
}

/** One execution's task gateway. `start()`, then `cancel()`/`deliverMessage()` as needed, then `close()`. */
export class TaskGateway {
  private readonly app: FastifyInstance;
  private readonly log: Log;
  private lastSeq = 0;
  /** The reported result, and the promise that settles once `onResult` took it. */
  private result: { value: AgentResult; taken: Promise<void> } | undefined;
  private cancelState: { reason: string } | null = null;
  private readonly messages: ControlState['messages'] = [];
  private readonly waiters = new Set<() => void>();
  /** Serialises event uploads so the seq check and `onEvents` happen in arrival order. */
  private eventsChain: Promise<unknown> = Promise.resolve();
  private state: 'new' | 'listening' | 'closing' | 'closed' = 'new';
  private closed: Promise<void> | undefined;

  constructor(private readonly options: TaskGatewayOptions) {
    this.log = options.log ?? silentLog;
    if (options.resume) {
      this.lastSeq = options.resume.lastSeq;
      if (options.resume.result) this.result = { value: options.resume.result, taken: Promise.resolve() };
    }
    this.app = Fastify({
      logger: false,
      bodyLimit: MAX_REQUEST_BODY_BYTES,
      requestTimeout: REQUEST_TIMEOUT_MS,
      onProtoPoisoning: 'error',
      onConstructorPoisoning: 'error',
    });
    this.routes();
  }

  /** The socket path this gateway serves. */
  get socketPath(): string {
    return this.options.socketPath;
  }

  /** The highest event seq accepted so far (0 before the first upload). */
  get lastAcceptedSeq(): number {
    return this.lastSeq;
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`the task gateway for ${this.options.spec.execution_id} was already started`);
    const { socketPath } = this.options;
    assertSocketPathFits(socketPath, 'use a shorter workspace root');
    await mkdir(path.dirname(socketPath), { recursive: true, mode: 0o700 });
    await removeStaleSocket(socketPath);
    await this.app.listen({ path: socketPath });
    await chmod(socketPath, SOCKET_MODE);
    this.state = 'listening';
    this.log.debug({ execution: this.options.spec.execution_id, socket: socketPath }, 'task gateway listening');
  }

  /** Ask the agent to stop: visible at GET /v1/control, and wakes pending long polls. The first reason wins. */
  cancel(reason: string): void {
    if (this.cancelState) return;
    this.cancelState = { reason };
    this.wake();
  }

  /** Queue a follow-up message for the agent. Delivering an id again does nothing. */
  deliverMessage(message: FollowUpMessageInput): void {
    if (this.messages.some((m) => m.id === message.id)) return;
    this.messages.push({ index: this.messages.length + 1, id: message.id, text: message.text });
    this.wake();
  }

  /** Stop serving: pending long polls return at once, in-flight uploads finish. Idempotent. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      const wasListening = this.state === 'listening';
      this.state = 'closing';
      this.wake();
      if (wasListening) await this.app.close();
      this.state = 'closed';
    })();
    return this.closed;
  }

  private wake(): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiters) wake();
  }

  private routes(): void {
    const app = this.app;
    app.addHook('onRequest', async (request) => {
      const header = request.headers.authorization ?? '';
      const match = /^Bearer (.+)$/.exec(header);
      if (!match || !constantTimeEqual(match[1]!, this.options.token)) {
        throw new AirlockError(
          'unauthenticated',
          'missing or wrong task token — send "Authorization: Bearer <token>" with the value of AIRLOCK_TASK_TOKEN',
        );
      }
    });

    app.setErrorHandler(async (err, request, reply) => this.sendError(err, request, reply));
    app.setNotFoundHandler(async (request, reply) =>
      this.sendError(
        new AirlockError(
          'not_found',
          `no route ${request.method} ${request.url.split('?')[0]} — the task gateway serves GET ${GATEWAY_PATHS.task}, POST ${GATEWAY_PATHS.events}, GET ${GATEWAY_PATHS.control}, POST ${GATEWAY_PATHS.result}, POST ${GATEWAY_PATHS.gitCredential} and the model APIs POST ${Object.values(LLM_API_PATHS).join(', ')}`,
        ),
        request,
        reply,
      ),
    );

    app.get(GATEWAY_PATHS.task, async () => this.options.spec);

    app.post(GATEWAY_PATHS.events, async (request) => {
      const upload = parseOrThrow(AgentEventsUpload, request.body, 'event upload');
      upload.events.forEach((event, i) => {
        const bytes = Buffer.byteLength(JSON.stringify(event.data), 'utf8');
        if (bytes > MAX_EVENT_DATA_BYTES) {
          throw new ValidationError(
            `invalid event upload: events[${i}].data is ${bytes} bytes of JSON, over the limit of ${MAX_EVENT_DATA_BYTES} — split the output into several events`,
            { field: `events[${i}].data` },
          );
        }
      });
      const run = this.eventsChain.then(() => this.acceptEvents(upload.events));
      this.eventsChain = run.catch(() => undefined);
      return run;
    });

    app.get(GATEWAY_PATHS.control, async (request, reply) => {
      const query = parseOrThrow(ControlQuery, request.query, 'control query');
      const after = query.after ?? 0;
      const wait = Math.min(query.wait ?? 0, MAX_CONTROL_WAIT_MS);
      if (wait > 0 && !this.hasNews(after)) await this.waitForNews(after, wait, reply);
      return this.control(after);
    });

    app.addContentTypeParser('text/x-diff', { parseAs: 'buffer', bodyLimit: MAX_KEPT_DIFF_BYTES }, (_request, body, done) => done(null, body));
    app.put(GATEWAY_PATHS.diff, { bodyLimit: MAX_KEPT_DIFF_BYTES }, async (request) => {
      const query = parseOrThrow(DiffQuery, request.query, 'diff query');
      if (!Buffer.isBuffer(request.body)) throw new ValidationError('the diff must be sent as the raw body with content-type text/x-diff');
      if (!this.options.onDiff) throw new AirlockError('not_found', 'this worker does not keep diffs');
      await this.options.onDiff(query.repository, request.body);
      return {};
    });

    app.post(GATEWAY_PATHS.gitCredential, async (request) => {
      const query = parseOrThrow(GitCredentialQuery, request.body, 'git credential query');
      const credential = this.options.gitCredential ? await this.options.gitCredential(query) : null;
      if (!credential) {
        throw new AirlockError('not_found', `this worker has no git credentials for ${query.protocol}://${query.host} — configure them on the worker (git_credentials)`);
      }
      return credential;
    });

    for (const [api, route] of Object.entries(LLM_API_PATHS) as Array<[LlmApi, string]>) {
      app.post(route, { bodyLimit: MAX_MODEL_REQUEST_BYTES }, async (request, reply) => this.modelRequest(api, request, reply));
    }

    app.post(GATEWAY_PATHS.result, async (request) => {
      const result = parseOrThrow(AgentResult, request.body, 'result');
      if (this.result) {
        if (JSON.stringify(this.result.value) !== JSON.stringify(result)) {
          throw new ConflictError('a different result was already reported for this execution — an execution has exactly one result');
        }
        await this.result.taken; // a retry of the same result: answer when the first one was taken
        return {};
      }
      const taken = (async () => {
        await this.eventsChain; // events still being stored belong before the result
        try {
          await this.options.onResult(result);
        } catch (err) {
          this.result = undefined; // not taken: let the agent's retry deliver it
          this.log.warn({ execution: this.options.spec.execution_id, err: describeError(err) }, 'task gateway: storing the result failed');
          throw new RetryableError(`the worker could not store the result (${describeError(err)}) — retry`, RETRY_AFTER_MS, err);
        }
      })();
      this.result = { value: result, taken };
      await taken;
      return {};
    });
  }

  /** Hand a model API request to the worker's router and relay its answer, streamed. */
  private async modelRequest(api: LlmApi, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    // Errors on these routes are answered in the client's own API format: CLI agents and SDKs
    // only understand their provider's error shape.
    const body = request.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      return this.sendModelAnswer(reply, errorResponse(api, 400, `the body must be a JSON object (a ${LLM_API_PATHS[api]} request)`));
    }
    if (!this.options.llm) {
      return this.sendModelAnswer(
        reply,
        errorResponse(api, 503, 'this worker routes no model requests — configure `models:` on the worker, or connect it to a server with an LLM gateway'),
      );
    }
    const abort = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableFinished) abort.abort(new Error('the client closed the connection'));
    };
    reply.raw.once('close', onClose);
    const headers: Record<string, string> = {};
    for (const name of FORWARDED_MODEL_HEADERS) {
      const value = request.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    return this.sendModelAnswer(reply, await this.options.llm({ api, body: body as Record<string, unknown>, headers, signal: abort.signal }));
  }

  private async sendModelAnswer(reply: FastifyReply, answer: LlmResponse): Promise<FastifyReply> {
    reply.hijack();
    await writeAnswer(reply.raw, answer);
    return reply;
  }

  private async acceptEvents(events: AgentEvent[]): Promise<{ accepted: number; next_seq: number }> {
    const fresh = events.filter((e) => e.seq > this.lastSeq);
    for (let i = 0; i < fresh.length; i++) {
      const expected = this.lastSeq + 1 + i;
      if (fresh[i]!.seq !== expected) {
        throw new AirlockError(
          'conflict',
          `event seq ${fresh[i]!.seq} is out of order: the gateway expected seq ${expected} (the last accepted was ${this.lastSeq}) — upload events in order without gaps, resending from seq ${this.lastSeq + 1}`,
          { details: { expected_seq: this.lastSeq + 1 } },
        );
      }
    }
    if (fresh.length > 0) {
      if (this.result) {
        throw new ConflictError(`events after the result are refused: the result for this execution was already reported (last accepted seq ${this.lastSeq})`);
      }
      try {
        await this.options.onEvents(fresh);
      } catch (err) {
        this.log.warn({ execution: this.options.spec.execution_id, err: describeError(err) }, 'task gateway: storing events failed');
        throw new RetryableError(`the worker could not store the events (${describeError(err)}) — retry the upload`, RETRY_AFTER_MS, err);
      }
      this.lastSeq = fresh[fresh.length - 1]!.seq;
    }
    return { accepted: fresh.length, next_seq: this.lastSeq + 1 };
  }

  private hasNews(after: number): boolean {
    return this.cancelState !== null || this.messages.length > after || this.state !== 'listening';
  }

  private control(after: number): ControlState {
    return { cancel: this.cancelState, messages: this.messages.filter((m) => m.index > after) };
  }

  /** Resolve when there is news, the wait is over, the agent hung up, or the gateway closes. */
  private waitForNews(after: number, waitMs: number, reply: FastifyReply): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        reply.raw.off('close', done);
        resolve();
      };
      const timer = setTimeout(done, waitMs);
      this.waiters.add(done);
      reply.raw.once('close', done);
      if (this.hasNews(after)) done();
    });
  }

  private async sendError(err: unknown, request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const http = toGatewayHttpError(err);
    const fields = { execution: this.options.spec.execution_id, method: request.method, url: request.url.split('?')[0], status: http.status };
    if (http.internal) this.log.error({ ...fields, err: describeError(err) }, 'task gateway: request failed');
    else this.log.warn({ ...fields, code: http.body.error.code, message: http.body.error.message }, 'task gateway: request refused');
    await reply.status(http.status).headers(http.headers).send(http.body);
  }
}
