/**
 * Environment routes: create, list, show, update (PATCH: only given fields change), delete.
 * Every lookup is scoped to the caller's team; another team's environment and a malformed id
 * are the same 404. Every change is audited with the fields it touched (names, never values —
 * environments hold none).
 */
import { z } from 'zod';
import { isoTime } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { NotFoundError } from '../../protocol/errors.js';
import { EnvironmentCreate, EnvironmentId, EnvironmentList, EnvironmentUpdate, EnvironmentView } from '../../protocol/environment.js';
import type { Principal, ServerContext } from '../context.js';
import { recipeResources, type EnvironmentPatch, type EnvironmentRecord } from '../store/store.js';
import { defineRoute, type AnyRoute } from './route.js';
import { actorOf } from './tasks.js';

export const EnvironmentParams = z.strictObject({ id: z.string().describe('environment id (env_…)') });

export function environmentView(env: EnvironmentRecord): EnvironmentView {
  return {
    id: env.id,
    name: env.name,
    image: env.image,
    repositories: env.repositories.map((r) => (r.ref === undefined ? { url: r.url } : { url: r.url, ref: r.ref })),
    setup_commands: env.setupCommands,
    setup_timeout_seconds: env.setupTimeoutSeconds,
    secret_names: env.secretNames,
    env_names: env.envNames,
    resources: recipeResources(env),
    created_at: isoTime(env.createdAt),
    updated_at: isoTime(env.updatedAt),
  };
}

function notFound(id: string): NotFoundError {
  return new NotFoundError(`environment ${JSON.stringify(id.slice(0, 64))}`);
}

async function loadEnvironment(ctx: ServerContext, principal: Principal, id: string): Promise<EnvironmentRecord> {
  const env = EnvironmentId.safeParse(id).success ? await ctx.store.getEnvironment(principal.teamId, id) : undefined;
  if (!env) throw notFound(id);
  return env;
}

function patchOf(body: EnvironmentUpdate): EnvironmentPatch {
  const patch: EnvironmentPatch = {};
  if (body.name !== undefined) patch.name = body.name;
  if (body.image !== undefined) patch.image = body.image;
  if (body.repositories !== undefined) patch.repositories = body.repositories;
  if (body.setup_commands !== undefined) patch.setupCommands = body.setup_commands;
  if (body.setup_timeout_seconds !== undefined) patch.setupTimeoutSeconds = body.setup_timeout_seconds;
  if (body.secret_names !== undefined) patch.secretNames = body.secret_names;
  if (body.env_names !== undefined) patch.envNames = body.env_names;
  // The size merges like a JSON merge patch: null clears it all, a field given replaces that
  // field (null clears it), a field left out stays — each one its own column, so no re-read.
  if (body.resources === null) {
    patch.cpus = null;
    patch.memory = null;
  } else if (body.resources !== undefined) {
    if (body.resources.cpus !== undefined) patch.cpus = body.resources.cpus;
    if (body.resources.memory !== undefined) patch.memory = body.resources.memory;
  }
  return patch;
}

export function environmentRoutes(ctx: ServerContext): AnyRoute[] {
  return [
    defineRoute({
      method: 'POST',
      url: '/api/v1/environments',
      operationId: 'createEnvironment',
      summary: 'Create an environment',
      description: 'A named recipe for tasks: image, repositories, setup commands, the names (never values) of variables the worker supplies, and the task size (CPUs, memory). 409 if the team already has an environment with that name.',
      tag: 'environments',
      auth: 'user',
      body: EnvironmentCreate,
      responses: { 201: { description: 'The environment.', content: { 'application/json': EnvironmentView } } },
      handler: async ({ principal, body, reply }) => {
        const env = await ctx.store.createEnvironment({
          id: newId('env'),
          teamId: principal.teamId,
          name: body.name,
          image: body.image ?? null,
          repositories: body.repositories,
          setupCommands: body.setup_commands,
          setupTimeoutSeconds: body.setup_timeout_seconds ?? null,
          secretNames: body.secret_names,
          envNames: body.env_names,
          cpus: body.resources?.cpus ?? null,
          memory: body.resources?.memory ?? null,
          now: ctx.clock.now(),
        });
        await ctx.store.appendAudit({ teamId: principal.teamId, actor: actorOf(principal), action: 'environment.create', target: env.id, detail: { name: env.name }, at: env.createdAt });
        void reply.code(201).header('location', `/api/v1/environments/${env.id}`);
        return environmentView(env);
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/api/v1/environments',
      operationId: 'listEnvironments',
      summary: "List the team's environments, by name",
      tag: 'environments',
      auth: 'user',
      responses: { 200: { description: 'Every environment of the team.', content: { 'application/json': EnvironmentList } } },
      handler: async ({ principal }) => ({ environments: (await ctx.store.listEnvironments(principal.teamId)).map(environmentView) }),
    }),
    defineRoute({
      method: 'GET',
      url: '/api/v1/environments/:id',
      operationId: 'getEnvironment',
      summary: 'Show an environment',
      tag: 'environments',
      auth: 'user',
      params: EnvironmentParams,
      responses: { 200: { description: 'The environment.', content: { 'application/json': EnvironmentView } } },
      handler: async ({ principal, params }) => environmentView(await loadEnvironment(ctx, principal, params.id)),
    }),
    defineRoute({
      method: 'PATCH',
      url: '/api/v1/environments/:id',
      operationId: 'updateEnvironment',
      summary: 'Change some fields of an environment',
      description:
        'Only the fields given change; `null` clears `image`, `setup_timeout_seconds` or `resources`. `resources` merges per field: `{"cpus": 4}` keeps the memory, `{"memory": null}` clears only it. 409 if the new name is taken.',
      tag: 'environments',
      auth: 'user',
      params: EnvironmentParams,
      body: EnvironmentUpdate,
      responses: { 200: { description: 'The environment after the change.', content: { 'application/json': EnvironmentView } } },
      handler: async ({ principal, params, body }) => {
        if (!EnvironmentId.safeParse(params.id).success) throw notFound(params.id);
        const now = ctx.clock.now();
        const env = await ctx.store.updateEnvironment(principal.teamId, params.id, patchOf(body), now);
        if (!env) throw notFound(params.id);
        await ctx.store.appendAudit({ teamId: principal.teamId, actor: actorOf(principal), action: 'environment.update', target: env.id, detail: { name: env.name, fields: Object.keys(body) }, at: now });
        return environmentView(env);
      },
    }),
    defineRoute({
      method: 'DELETE',
      url: '/api/v1/environments/:id',
      operationId: 'deleteEnvironment',
      summary: 'Delete an environment',
      tag: 'environments',
      auth: 'user',
      params: EnvironmentParams,
      responses: { 204: { description: 'Deleted.' } },
      handler: async ({ principal, params, reply }) => {
        const env = await loadEnvironment(ctx, principal, params.id);
        if (!(await ctx.store.deleteEnvironment(principal.teamId, env.id))) throw notFound(params.id);
        await ctx.store.appendAudit({ teamId: principal.teamId, actor: actorOf(principal), action: 'environment.delete', target: env.id, detail: { name: env.name }, at: ctx.clock.now() });
        void reply.code(204);
        return undefined;
      },
    }),
  ];
}
