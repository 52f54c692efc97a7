/**
 * The control plane's HTTP API on fastify: the route table (tasks, events, workers, operations),
 * the OpenAPI document generated from that same table, JSON errors for everything, and bearer
 * authentication. Returns the app unopened: the server assembly adds the worker WebSocket route
 * to the same instance and calls `listen`.
 *
 * Invariant: whatever fails — our code, fastify's parsing, an unknown route, a malformed
 * connection — the client receives `{"error":{"code","message"}}` (errors.ts decides the status).
 */
import Fastify, { LogController, type FastifyInstance, type RouteOptions } from 'fastify';
import { randomBase32 } from '../../lib/ids.js';
import { AirlockError } from '../../protocol/errors.js';
import { MAX_REQUEST_BODY_BYTES } from '../../protocol/task.js';
import type { ServerContext } from '../context.js';
import { environmentRoutes } from './environments.js';
import { toHttpError } from './errors.js';
import { Followers, SSE_KEEPALIVE_MS, closeFollowersOnShutdown, eventRoutes } from './events.js';
import { buildOpenApiDocument } from './openapi.js';
import { opsRoutes } from './ops.js';
import { registerRoutes, type AnyRoute } from './route.js';
import { taskRoutes } from './tasks.js';
import { usageRoutes } from '../llm/usage-route.js';
import { workerRoutes } from './workers.js';

/** Polled by load balancers and Prometheus every few seconds: successes are logged at debug only. */
const QUIET_ROUTES: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics']);

/** The document's own version: the API is `/api/v1`, and additive changes bump the minor. */
export const API_VERSION = '1.0.0';

export interface HttpAppOptions {
  /** Interval of SSE keep-alive comments (tests shorten it). */
  sseKeepAliveMs?: number;
}

/** The table's routes, in declaration order (the OpenAPI document lists exactly these). */
export function apiRoutes(ctx: ServerContext, followers: Followers, options: Required<HttpAppOptions>): AnyRoute[] {
  const routes: AnyRoute[] = [];
  let document: Record<string, unknown> | undefined;
  const openApi = () =>
    (document ??= buildOpenApiDocument(routes, {
      title: 'Airlock API',
      version: API_VERSION,
      description: 'Control plane API of Airlock: tasks, their transcripts, and workers. Authenticate with `Authorization: Bearer <team API key>`.',
    }));
  routes.push(...taskRoutes(ctx), ...environmentRoutes(ctx), ...eventRoutes(ctx, followers, { keepAliveMs: options.sseKeepAliveMs }), ...workerRoutes(ctx), ...usageRoutes(ctx), ...opsRoutes(ctx, openApi));
  return routes;
}

const registered = new WeakMap<FastifyInstance, Array<{ method: string; url: string }>>();

/** Every route registered on the app so far (HEAD twins excluded): lets tests prove the document is complete. */
export function registeredRoutes(app: FastifyInstance): ReadonlyArray<{ method: string; url: string }> {
  return registered.get(app) ?? [];
}

export async function buildHttpApp(ctx: ServerContext, options: HttpAppOptions = {}): Promise<FastifyInstance> {
  const resolved: Required<HttpAppOptions> = { sseKeepAliveMs: options.sseKeepAliveMs ?? SSE_KEEPALIVE_MS };
  const log = ctx.log.child({ component: 'http' });
  // Fastify types the instance by its logger; the server assembly and the routes use the
  // default-typed instance (pino's Logger is a FastifyBaseLogger at runtime).
  const app = Fastify({
    loggerInstance: log,
    bodyLimit: MAX_REQUEST_BODY_BYTES,
    // One line per request from onResponse below, instead of fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    // 12 base32 characters (60 bits): unique enough to find one request in a day of logs.
    genReqId: () => `req_${randomBase32(12)}`,
    clientErrorHandler: (err, socket) => {
      // A request that is not even HTTP: answer in our shape if the socket still listens.
      if (!socket.writable) return socket.destroy(err);
      const body = JSON.stringify({ error: { code: 'validation', message: 'malformed HTTP request — check the client' } });
      socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    },
  }) as unknown as FastifyInstance;

  const routes: Array<{ method: string; url: string }> = [];
  registered.set(app, routes);
  app.addHook('onRoute', (route: RouteOptions) => {
    for (const method of [route.method].flat()) if (method !== 'HEAD') routes.push({ method, url: route.url });
  });

  // The API speaks JSON only: plain text gets a clear 415 rather than a confusing type error.
  app.removeContentTypeParser('text/plain');

  app.setErrorHandler((err, request, reply) => {
    const http = toHttpError(err, request.id);
    if (http.internal) request.log.error({ err, reqId: request.id }, 'http:request:failed');
    else request.log.debug({ code: http.body.error.code, status: http.status }, 'http:request:refused');
    void reply.code(http.status).headers(http.headers).send(http.body);
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? request.url;
    const http = toHttpError(
      new AirlockError('not_found', `no route ${request.method} ${path.slice(0, 200)} — the API's routes are listed at /api/v1/openapi.json`),
      request.id,
    );
    void reply.code(http.status).send(http.body);
  });
  app.addHook('onResponse', (request, reply, done) => {
    const quiet = reply.statusCode < 400 && QUIET_ROUTES.has(request.routeOptions.url ?? '');
    request.log[quiet ? 'debug' : 'info']({ method: request.method, url: request.routeOptions.url ?? 'unknown', status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'http:request');
    done();
  });

  const followers = new Followers();
  closeFollowersOnShutdown(app, followers);
  registerRoutes(app, ctx, apiRoutes(ctx, followers, resolved));
  return app;
}
