/**
 * The OpenAPI 3.1 document, generated from the route table (route.ts) with zod 4's JSON Schema
 * output — the schemas that validate requests are the ones published, so they cannot disagree.
 * Well-known shapes become `components.schemas` entries; the rest are inlined.
 *
 * Invariant: every route registered through the table appears here, with its error responses.
 */
import { z } from 'zod';
import { Artifacts, EventView, ExecutionView, MessageCreate, TaskCreate, TaskView } from '../../protocol/task.js';
import { ErrorBody } from './errors.js';
import type { AnyRoute, ResponseSpec } from './route.js';
import { WorkerView } from './views.js';

/** Schemas shown by name in the document (clients generate types with these names). */
const NAMED_SCHEMAS: ReadonlyArray<[z.ZodType, string]> = [
  [TaskCreate, 'TaskCreate'],
  [MessageCreate, 'MessageCreate'],
  [TaskView, 'TaskView'],
  [ExecutionView, 'ExecutionView'],
  [Artifacts, 'Artifacts'],
  [EventView, 'EventView'],
  [WorkerView, 'WorkerView'],
  [ErrorBody, 'Error'],
];

type JsonSchema = Record<string, unknown>;

function clean(schema: JsonSchema): JsonSchema {
  // Components live inside the OpenAPI document: they need no dialect or id of their own.
  const { $schema: _dialect, $id: _id, ...rest } = schema;
  return rest;
}

function inline(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  return clean(z.toJSONSchema(schema, { io, unrepresentable: 'any' }));
}

function openApiPath(url: string): string {
  return url.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, '{$1}');
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'The request is invalid; the message names the field and the fix.',
  401: 'Missing, malformed, unknown or revoked API key.',
  403: 'The key\'s role may not use this endpoint (worker keys only connect workers).',
  404: 'No such resource in your team.',
  413: 'The body, or the prompt in it, is over its size limit (named in the message).',
  415: 'The body is not sent as application/json.',
  500: 'Unexpected server error; the message carries a request id to quote.',
};

function errorStatuses(route: AnyRoute): number[] {
  const statuses = new Set<number>([500]);
  if (route.auth === 'user') [401, 403].forEach((s) => statuses.add(s));
  if (route.body) [400, 413, 415].forEach((s) => statuses.add(s));
  if (route.query) statuses.add(400);
  if (route.params) statuses.add(404);
  return [...statuses].sort((a, b) => a - b);
}

/** Parameters from an object schema: each property one parameter, `required` from the schema. */
function parameters(schema: z.ZodType | undefined, where: 'path' | 'query'): JsonSchema[] {
  if (!schema) return [];
  const json = inline(schema, 'input');
  const properties = (json.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((json.required ?? []) as string[]);
  return Object.entries(properties).map(([name, property]) => {
    const { description, ...rest } = property;
    return {
      name,
      in: where,
      required: where === 'path' || required.has(name),
      ...(typeof description === 'string' ? { description } : {}),
      schema: rest,
    };
  });
}

export interface OpenApiInfo {
  title: string;
  version: string;
  description: string;
}

export function buildOpenApiDocument(routes: readonly AnyRoute[], info: OpenApiInfo): Record<string, unknown> {
  const requestRegistry = z.registry<{ id: string }>();
  const responseRegistry = z.registry<{ id: string }>();
  const names = new Map<z.ZodType, string>(NAMED_SCHEMAS);
  for (const [schema, name] of NAMED_SCHEMAS) {
    // Request shapes are described as clients send them (defaults optional), responses as sent.
    if (schema === TaskCreate || schema === MessageCreate) requestRegistry.add(schema, { id: name });
    else responseRegistry.add(schema, { id: name });
  }

  const ref = (schema: z.ZodType, fallbackName: string, registry: typeof requestRegistry): JsonSchema => {
    let name = names.get(schema);
    if (!name) {
      name = fallbackName;
      names.set(schema, name);
      registry.add(schema, { id: name });
    }
    return { $ref: `#/components/schemas/${name}` };
  };

  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const responses: Record<string, unknown> = {};
    for (const [status, spec] of Object.entries<ResponseSpec>(route.responses)) {
      const content: Record<string, unknown> = {};
      for (const [mediaType, schema] of Object.entries(spec.content ?? {})) {
        const suffix = mediaType === 'application/json' ? 'Response' : `${capitalize(mediaType.split('/')[1] ?? 'body').replace(/[^A-Za-z0-9]/g, '')}Response`;
        // A body JSON Schema cannot describe (a stream, Prometheus text) is documented as text.
        content[mediaType] = { schema: schema ? ref(schema, `${capitalize(route.operationId)}${suffix}`, responseRegistry) : { type: 'string' } };
      }
      const headers = Object.fromEntries(Object.entries(spec.headers ?? {}).map(([name, description]) => [name, { description, schema: { type: 'string' } }]));
      responses[status] = {
        description: spec.description,
        ...(Object.keys(headers).length ? { headers } : {}),
        ...(Object.keys(content).length ? { content } : {}),
      };
    }
    for (const status of errorStatuses(route)) {
      responses[String(status)] ??= {
        description: ERROR_DESCRIPTIONS[status] ?? 'Error.',
        content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
      };
    }
    if (route.auth === 'user') {
      responses['503'] ??= { description: 'The server is temporarily unable to answer; retry after the Retry-After header.' };
    }
    const operation: Record<string, unknown> = {
      operationId: route.operationId,
      summary: route.summary,
      ...(route.description ? { description: route.description } : {}),
      tags: [route.tag],
      security: route.auth === 'user' ? [{ apiKey: [] }] : [],
      parameters: [
        ...parameters(route.params, 'path'),
        ...parameters(route.query, 'query'),
        ...Object.entries(route.headers ?? {}).map(([name, description]) => ({ name, in: 'header', required: false, description, schema: { type: 'string' } })),
      ],
      ...(route.body
        ? { requestBody: { required: true, content: { 'application/json': { schema: ref(route.body, `${capitalize(route.operationId)}Request`, requestRegistry) } } } }
        : {}),
      responses,
    };
    const path = openApiPath(route.url);
    paths[path] ??= {};
    paths[path][route.method.toLowerCase()] = operation;
  }

  const uri = (id: string) => `#/components/schemas/${id}`;
  const schemas: Record<string, JsonSchema> = {};
  const collect = (registry: typeof requestRegistry, io: 'input' | 'output') => {
    const out = z.toJSONSchema(registry, { io, uri, unrepresentable: 'any' }) as { schemas: Record<string, JsonSchema> };
    for (const [name, schema] of Object.entries(out.schemas)) schemas[name] = clean(schema);
  };
  collect(requestRegistry, 'input');
  collect(responseRegistry, 'output');

  return {
    openapi: '3.1.0',
    info,
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    servers: [{ url: '/' }],
    paths,
    components: {
      schemas,
      securitySchemes: {
        apiKey: { type: 'http', scheme: 'bearer', description: 'A team API key (`alk_…`), created with `airlock admin create-api-key`.' },
      },
    },
  };
}
