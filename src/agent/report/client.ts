/**
 * The agent's client for its task gateway (protocol/gateway.ts): plain HTTP/1.1 over a Unix
 * socket (`unix:/path`) or TCP (`http://host:port`), JSON bodies, the task token on every request.
 *
 * Invariants: every request has a timeout (a hung gateway never hangs the agent); failures are
 * `GatewayRequestError`s that say whether a retry can help (network errors, 5xx, 429) or not (4xx).
 */
import http from 'node:http';
import { AGENT_ENV, AgentEventsAccepted, ControlState, GATEWAY_PATHS, type AgentEvent, type AgentResult } from '../../protocol/gateway.js';
import { ExecutionSpec } from '../../protocol/task.js';
import { parseOrThrow } from '../../protocol/zod-errors.js';

/** A gateway answers in milliseconds; 30 s means it is wedged, not slow. */
const REQUEST_TIMEOUT_MS = 30_000;
/** Extra time a long poll may take beyond the wait it asked for before we call it hung. */
const LONG_POLL_SLACK_MS = 10_000;

export type GatewayAddress = { kind: 'unix'; socketPath: string; display: string } | { kind: 'http'; host: string; port: number; display: string };

/** Parse AIRLOCK_GATEWAY, or throw an error that says what the value must look like. */
export function parseGatewayAddress(value: string): GatewayAddress {
  if (value.startsWith('unix:')) {
    const socketPath = value.slice('unix:'.length);
    if (!socketPath.startsWith('/')) {
      throw new Error(`${AGENT_ENV.gateway}=${value} is not usable: a unix: address needs an absolute socket path, like unix:/run/airlock/gateway.sock`);
    }
    return { kind: 'unix', socketPath, display: value };
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`${AGENT_ENV.gateway}=${value} is not usable: expected unix:/path/to/socket or http://host:port`);
  }
  if (url.protocol !== 'http:' || (url.pathname !== '/' && url.pathname !== '') || url.search || url.username) {
    throw new Error(`${AGENT_ENV.gateway}=${value} is not usable: expected unix:/path/to/socket or http://host:port (no path, no credentials)`);
  }
  return { kind: 'http', host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 80), display: value };
}

export class GatewayRequestError extends Error {
  /** HTTP status, or 0 when no response arrived (connection refused, timeout…). */
  readonly status: number;
  /** The gateway's error code (`validation`, `conflict`…), or `network`. */
  readonly code: string;
  readonly retryable: boolean;
  /** For a 409 on event upload: the seq the gateway expects next. */
  readonly expectedSeq: number | undefined;

  constructor(message: string, status: number, code: string, expectedSeq?: number, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'GatewayRequestError';
    this.status = status;
    this.code = code;
    this.retryable = status === 0 || status >= 500 || status === 429;
    this.expectedSeq = expectedSeq;
  }
}

export interface RequestOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

export class GatewayClient {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

  constructor(
    readonly address: GatewayAddress,
    private readonly token: string,
  ) {}

  async getSpec(options?: RequestOptions): Promise<ExecutionSpec> {
    return parseOrThrow(ExecutionSpec, await this.request('GET', GATEWAY_PATHS.task, undefined, options), 'execution spec from the task gateway');
  }

  async uploadEvents(events: AgentEvent[], options?: RequestOptions): Promise<{ accepted: number; next_seq: number }> {
    return parseOrThrow(AgentEventsAccepted, await this.request('POST', GATEWAY_PATHS.events, { events }, options), 'event upload answer');
  }

  /** Long poll: returns at once if there is news after message index `after`, else within `waitMs`. */
  async control(after: number, waitMs: number, options?: { signal?: AbortSignal }): Promise<ControlState> {
    const url = `${GATEWAY_PATHS.control}?after=${after}&wait=${waitMs}`;
    const body = await this.request('GET', url, undefined, { signal: options?.signal, timeoutMs: waitMs + LONG_POLL_SLACK_MS });
    return parseOrThrow(ControlState, body, 'control state');
  }

  async postResult(result: AgentResult, options?: RequestOptions): Promise<void> {
    await this.request('POST', GATEWAY_PATHS.result, result, options);
  }

  /** Close idle keep-alive connections so the process can exit. */
  close(): void {
    this.agent.destroy();
  }

  /** Hand the worker the full diff of repository `index` (its reported diff was cut). */
  async putDiff(index: number, diff: Buffer, options?: RequestOptions): Promise<void> {
    await this.send('PUT', `${GATEWAY_PATHS.diff}?repository=${index}`, { bytes: diff, contentType: 'text/x-diff' }, options);
  }

  /** A request with a JSON body (or none); answers the parsed JSON. */
  request(method: 'GET' | 'POST', path: string, body: unknown, options: RequestOptions = {}): Promise<unknown> {
    const payload = body === undefined ? undefined : { bytes: Buffer.from(JSON.stringify(body), 'utf8'), contentType: 'application/json' };
    return this.send(method, path, payload, options);
  }

  private send(method: string, path: string, payload: { bytes: Buffer; contentType: string } | undefined, options: RequestOptions = {}): Promise<unknown> {
    const headers: Record<string, string | number> = { authorization: `Bearer ${this.token}`, accept: 'application/json' };
    if (payload) {
      headers['content-type'] = payload.contentType;
      headers['content-length'] = payload.bytes.length;
    }
    const where = this.address.kind === 'unix' ? { socketPath: this.address.socketPath } : { host: this.address.host, port: this.address.port };
    const timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const req = http.request({ ...where, method, path, headers, agent: this.agent, signal: options.signal }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', (err) => reject(this.networkError(method, path, err)));
        res.on('end', () => {
          clearTimeout(timer);
          const status = res.statusCode ?? 0;
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = text.length > 0 ? JSON.parse(text) : {};
          } catch {
            parsed = undefined;
          }
          if (status >= 200 && status < 300 && parsed !== undefined) {
            resolve(parsed);
            return;
          }
          const error = (parsed as { error?: { code?: unknown; message?: unknown; expected_seq?: unknown } } | undefined)?.error;
          const code = typeof error?.code === 'string' ? error.code : `http_${status}`;
          const message = typeof error?.message === 'string' ? error.message : text.slice(0, 200) || 'no details';
          const expected = typeof error?.expected_seq === 'number' ? error.expected_seq : undefined;
          reject(new GatewayRequestError(`task gateway answered ${method} ${path} with ${status} ${code}: ${message}`, status, code, expected));
        });
      });
      const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(this.networkError(method, path, err));
      });
      req.end(payload?.bytes);
    });
  }

  private networkError(method: string, path: string, err: Error): GatewayRequestError {
    const code = (err as NodeJS.ErrnoException).code;
    const hint =
      code === 'ENOENT' || code === 'ECONNREFUSED'
        ? ` — nothing serves ${this.address.display}; the worker may have stopped`
        : '';
    return new GatewayRequestError(`could not reach the task gateway at ${this.address.display} (${method} ${path}): ${err.message}${hint}`, 0, 'network', undefined, err);
  }
}
