/**
 * The model proxy: a loopback HTTP server inside the task environment that gives a third-party
 * CLI agent (claude, codex, a command template) the plain `http://127.0.0.1:<port>` base URL it
 * expects, and forwards its model calls to the task gateway (a Unix socket that wants the task
 * token).
 *
 * Why this is safe:
 * - It forwards only the three model routes (`/v1/chat/completions`, `/v1/responses`,
 *   `/v1/messages`). Spec, events, control, result and git credentials are never reachable
 *   through it: any other path is a 404 answered here. So a process in the task environment
 *   that finds the port can do what the agent may do anyway — ask the model — and nothing else.
 * - The task token is added here, per request, from the agent's memory. It is never put in the
 *   child's environment, argv or files; the credential headers the CLI sends (its dummy API
 *   key) are dropped, never forwarded.
 * - It listens on 127.0.0.1 only, on a random port.
 *
 * Invariants: request and response bodies stream through unbuffered (SSE reaches the CLI as the
 * provider sends it); a client that hangs up aborts the upstream request; the few harmless
 * extras CLIs call (Anthropic's `count_tokens`, `GET /v1/models`, a `HEAD /` connectivity
 * check) are answered locally, never forwarded.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { GATEWAY_PATHS } from '../../protocol/gateway.js';
import type { GatewayAccess } from './harness.js';

/** Request headers worth passing on: the body's type and the API version/beta flags. Never credentials. */
const FORWARDED_REQUEST_HEADERS = ['content-type', 'content-length', 'accept', 'anthropic-version', 'anthropic-beta', 'openai-beta'];
/** Hop-by-hop response headers that belong to one connection, not to the answer. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade', 'te', 'trailer']);
/** Rule of thumb for English text and JSON: about four characters per token (for the local count_tokens answer). */
const CHARS_PER_TOKEN = 4;
/** count_tokens bodies are whole conversations; beyond this we stop reading and refuse. */
const MAX_COUNT_TOKENS_BODY_BYTES = 32 * 1024 * 1024;

/** The paths a client may use, with or without the `/v1` prefix (base URLs are written both ways). */
const MODEL_PATHS = [GATEWAY_PATHS.chatCompletions, GATEWAY_PATHS.responses, GATEWAY_PATHS.messages];
const MODEL_ROUTES = new Map<string, string>();
for (const gatewayPath of MODEL_PATHS) {
  MODEL_ROUTES.set(gatewayPath, gatewayPath);
  MODEL_ROUTES.set(gatewayPath.replace(/^\/v1/, ''), gatewayPath);
}

export interface ModelProxyOptions {
  /** The model named in `GET /v1/models` answers (the task's model, when it has one). */
  model?: string | null;
}

export interface ModelProxy {
  /** `http://127.0.0.1:<port>`: the Anthropic base URL; the OpenAI base URL is `${url}/v1`. */
  readonly url: string;
  /** Model requests forwarded to the gateway so far. */
  readonly forwarded: number;
  close(): Promise<void>;
}

/** Start a proxy for `gateway`'s model routes on a random loopback port. */
export async function startModelProxy(gateway: GatewayAccess, options: ModelProxyOptions = {}): Promise<ModelProxy> {
  let forwarded = 0;
  const upstreams = new Set<http.ClientRequest>();

  const server = http.createServer((req, res) => {
    const pathname = (req.url ?? '/').split('?')[0]!;
    const method = req.method ?? 'GET';
    const route = MODEL_ROUTES.get(pathname);
    if (route && method === 'POST') {
      forwarded++;
      forward(req, res, route);
      return;
    }
    if ((pathname === '/v1/messages/count_tokens' || pathname === '/messages/count_tokens') && method === 'POST') {
      countTokens(req, res);
      return;
    }
    if ((pathname === '/v1/models' || pathname === '/models') && method === 'GET') {
      sendJson(res, 200, modelList(req, options.model ?? null));
      return;
    }
    if (pathname === '/' && (method === 'HEAD' || method === 'GET')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(method === 'HEAD' ? undefined : 'airlock model proxy\n');
      return;
    }
    req.resume();
    sendJson(res, 404, {
      error: {
        type: 'not_found_error',
        code: 'not_found',
        message: `the Airlock model proxy has no route ${method} ${pathname} — it forwards only POST ${MODEL_PATHS.join(', ')}`,
      },
    });
  });

  const forward = (req: http.IncomingMessage, res: http.ServerResponse, route: string) => {
    const headers: http.OutgoingHttpHeaders = { authorization: `Bearer ${gateway.token}` };
    for (const name of FORWARDED_REQUEST_HEADERS) {
      const value = req.headers[name];
      if (value !== undefined) headers[name] = value;
    }
    if (headers['content-length'] === undefined) headers['transfer-encoding'] = 'chunked';
    const where = gateway.address.kind === 'unix' ? { socketPath: gateway.address.socketPath } : { host: gateway.address.host, port: gateway.address.port };
    const upstream = http.request({ ...where, method: 'POST', path: route, headers }, (answer) => {
      const out: http.OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(answer.headers)) {
        if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
      }
      res.writeHead(answer.statusCode ?? 502, out);
      // Flush each chunk as it comes: a stream must not wait for a buffer to fill.
      res.flushHeaders();
      answer.on('data', (chunk: Buffer) => res.write(chunk));
      answer.on('end', () => res.end());
      answer.on('error', () => res.destroy());
    });
    upstreams.add(upstream);
    upstream.on('close', () => upstreams.delete(upstream));
    upstream.on('error', (err) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      sendJson(res, 502, {
        error: { type: 'api_error', code: 'bad_gateway', message: `the Airlock model proxy could not reach the task gateway (${gateway.address.display}): ${err.message}` },
      });
    });
    // The CLI hung up (cancelled, timed out): stop the upstream call so the provider stops too.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    get forwarded() {
      return forwarded;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const upstream of upstreams) upstream.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Anthropic's token counter, estimated locally: the CLI uses it for context bookkeeping, not billing. */
function countTokens(req: http.IncomingMessage, res: http.ServerResponse): void {
  let bytes = 0;
  let refused = false;
  req.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    if (bytes > MAX_COUNT_TOKENS_BODY_BYTES && !refused) {
      refused = true;
      sendJson(res, 413, { type: 'error', error: { type: 'request_too_large', message: 'count_tokens body over 32 MiB' } });
      req.resume();
    }
  });
  req.on('end', () => {
    if (!refused) sendJson(res, 200, { input_tokens: Math.max(1, Math.ceil(bytes / CHARS_PER_TOKEN)) });
  });
}

/** `GET /v1/models` in the caller's dialect (Anthropic clients send `anthropic-version`). */
function modelList(req: http.IncomingMessage, model: string | null): unknown {
  const ids = model ? [model] : [];
  if (req.headers['anthropic-version'] !== undefined) {
    return {
      data: ids.map((id) => ({ type: 'model', id, display_name: id, created_at: '1970-01-01T00:00:00Z' })),
      has_more: false,
      first_id: ids[0] ?? null,
      last_id: ids.at(-1) ?? null,
    };
  }
  return { object: 'list', data: ids.map((id) => ({ id, object: 'model', created: 0, owned_by: 'airlock' })) };
}
