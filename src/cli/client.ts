/**
 * The CLI's only way to the server: a small typed client over fetch for the REST API, and where
 * its server URL and API key come from — `--server`/`--api-key`, else AIRLOCK_SERVER /
 * AIRLOCK_API_KEY, else `$XDG_CONFIG_HOME/airlock/config.yaml` (`server`, `api_key`).
 *
 * Invariants: every response is checked against the API's own schemas (a mismatched server
 * version fails with words, not with `undefined`); an API error surfaces the server's message;
 * a followed transcript reconnects with Last-Event-ID, so it neither loses nor repeats events.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { Backoff } from '../lib/backoff.js';
import { EnvironmentList, EnvironmentView, type EnvironmentCreate, type EnvironmentUpdate } from '../protocol/environment.js';
import { describeError } from '../protocol/errors.js';
import { parseOrThrow } from '../protocol/zod-errors.js';
import type { TaskState } from '../protocol/lifecycle.js';
import { EventView, TaskView, type TaskCreate } from '../protocol/task.js';

// ── configuration ──

export interface ConnectionFlags {
  server?: string;
  apiKey?: string;
}

export interface ClientConfig {
  /** Base URL without a trailing slash. */
  server: string;
  apiKey: string;
}

const ConfigFile = z.strictObject({
  server: z.string().min(1).optional(),
  api_key: z.string().min(1).optional(),
});

/** `$XDG_CONFIG_HOME/airlock/config.yaml`; the XDG spec says to ignore a relative XDG_CONFIG_HOME. */
export function configFilePath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : join(env.HOME ?? homedir(), '.config');
  return join(base, 'airlock', 'config.yaml');
}

async function readConfigFile(path: string): Promise<z.infer<typeof ConfigFile>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new Error(`the config file ${path} could not be read: ${describeError(err)} — check its permissions`);
  }
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (err) {
    throw new Error(`the config file ${path} is not valid YAML: ${describeError(err)} — fix it, or remove it and use flags or environment variables`);
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new Error(`the config file ${path} must be a mapping with the keys server and api_key`);
  }
  return parseOrThrow(ConfigFile, value, `config file ${path}`);
}

function normalizeServer(url: string, source: string): string {
  const protocol = URL.canParse(url) ? new URL(url).protocol : undefined;
  if (protocol !== 'http:' && protocol !== 'https:') {
    throw new Error(`the server URL ${JSON.stringify(url)} (from ${source}) is not an http(s) URL — give it like https://airlock.example.com or http://127.0.0.1:8080`);
  }
  return url.replace(/\/+$/, '');
}

/** Resolve the server URL and API key, each from the first place that has it. */
export async function resolveClientConfig(flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env): Promise<ClientConfig> {
  const path = configFilePath(env);
  const needFile = !(flags.server ?? env.AIRLOCK_SERVER) || !(flags.apiKey ?? env.AIRLOCK_API_KEY);
  const file = needFile ? await readConfigFile(path) : {};
  const pick = (flag: string | undefined, flagName: string, envValue: string | undefined, envName: string, fileValue: string | undefined, fileKey: string) => {
    if (flag) return { value: flag, source: flagName };
    if (envValue) return { value: envValue, source: envName };
    if (fileValue) return { value: fileValue, source: `${fileKey} in ${path}` };
    return undefined;
  };
  const server = pick(flags.server, '--server', env.AIRLOCK_SERVER, 'AIRLOCK_SERVER', file.server, 'server');
  const apiKey = pick(flags.apiKey, '--api-key', env.AIRLOCK_API_KEY, 'AIRLOCK_API_KEY', file.api_key, 'api_key');
  if (!server) {
    throw new Error(`no Airlock server given — pass --server URL, set AIRLOCK_SERVER, or put "server: URL" in ${path}`);
  }
  if (!apiKey) {
    throw new Error(`no API key given — set AIRLOCK_API_KEY, put "api_key: KEY" in ${path}, or pass --api-key KEY (visible to other local users in the process list); an admin creates keys with \`airlock admin create-api-key\``);
  }
  // Keys pasted from files or terminals often carry a newline.
  return { server: normalizeServer(server.value.trim(), server.source), apiKey: apiKey.value.trim() };
}

/** Adds `--server` and `--api-key` to a command that talks to the server. */
export function addConnectionOptions(command: Command): Command {
  return command
    .option('--server <url>', 'server URL (default: AIRLOCK_SERVER, then the config file)')
    .option('--api-key <key>', 'API key (default: AIRLOCK_API_KEY, then the config file; a flag is visible in the process list)');
}

/** The client for a command's resolved options. */
export async function clientFor(options: ConnectionFlags): Promise<ApiClient> {
  return new ApiClient(await resolveClientConfig(options));
}

// ── the API ──

/** The server refused the request: `message` is the server's own words. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The server could not be reached (or stopped answering): worth retrying. */
export class ConnectionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConnectionError';
  }
}

export const TaskList = z.object({ tasks: z.array(TaskView), next_cursor: z.string().nullable() });
export type TaskList = z.infer<typeof TaskList>;
export const MessageAccepted = z.object({ id: z.string(), delivered: z.boolean() });
export const WorkerView = z.object({
  worker_id: z.string(),
  version: z.string(),
  backend: z.string(),
  labels: z.record(z.string(), z.string()),
  capacity: z.number(),
  connected: z.boolean(),
  draining: z.boolean(),
  connected_at: z.string().nullable(),
  last_seen_at: z.string(),
});
export type WorkerView = z.infer<typeof WorkerView>;
const ErrorBody = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

export type NewTask = Pick<TaskCreate, 'prompt'> & Partial<Omit<TaskCreate, 'prompt'>>;

/** What a client sends to create an environment: fields with server defaults may be left out. */
export type EnvironmentCreateInput = z.input<typeof EnvironmentCreate>;

export interface ListTasksQuery {
  state?: TaskState;
  workerId?: string;
  limit?: number;
  cursor?: string;
}

/** One item of a followed transcript. */
export type FollowItem =
  | { type: 'transcript'; event: EventView }
  | { type: 'task'; task: TaskView }
  | { type: 'end'; state: string };

export interface FollowOptions {
  /** Resume after this event id (`<ordinal>.<seq>`). */
  after?: string;
  signal?: AbortSignal;
  /** Called before each reconnect, with why the previous stream ended. */
  onReconnect?: (reason: string) => void;
}

export interface ClientOptions {
  /** Request timeout for ordinary calls. */
  requestTimeoutMs?: number;
  /** A stream silent this long is presumed dead and reopened. */
  streamReadTimeoutMs?: number;
  /** Give up following after failing to reconnect for this long. */
  reconnectGiveUpMs?: number;
}

/** An API call answers in milliseconds; 30 s means the server or the network is in trouble. */
const REQUEST_TIMEOUT_MS = 30_000;
/** Three of the server's 15 s keep-alives: a silent stream is dead, not idle. */
const STREAM_READ_TIMEOUT_MS = 45_000;
/** A server restart takes seconds; two minutes of failures means it is not coming back soon. */
const RECONNECT_GIVE_UP_MS = 120_000;
/** Reconnect backoff: quick after a blip, at most 10 s apart during an outage. */
const RECONNECT_BASE_MS = 250;
const RECONNECT_CAP_MS = 10_000;

export class ApiClient {
  private readonly options: Required<ClientOptions>;

  constructor(
    readonly config: ClientConfig,
    options: ClientOptions = {},
  ) {
    this.options = {
      requestTimeoutMs: options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS,
      streamReadTimeoutMs: options.streamReadTimeoutMs ?? STREAM_READ_TIMEOUT_MS,
      reconnectGiveUpMs: options.reconnectGiveUpMs ?? RECONNECT_GIVE_UP_MS,
    };
  }

  createTask(task: NewTask): Promise<TaskView> {
    return this.call('POST', '/api/v1/tasks', TaskView, { body: task });
  }

  listTasks(query: ListTasksQuery = {}): Promise<TaskList> {
    const params = new URLSearchParams();
    if (query.state) params.set('state', query.state);
    if (query.workerId) params.set('worker_id', query.workerId);
    if (query.limit !== undefined) params.set('limit', String(query.limit));
    if (query.cursor) params.set('cursor', query.cursor);
    const qs = params.toString();
    return this.call('GET', `/api/v1/tasks${qs ? `?${qs}` : ''}`, TaskList);
  }

  getTask(id: string): Promise<TaskView> {
    return this.call('GET', `/api/v1/tasks/${encodeURIComponent(id)}`, TaskView);
  }

  cancelTask(id: string): Promise<TaskView> {
    return this.call('POST', `/api/v1/tasks/${encodeURIComponent(id)}/cancel`, TaskView);
  }

  sendMessage(id: string, text: string): Promise<{ id: string; delivered: boolean }> {
    return this.call('POST', `/api/v1/tasks/${encodeURIComponent(id)}/messages`, MessageAccepted, { body: { text } });
  }

  /**
   * The task's reported unified diff (text/x-diff), and whether the server cut it at the
   * reporting limit. A task without a diff is an ApiError 404 with the server's reason.
   */
  async getTaskDiff(id: string): Promise<{ text: string; truncated: boolean }> {
    const path = `/api/v1/tasks/${encodeURIComponent(id)}/diff`;
    const response = await this.send('GET', path, { signal: AbortSignal.timeout(this.options.requestTimeoutMs), headers: { accept: 'text/x-diff' } });
    const text = await response.text();
    if (!response.ok) throw this.errorOf(response, text);
    return { text, truncated: response.headers.get('x-airlock-diff-truncated') === 'true' };
  }

  /** The whole stored transcript of a task. */
  transcript(id: string): Promise<EventView[]> {
    return this.call('GET', `/api/v1/tasks/${encodeURIComponent(id)}/events?format=json`, z.array(EventView));
  }

  async listWorkers(): Promise<WorkerView[]> {
    return (await this.call('GET', '/api/v1/workers', z.object({ workers: z.array(WorkerView) }))).workers;
  }

  createEnvironment(body: EnvironmentCreateInput): Promise<EnvironmentView> {
    return this.call('POST', '/api/v1/environments', EnvironmentView, { body });
  }

  async listEnvironments(): Promise<EnvironmentView[]> {
    return (await this.call('GET', '/api/v1/environments', EnvironmentList)).environments;
  }

  getEnvironment(id: string): Promise<EnvironmentView> {
    return this.call('GET', `/api/v1/environments/${encodeURIComponent(id)}`, EnvironmentView);
  }

  updateEnvironment(id: string, body: EnvironmentUpdate): Promise<EnvironmentView> {
    return this.call('PATCH', `/api/v1/environments/${encodeURIComponent(id)}`, EnvironmentView, { body });
  }

  /** 204 with no body on success. */
  async deleteEnvironment(id: string): Promise<void> {
    const path = `/api/v1/environments/${encodeURIComponent(id)}`;
    const response = await this.send('DELETE', path, { signal: AbortSignal.timeout(this.options.requestTimeoutMs) });
    if (!response.ok) throw this.errorOf(response, await response.text());
  }

  private async call<S extends z.ZodType>(method: string, path: string, schema: S, init: { body?: unknown } = {}): Promise<z.output<S>> {
    const response = await this.send(method, path, { ...init, signal: AbortSignal.timeout(this.options.requestTimeoutMs) });
    const text = await response.text();
    if (!response.ok) throw this.errorOf(response, text);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new Error(`the server at ${this.config.server} answered ${method} ${path} with something that is not JSON — is --server the Airlock server's URL?`);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new Error(
        `the server at ${this.config.server} answered ${method} ${path} in an unexpected shape (${parsed.error.issues[0]?.path.join('.') ?? ''}: ${parsed.error.issues[0]?.message ?? ''}) — are the CLI and the server the same version?`,
      );
    }
    return parsed.data;
  }

  private async send(method: string, path: string, init: { body?: unknown; signal: AbortSignal; headers?: Record<string, string> }): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.config.apiKey}`, accept: 'application/json', ...init.headers };
    let body: string | undefined;
    if (init.body !== undefined) {
      body = JSON.stringify(init.body);
      headers['content-type'] = 'application/json';
    }
    try {
      return await fetch(`${this.config.server}${path}`, { method, headers, body, signal: init.signal });
    } catch (err) {
      if (init.signal.aborted) {
        const reason: unknown = init.signal.reason;
        if (reason instanceof Error && reason.name === 'TimeoutError') {
          throw new ConnectionError(`the server at ${this.config.server} did not answer ${method} ${path} within ${this.options.requestTimeoutMs / 1000} s — it may be overloaded; try again`);
        }
        throw reason instanceof Error ? reason : err; // a stalled stream, or the caller gave up
      }
      const cause = err instanceof Error && err.cause ? describeError(err.cause) : describeError(err);
      throw new ConnectionError(
        `could not reach the Airlock server at ${this.config.server}: ${cause} — check --server / AIRLOCK_SERVER and that the server is running`,
        { cause: err },
      );
    }
  }

  private errorOf(response: Response, text: string): ApiError {
    try {
      const parsed = ErrorBody.safeParse(JSON.parse(text));
      if (parsed.success) return new ApiError(response.status, parsed.data.error.code, parsed.data.error.message);
    } catch {
      // not JSON: described below
    }
    return new ApiError(response.status, 'http', `the server answered ${response.status} ${response.statusText}${text ? `: ${text.slice(0, 200)}` : ''}`);
  }

  /**
   * Follow a task's transcript until the task ends. Reconnects (with backoff, resuming after the
   * last event id) when the stream drops, stalls past the read timeout, or the server is briefly
   * unavailable; API refusals (401, 404, 400) end it at once.
   */
  async *follow(taskId: string, options: FollowOptions = {}): AsyncGenerator<FollowItem> {
    let lastId = options.after;
    const backoff = new Backoff({ baseMs: RECONNECT_BASE_MS, capMs: RECONNECT_CAP_MS });
    let failingSince: number | undefined;
    for (;;) {
      let reason: string;
      try {
        for await (const frame of this.stream(taskId, lastId, options.signal, () => {
          backoff.reset();
          failingSince = undefined;
        })) {
          if (frame.event === 'transcript') {
            if (frame.id) lastId = frame.id;
            yield { type: 'transcript', event: EventView.parse(JSON.parse(frame.data)) };
          } else if (frame.event === 'task') {
            yield { type: 'task', task: TaskView.parse(JSON.parse(frame.data)) };
          } else if (frame.event === 'end') {
            const end = z.object({ state: z.string() }).parse(JSON.parse(frame.data));
            yield { type: 'end', state: end.state };
            return;
          }
        }
        reason = 'the server closed the stream';
      } catch (err) {
        if (options.signal?.aborted) throw err;
        if (err instanceof ApiError && err.status < 500) throw err;
        if (!(err instanceof ConnectionError || err instanceof ApiError || err instanceof StreamStalled || err instanceof TypeError)) throw err;
        reason = describeError(err);
      }
      failingSince ??= Date.now();
      if (Date.now() - failingSince > this.options.reconnectGiveUpMs) {
        throw new ConnectionError(`lost the transcript stream of ${taskId} and could not resume it for ${Math.round(this.options.reconnectGiveUpMs / 1000)} s: ${reason}`);
      }
      options.onReconnect?.(reason);
      await sleep(backoff.next(), options.signal);
    }
  }

  private async *stream(taskId: string, lastId: string | undefined, signal: AbortSignal | undefined, onOpen: () => void): AsyncGenerator<SseFrame> {
    const controller = new AbortController();
    const abort = () => controller.abort(signal?.reason);
    signal?.addEventListener('abort', abort, { once: true });
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => controller.abort(new StreamStalled(this.options.streamReadTimeoutMs)), this.options.streamReadTimeoutMs);
    };
    try {
      arm();
      const response = await this.send('GET', `/api/v1/tasks/${encodeURIComponent(taskId)}/events`, {
        signal: controller.signal,
        headers: { accept: 'text/event-stream', ...(lastId ? { 'last-event-id': lastId } : {}) },
      });
      if (!response.ok) throw this.errorOf(response, await response.text());
      if (!response.body) throw new ConnectionError('the server sent an empty event stream');
      onOpen();
      for await (const frame of parseSse(response.body, arm)) yield frame;
    } catch (err) {
      if (controller.signal.reason instanceof StreamStalled) throw controller.signal.reason;
      throw err;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', abort);
      controller.abort();
    }
  }
}

class StreamStalled extends Error {
  constructor(ms: number) {
    super(`the event stream was silent for ${Math.round(ms / 1000)} s`);
    this.name = 'StreamStalled';
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

// ── server-sent events ──

export interface SseFrame {
  id?: string;
  event: string;
  data: string;
}

/**
 * Frames of an event stream (the parts of the EventSource rules the API uses: `id`, `event`,
 * multi-line `data`, comments). `onChunk` runs on every chunk received, keep-alives included.
 */
export async function* parseSse(body: ReadableStream<Uint8Array>, onChunk: () => void = () => undefined): AsyncGenerator<SseFrame> {
  const decoder = new TextDecoder();
  let buffer = '';
  let id: string | undefined;
  let event = '';
  let data: string[] = [];
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    onChunk();
    buffer += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1));
      if (line === '') {
        if (data.length > 0) yield { ...(id !== undefined ? { id } : {}), event: event || 'message', data: data.join('\n') };
        event = '';
        data = [];
        id = undefined;
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'data') data.push(value);
      else if (field === 'event') event = value;
      else if (field === 'id') id = value;
    }
  }
}
