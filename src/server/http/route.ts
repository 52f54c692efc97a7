/**
 * How a route is declared: once, with its zod schemas (params, query, body, responses). The same
 * declaration registers the fastify route (validation through parseOrThrow, authentication) and
 * produces its OpenAPI operation (openapi.ts), so the document cannot drift from the code.
 *
 * Invariant: a handler only ever sees parsed input and, for `auth: 'user'` routes, the principal
 * of a valid, unrevoked admin or member key; authentication runs before the body is read.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { AirlockError } from '../../protocol/errors.js';
import { parseOrThrow } from '../../protocol/zod-errors.js';
import type { Principal, ServerContext } from '../context.js';

export type AuthMode = 'none' | 'user';

export interface ResponseSpec {
  description: string;
  /** Media type → schema of the body (null: a body the schema language does not describe). */
  content?: Record<string, z.ZodType | null>;
  /** Response headers worth documenting (name → description). */
  headers?: Record<string, string>;
}

export interface RouteInput<A extends AuthMode, P, Q, B> {
  principal: A extends 'user' ? Principal : undefined;
  params: P;
  query: Q;
  body: B;
  request: FastifyRequest;
  reply: FastifyReply;
}

type Out<S> = S extends z.ZodType ? z.output<S> : undefined;

export interface RouteSpec<A extends AuthMode = AuthMode, P = unknown, Q = unknown, B = unknown> {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** Fastify syntax (`/api/v1/tasks/:id`); openapi.ts turns `:id` into `{id}`. */
  url: string;
  operationId: string;
  summary: string;
  description?: string;
  tag: string;
  auth: A;
  params?: P;
  query?: Q;
  body?: B;
  /** A long-lived stream: no automatic HEAD twin (a HEAD request would open a follower). */
  stream?: boolean;
  /** Request headers the route reads (name → description), for the document only. */
  headers?: Record<string, string>;
  /**
   * Runs on the raw body before schema validation, for failures that deserve a more precise
   * answer than `validation` (an oversized prompt is 413, naming the limit).
   */
  checkBody?: (raw: unknown) => void;
  /** Successful responses by status; error responses are added from `auth`, `body` and `params`. */
  responses: Record<number, ResponseSpec>;
  /** Returns the body to send (fastify serializes it), or undefined after taking over the reply. */
  handler(input: RouteInput<A, Out<P>, Out<Q>, Out<B>>): Promise<unknown>;
}

/** Infers the handler's input types from the schemas; the table stores routes type-erased. */
export function defineRoute<A extends AuthMode, P extends z.ZodType | undefined = undefined, Q extends z.ZodType | undefined = undefined, B extends z.ZodType | undefined = undefined>(
  spec: RouteSpec<A, P, Q, B>,
): AnyRoute {
  return spec;
}

export type AnyRoute = RouteSpec<AuthMode, z.ZodType | undefined, z.ZodType | undefined, z.ZodType | undefined>;

// ── authentication ──

const principals = new WeakMap<FastifyRequest, Principal>();

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/**
 * Resolve an `Authorization: Bearer <key>` header to a principal of any role, or throw 401 with
 * words that say how to fix it. Exported for the worker connection route, which wants workers.
 */
export async function principalFromAuthorization(ctx: ServerContext, header: string | undefined): Promise<Principal> {
  if (header === undefined || header === '') {
    throw new AirlockError('unauthenticated', 'missing API key — send "Authorization: Bearer <key>" (create a key with `airlock admin create-api-key`)');
  }
  const match = BEARER.exec(header);
  if (!match) {
    throw new AirlockError('unauthenticated', 'the Authorization header must be "Bearer <key>" — check how the API key is passed');
  }
  const principal = await ctx.authenticate(match[1]!);
  if (!principal) {
    throw new AirlockError('unauthenticated', 'the API key is not valid (unknown, revoked or mistyped) — check AIRLOCK_API_KEY, or ask an admin for a new key');
  }
  return principal;
}

/** Users' endpoints take admin and member keys; a worker key may only connect a worker. */
async function authenticateUser(ctx: ServerContext, request: FastifyRequest): Promise<void> {
  const principal = await principalFromAuthorization(ctx, request.headers.authorization);
  if (principal.role === 'worker') {
    throw new AirlockError('forbidden', 'a worker key can only connect workers — use an admin or member key for the API and the CLI');
  }
  principals.set(request, principal);
}

// ── registration ──

export function registerRoutes(app: FastifyInstance, ctx: ServerContext, routes: readonly AnyRoute[]): void {
  for (const route of routes) {
    app.route({
      method: route.method,
      url: route.url,
      exposeHeadRoute: route.method === 'GET' && !route.stream,
      ...(route.auth === 'user' ? { onRequest: (request: FastifyRequest) => authenticateUser(ctx, request) } : {}),
      handler: async (request, reply) => {
        const params = route.params ? parseOrThrow(route.params, request.params, 'path parameters') : undefined;
        const query = route.query ? parseOrThrow(route.query, request.query ?? {}, 'query parameters') : undefined;
        route.checkBody?.(request.body);
        const body = route.body ? parseOrThrow(route.body, request.body, 'request body') : undefined;
        const principal = route.auth === 'user' ? principals.get(request) : undefined;
        if (route.auth === 'user' && !principal) throw new AirlockError('internal', 'route ran without its authentication hook');
        return route.handler({ principal, params, query, body, request, reply });
      },
    });
  }
}
