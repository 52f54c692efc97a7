/**
 * Operational endpoints, unauthenticated: liveness (`/healthz`: the process answers), readiness
 * (`/readyz`: the store answers too), Prometheus metrics (`/metrics`) and the OpenAPI document.
 * They expose no team data; the operator decides where the server listens.
 */
import { z } from 'zod';
import { RetryableError, describeError } from '../../protocol/errors.js';
import { TASK_STATES } from '../../protocol/lifecycle.js';
import type { ServerContext } from '../context.js';
import { defineRoute, type AnyRoute } from './route.js';

/** A load balancer polls every few seconds: suggest the next look after one interval. */
const NOT_READY_RETRY_MS = 5_000;

export const Status = z.object({ status: z.literal('ok') });

/** Gauges that are cheaper to recount at scrape time than to keep in step with every change. */
async function refreshTaskGauges(ctx: ServerContext): Promise<void> {
  const counts = await ctx.store.countTasksByState();
  for (const state of TASK_STATES) ctx.metrics.tasksByState.set({ state }, counts[state] ?? 0);
  ctx.metrics.queueDepth.set(counts.queued ?? 0);
}

export function opsRoutes(ctx: ServerContext, openApi: () => Record<string, unknown>): AnyRoute[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/healthz',
      operationId: 'health',
      summary: 'Liveness: the process is up',
      tag: 'operations',
      auth: 'none',
      responses: { 200: { description: 'Up.', content: { 'application/json': Status } } },
      handler: async () => ({ status: 'ok' }),
    }),
    defineRoute({
      method: 'GET',
      url: '/readyz',
      operationId: 'ready',
      summary: 'Readiness: the process is up and its store answers',
      tag: 'operations',
      auth: 'none',
      responses: {
        200: { description: 'Ready.', content: { 'application/json': Status } },
        503: { description: 'The store does not answer.' },
      },
      handler: async () => {
        try {
          await ctx.store.ping();
        } catch (err) {
          // The reason goes to the log only: this endpoint is unauthenticated.
          ctx.log.warn({ err: describeError(err) }, 'http:readyz:store-unreachable');
          throw new RetryableError(`the ${ctx.store.kind} store does not answer — see the server log`, NOT_READY_RETRY_MS, err);
        }
        return { status: 'ok' };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/metrics',
      operationId: 'metrics',
      summary: 'Prometheus metrics',
      tag: 'operations',
      auth: 'none',
      responses: { 200: { description: 'Prometheus text exposition format.', content: { 'text/plain': null } } },
      handler: async ({ reply }) => {
        await refreshTaskGauges(ctx);
        void reply.header('content-type', ctx.metrics.registry.contentType);
        return ctx.metrics.registry.metrics();
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/api/v1/openapi.json',
      operationId: 'openapi',
      summary: 'This document',
      tag: 'operations',
      auth: 'none',
      responses: { 200: { description: 'The OpenAPI 3.1 document of this API.', content: { 'application/json': z.record(z.string(), z.unknown()) } } },
      handler: async () => openApi(),
    }),
  ];
}
