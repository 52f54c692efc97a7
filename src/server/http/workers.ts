/**
 * `GET /api/v1/workers`: the caller's team's workers as stored, with `connected` telling whether
 * each holds a live connection (the WorkerDirectory decides; this route only renders).
 */
import { z } from 'zod';
import type { ServerContext } from '../context.js';
import { defineRoute, type AnyRoute } from './route.js';
import { WorkerView, workerView } from './views.js';

export const WorkerList = z.object({ workers: z.array(WorkerView) });

export function workerRoutes(ctx: ServerContext): AnyRoute[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/api/v1/workers',
      operationId: 'listWorkers',
      summary: "List the team's workers",
      tag: 'workers',
      auth: 'user',
      responses: { 200: { description: 'Every worker the team has seen.', content: { 'application/json': WorkerList } } },
      handler: async ({ principal }) => {
        const workers = await ctx.workers.list(principal.teamId);
        return { workers: workers.map(workerView) };
      },
    }),
  ];
}
