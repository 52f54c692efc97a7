/**
 * Task routes: create, list, show, diff, cancel, follow-up messages. Every lookup is scoped to
 * the caller's team; another team's task and a malformed id are the same 404, so the API never
 * reveals whether a task exists elsewhere.
 *
 * Creating a task resolves its recipe once (environment merged with inline fields) and stores it
 * on the task: later edits of the environment do not change queued or running tasks.
 */
import { z } from 'zod';
import { TERMINAL_TASK_STATES } from '../../protocol/lifecycle.js';
import { newId } from '../../lib/ids.js';
import { AirlockError, NotFoundError, ValidationError, isAirlockError } from '../../protocol/errors.js';
import { MAX_PROMPT_BYTES, MAX_REPORTED_DIFF_BYTES, MessageCreate, TaskCreate, TaskId, TaskState, TaskView, WorkerId } from '../../protocol/task.js';
import type { Principal, ServerContext } from '../context.js';
import { emptyRecipe, type EnvironmentRecord, type TaskRecipe, type TaskRecord } from '../store/store.js';
import { diffDocument, latestArtifacts } from '../dispatch/results.js';
import { defineRoute, type AnyRoute } from './route.js';
import { taskView } from './views.js';

/** A page is one query plus one executions query per task: 200 keeps a page well under 100 ms. */
export const MAX_TASKS_PAGE = 200;
/** What a terminal shows without scrolling, and what the dashboard's first screen needs. */
export const DEFAULT_TASKS_PAGE = 50;
/** Store cursors are short keyset positions; anything longer is not one of ours. */
const MAX_CURSOR_LENGTH = 512;

export const TaskParams = z.strictObject({ id: z.string().describe('task id (tsk_…)') });

export const ListTasksQuery = z.strictObject({
  state: TaskState.optional().describe('only tasks in this state'),
  worker_id: WorkerId.optional().describe('only tasks routed to this worker'),
  limit: z.coerce.number().int().min(1).max(MAX_TASKS_PAGE).default(DEFAULT_TASKS_PAGE).describe(`page size, at most ${MAX_TASKS_PAGE}`),
  cursor: z.string().min(1).max(MAX_CURSOR_LENGTH).optional().describe('next_cursor of the previous page'),
});

export const TaskList = z.object({
  tasks: z.array(TaskView),
  next_cursor: z.string().nullable().describe('pass as `cursor` for the next page; null on the last page'),
});

export const MessageAccepted = z.object({
  id: z.string(),
  delivered: z.boolean().describe('true if a running execution received it now; otherwise it is stored for the task'),
});

/** Who did it, as the audit log names API callers. */
export function actorOf(principal: Principal): string {
  return `key:${principal.keyId}`;
}

/** The caller's task, or 404 (malformed ids included: their shape says nothing either). */
export async function loadTask(ctx: ServerContext, principal: Principal, id: string): Promise<TaskRecord> {
  const task = TaskId.safeParse(id).success ? await ctx.store.getTask(principal.teamId, id) : undefined;
  if (!task) throw new NotFoundError(`task ${JSON.stringify(id.slice(0, 64))}`);
  return task;
}

export async function renderTask(ctx: ServerContext, task: TaskRecord, options: { diffs?: boolean } = {}): Promise<TaskView> {
  return taskView(task, await ctx.store.listExecutions(task.id), options);
}

/** The environment a new task names, or 404 naming the field (malformed ids fail validation first). */
async function loadEnvironmentOf(ctx: ServerContext, principal: Principal, id: string): Promise<EnvironmentRecord> {
  const environment = await ctx.store.getEnvironment(principal.teamId, id);
  if (!environment) {
    throw new AirlockError('not_found', `environment_id: environment "${id}" was not found in your team — list environments with \`airlock env list\`, or leave environment_id out and give the recipe inline`, {
      details: { field: 'environment_id' },
    });
  }
  return environment;
}

/**
 * The recipe a task runs with: the environment's fields, each replaced by the inline field of
 * the same name when the request gives one (inline wins, field by field; lists are replaced,
 * not merged; the size merges per field, so `{"memory": "8g"}` keeps the environment's cpus).
 * Resolved once, here: later edits of the environment do not change the task.
 */
export function resolveRecipe(environment: EnvironmentRecord | undefined, body: TaskCreate): TaskRecipe {
  const base = environment ?? emptyRecipe();
  return {
    image: body.image ?? base.image,
    repositories: body.repositories ?? base.repositories,
    setupCommands: body.setup_commands ?? base.setupCommands,
    setupTimeoutSeconds: body.setup_timeout_seconds ?? base.setupTimeoutSeconds,
    secretNames: body.secret_names ?? base.secretNames,
    envNames: body.env_names ?? base.envNames,
    cpus: body.resources?.cpus ?? base.cpus,
    memory: body.resources?.memory ?? base.memory,
  };
}

/** An oversized prompt is 413 naming the limit, not a generic validation failure. */
function checkPromptSize(raw: unknown): void {
  if (typeof raw !== 'object' || raw === null) return;
  const prompt = (raw as { prompt?: unknown }).prompt;
  if (typeof prompt !== 'string') return;
  const bytes = Buffer.byteLength(prompt, 'utf8');
  if (bytes > MAX_PROMPT_BYTES) {
    throw new AirlockError(
      'payload_too_large',
      `prompt is ${bytes} bytes, over the limit of ${MAX_PROMPT_BYTES / 1024} KiB (${MAX_PROMPT_BYTES} bytes) — shorten it, or put large material in the repository and refer to it`,
      { details: { field: 'prompt' } },
    );
  }
}

export function taskRoutes(ctx: ServerContext): AnyRoute[] {
  return [
    defineRoute({
      method: 'POST',
      url: '/api/v1/tasks',
      operationId: 'createTask',
      summary: 'Create a task',
      description: `Queues a task for the team's workers. The prompt may be at most ${MAX_PROMPT_BYTES / 1024} KiB (413 beyond).`,
      tag: 'tasks',
      auth: 'user',
      body: TaskCreate,
      checkBody: checkPromptSize,
      responses: { 201: { description: 'The task, queued.', content: { 'application/json': TaskView } } },
      handler: async ({ principal, body, reply }) => {
        const environment = body.environment_id === undefined ? undefined : await loadEnvironmentOf(ctx, principal, body.environment_id);
        const task = await ctx.store.createTask({
          id: newId('tsk'),
          teamId: principal.teamId,
          title: body.title ?? null,
          prompt: body.prompt,
          harness: body.harness,
          workerId: body.worker_id ?? null,
          timeoutSeconds: body.timeout_seconds ?? null,
          now: ctx.clock.now(),
          environmentId: environment?.id ?? null,
          recipe: resolveRecipe(environment, body),
          budget: body.budget && Object.keys(body.budget).length > 0 ? body.budget : null,
          model: body.model ?? null,
          push: body.push,
          pullRequest: body.pull_request ?? null,
        });
        await ctx.store.appendAudit({
          teamId: principal.teamId,
          actor: actorOf(principal),
          action: 'task.create',
          target: task.id,
          detail: {
            harness: task.harness,
            worker_id: task.workerId,
            prompt_bytes: Buffer.byteLength(task.prompt, 'utf8'),
            ...(task.environmentId ? { environment_id: task.environmentId } : {}),
            ...(task.push ? { push: true, pull_request: task.pullRequest !== null } : {}),
          },
          at: task.createdAt,
        });
        ctx.dispatch.wake('task created', { teamId: principal.teamId, workerId: task.workerId });
        void reply.code(201).header('location', `/api/v1/tasks/${task.id}`);
        return taskView(task, []);
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/api/v1/tasks',
      operationId: 'listTasks',
      summary: 'List tasks, newest first',
      tag: 'tasks',
      auth: 'user',
      query: ListTasksQuery,
      responses: { 200: { description: 'One page of tasks.', content: { 'application/json': TaskList } } },
      handler: async ({ principal, query }) => {
        let page;
        try {
          page = await ctx.store.listTasks(principal.teamId, {
            limit: query.limit,
            ...(query.state ? { state: query.state } : {}),
            ...(query.worker_id ? { workerId: query.worker_id } : {}),
            ...(query.cursor ? { cursor: query.cursor } : {}),
          });
        } catch (err) {
          // The store refuses a cursor it did not issue; say which parameter to fix.
          if (query.cursor !== undefined && isAirlockError(err) && err.code === 'validation') {
            throw new ValidationError('invalid query parameters: cursor is not one this server issued — pass the next_cursor of the previous page unchanged, or omit cursor to start over', {
              field: 'cursor',
            });
          }
          throw err;
        }
        const tasks = await Promise.all(page.tasks.map((task) => renderTask(ctx, task, { diffs: false })));
        return { tasks, next_cursor: page.nextCursor };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/api/v1/tasks/:id',
      operationId: 'getTask',
      summary: 'Show a task and its executions',
      tag: 'tasks',
      auth: 'user',
      params: TaskParams,
      responses: { 200: { description: 'The task.', content: { 'application/json': TaskView } } },
      handler: async ({ principal, params }) => renderTask(ctx, await loadTask(ctx, principal, params.id)),
    }),
    defineRoute({
      method: 'GET',
      url: '/api/v1/tasks/:id/diff',
      operationId: 'getTaskDiff',
      summary: "Download the task's diff",
      description:
        'The unified diff the latest execution with results reported, as `text/x-diff` (pipe it to `git apply`). ' +
        'With several repositories, each diff is introduced by a `# repository: <url> (directory <path>)` line. ' +
        `Diffs are cut at ${MAX_REPORTED_DIFF_BYTES / 1024} KiB per repository: a cut diff has the header \`x-airlock-diff-truncated: true\` and ends with a \`# airlock: diff truncated …\` line. ` +
        '404 when the task has no diff (not finished yet, or nothing changed).',
      tag: 'tasks',
      auth: 'user',
      params: TaskParams,
      responses: {
        200: {
          description: 'The unified diff.',
          headers: { 'x-airlock-diff-truncated': '"true" when a diff was cut at the reporting limit (the text then ends with a `# airlock: diff truncated …` line), else "false"' },
          content: { 'text/x-diff': null },
        },
      },
      handler: async ({ principal, params, reply }) => {
        const task = await loadTask(ctx, principal, params.id);
        const diff = diffDocument(latestArtifacts(await ctx.store.listExecutions(task.id)));
        if (!diff) {
          const why = TERMINAL_TASK_STATES.has(task.state) ? 'its run changed no files (or reported no results)' : `it is still ${task.state} — the diff is reported when an execution finishes`;
          throw new AirlockError('not_found', `task ${task.id} has no diff: ${why}`);
        }
        void reply.header('content-type', 'text/x-diff; charset=utf-8').header('x-airlock-diff-truncated', String(diff.truncated));
        return diff.text;
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/tasks/:id/cancel',
      operationId: 'cancelTask',
      summary: 'Cancel a task',
      description: 'A queued task is cancelled at once; a running one is stopped by its worker (the task stays `running` with cancel_requested until it has). Cancelling a finished task changes nothing.',
      tag: 'tasks',
      auth: 'user',
      params: TaskParams,
      responses: { 200: { description: 'The task after the request.', content: { 'application/json': TaskView } } },
      handler: async ({ principal, params }) => {
        await loadTask(ctx, principal, params.id);
        const task = await ctx.dispatch.cancelTask(principal, params.id);
        if (!task) throw new NotFoundError(`task ${JSON.stringify(params.id)}`);
        return renderTask(ctx, task);
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/api/v1/tasks/:id/messages',
      operationId: 'sendMessage',
      summary: 'Send a follow-up message to a task',
      tag: 'tasks',
      auth: 'user',
      params: TaskParams,
      body: MessageCreate,
      responses: { 202: { description: 'Stored, and delivered if an execution is running.', content: { 'application/json': MessageAccepted } } },
      handler: async ({ principal, params, body, reply }) => {
        await loadTask(ctx, principal, params.id);
        const result = await ctx.dispatch.sendMessage(principal, params.id, body.text);
        if (!result) throw new NotFoundError(`task ${JSON.stringify(params.id)}`);
        void reply.code(202);
        return { id: result.id, delivered: result.delivered };
      },
    }),
  ];
}
