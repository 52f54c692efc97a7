/**
 * `GET /api/v1/usage`: what the control plane's LLM gateway metered for the caller's team —
 * totals, by task and by model. Team-scoped: a key sees its own team's usage only.
 *
 * Scope: requests that went through this gateway. Model calls a worker sends straight to the
 * team's own provider (BYOLLM) never reach the control plane; the worker reports their totals on
 * each task (`usage` of the task).
 */
import { z } from 'zod';
import { TaskId } from '../../protocol/task.js';
import type { ServerContext } from '../context.js';
import { defineRoute, type AnyRoute } from '../http/route.js';

const Totals = {
  input_tokens: z.number().int().min(0),
  output_tokens: z.number().int().min(0),
  requests: z.number().int().min(0).describe('model requests answered (errors included)'),
  errors: z.number().int().min(0).describe('requests answered with an HTTP error status'),
};

export const UsageReport = z.object({
  total: z.object(Totals),
  by_task: z.array(z.object({ task_id: z.string(), ...Totals })),
  by_model: z.array(z.object({ model: z.string(), ...Totals })),
});

const UsageQuery = z.strictObject({ task_id: TaskId.optional() });

export function usageRoutes(ctx: ServerContext): AnyRoute[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/api/v1/usage',
      operationId: 'getUsage',
      summary: "The team's model usage through the control plane's LLM gateway",
      description: 'Token and request counts the LLM gateway metered, in total, by task and by model. Requests a worker sent straight to the team\'s own provider (BYOLLM) are not here: see each task\'s `usage`.',
      tag: 'usage',
      auth: 'user',
      query: UsageQuery,
      responses: { 200: { description: 'Usage totals.', content: { 'application/json': UsageReport } } },
      handler: async ({ principal, query }) => {
        await ctx.llmUsage?.flush();
        return ctx.store.llmUsageReport(principal.teamId, query.task_id === undefined ? {} : { taskId: query.task_id });
      },
    }),
  ];
}
