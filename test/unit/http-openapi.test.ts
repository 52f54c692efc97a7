/**
 * The OpenAPI 3.1 document served at /api/v1/openapi.json: valid JSON, lists every route the app
 * registered (the worker socket excepted, added later by the server assembly), every schema in
 * it compiles as JSON Schema 2020-12, and real responses of the running API validate against the
 * published response schemas.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registeredRoutes } from '../../src/server/http/app.js';
import { sampleArtifacts } from '../support/artifacts.js';
import { http } from '../support/http-client.js';
import { createTeam, startTestApi, type TestApi, type TestTeam } from '../support/http-context.js';

let api: TestApi;
let team: TestTeam;
let doc: any;  

beforeAll(async () => {
  api = await startTestApi();
  team = await createTeam(api, 'openapi');
  const res = await http(api.url, '/api/v1/openapi.json');
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  doc = JSON.parse(res.text);
});

afterAll(async () => {
  await api?.close();
});

/** Ajv with the document's components, so `openapi#/components/schemas/X` resolves like the document's own refs. */
function ajv(): Ajv2020 {
  const instance = new Ajv2020({ strict: false, allErrors: true });
  instance.addSchema({ $id: 'openapi', components: doc.components });
  return instance;
}

describe('the OpenAPI document', () => {
  it('is OpenAPI 3.1 with info, bearer security and components', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info).toMatchObject({ title: 'Airlock API', version: expect.any(String) });
    expect(doc.components.securitySchemes.apiKey).toMatchObject({ type: 'http', scheme: 'bearer' });
    for (const name of ['TaskCreate', 'TaskView', 'ExecutionView', 'EventView', 'WorkerView', 'MessageCreate', 'Error']) {
      expect(doc.components.schemas[name], name).toBeDefined();
    }
  });

  it('lists every registered route, and only those', () => {
    const registered = registeredRoutes(api.app)
      .map((r) => `${r.method} ${r.url.replace(/:([A-Za-z_]+)/g, '{$1}')}`)
      .sort();
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>)
      .flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`))
      .sort();
    expect(documented).toEqual(registered);
    expect(documented).toEqual(
      [
        'DELETE /api/v1/environments/{id}',
        'GET /api/v1/environments',
        'GET /api/v1/environments/{id}',
        'PATCH /api/v1/environments/{id}',
        'POST /api/v1/environments',
        'GET /api/v1/openapi.json',
        'GET /api/v1/tasks',
        'GET /api/v1/tasks/{id}',
        'GET /api/v1/tasks/{id}/diff',
        'GET /api/v1/tasks/{id}/events',
        'GET /api/v1/usage',
        'GET /api/v1/workers',
        'GET /healthz',
        'GET /metrics',
        'GET /readyz',
        'POST /api/v1/tasks',
        'POST /api/v1/tasks/{id}/cancel',
        'POST /api/v1/tasks/{id}/messages',
      ].sort(),
    );
  });

  it('documents parameters, bodies, security and error responses per operation', () => {
    const list = doc.paths['/api/v1/tasks'].get;
    expect(list.parameters.map((p: { name: string }) => p.name)).toEqual(['state', 'worker_id', 'limit', 'cursor']);
    expect(list.parameters.find((p: { name: string }) => p.name === 'limit')).toMatchObject({ in: 'query', required: false, schema: { type: 'integer', maximum: 200, default: 50 } });
    expect(list.security).toEqual([{ apiKey: [] }]);
    expect(Object.keys(list.responses)).toEqual(expect.arrayContaining(['200', '400', '401', '403', '500']));
    const create = doc.paths['/api/v1/tasks'].post;
    expect(create.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/TaskCreate' });
    expect(Object.keys(create.responses)).toEqual(expect.arrayContaining(['201', '400', '413', '415']));
    expect(doc.paths['/api/v1/tasks/{id}'].get.parameters[0]).toMatchObject({ name: 'id', in: 'path', required: true });
    expect(Object.keys(doc.paths['/api/v1/tasks/{id}/events'].get.responses['200'].content)).toEqual(['text/event-stream', 'application/json']);
    expect(doc.paths['/healthz'].get.security).toEqual([]);
    const diff = doc.paths['/api/v1/tasks/{id}/diff'].get;
    expect(Object.keys(diff.responses['200'].content)).toEqual(['text/x-diff']);
    expect(diff.responses['200'].headers['x-airlock-diff-truncated']).toMatchObject({ schema: { type: 'string' } });
    expect(Object.keys(diff.responses)).toEqual(expect.arrayContaining(['200', '401', '404']));
    for (const field of ['environment_id', 'repositories', 'budget', 'model', 'push', 'pull_request', 'image', 'setup_commands', 'resources']) {
      expect(doc.components.schemas.TaskCreate.properties[field], field).toBeDefined();
    }
    // The request schema shows the harness default as optional; the view requires every field.
    expect(doc.components.schemas.TaskCreate.required).toEqual(['prompt']);
    expect(doc.components.schemas.TaskView.required).toContain('executions');
  });

  it('has schemas that compile as JSON Schema 2020-12', () => {
    const instance = ajv();
    for (const [name, schema] of Object.entries(doc.components.schemas as Record<string, object>)) {
      expect(instance.validateSchema(schema), `${name}: ${JSON.stringify(instance.errors)}`).toBe(true);
      expect(instance.getSchema(`openapi#/components/schemas/${name}`), name).toBeDefined();
    }
  });

  it('describes what the API actually answers', async () => {
    const instance = ajv();
    const validate = (ref: string, value: unknown) => {
      const fn = instance.getSchema(`openapi${ref}`)!;
      expect(fn(value), `${ref}: ${JSON.stringify(fn.errors)}`).toBe(true);
    };
    const responseRef = (path: string, method: string, status: string) => doc.paths[path][method].responses[status].content['application/json'].schema.$ref as string;

    const created = await http(api.url, '/api/v1/tasks', { key: team.keys.member, body: { prompt: 'echo', title: 't' } });
    validate(responseRef('/api/v1/tasks', 'post', '201'), created.json);
    validate(responseRef('/api/v1/tasks', 'get', '200'), (await http(api.url, '/api/v1/tasks', { key: team.keys.member })).json);
    validate(responseRef('/api/v1/tasks/{id}', 'get', '200'), (await http(api.url, `/api/v1/tasks/${created.json.id}`, { key: team.keys.member })).json);
    validate(responseRef('/api/v1/workers', 'get', '200'), (await http(api.url, '/api/v1/workers', { key: team.keys.member })).json);
    validate(
      responseRef('/api/v1/tasks/{id}/messages', 'post', '202'),
      (await http(api.url, `/api/v1/tasks/${created.json.id}/messages`, { key: team.keys.member, body: { text: 'hi' } })).json,
    );
    validate(responseRef('/api/v1/tasks/{id}/cancel', 'post', '200'), (await http(api.url, `/api/v1/tasks/${created.json.id}/cancel`, { method: 'POST', key: team.keys.member })).json);
    validate('#/components/schemas/Error', (await http(api.url, '/api/v1/tasks', { key: team.keys.member, body: { nope: 1 } })).json);
    // Requests the document allows are accepted; ones it forbids are refused.
    const body = instance.getSchema('openapi#/components/schemas/TaskCreate')!;
    expect(body({ prompt: 'x' })).toBe(true);
    expect(body({ prompt: 'x', extra: 1 })).toBe(false);
    const view = instance.getSchema('openapi#/components/schemas/TaskView')!;
    expect(view({ ...created.json, state: 'bogus' })).toBe(false);
    expect(view({ ...created.json, executions: [{ id: 1 }] })).toBe(false);
    expect(view({ ...created.json, artifacts: sampleArtifacts(), usage: { input_tokens: 1, output_tokens: 2, requests: 3 } })).toBe(true);
    expect(view({ ...created.json, artifacts: { ...sampleArtifacts(), stop_reason: 'bored' } })).toBe(false);
    expect(body({ prompt: 'x', environment_id: 'env_aaaaaaaaaaaaaaaaaaaa', budget: { max_turns: 3 }, push: true, pull_request: { draft: true } })).toBe(true);
    expect(body({ prompt: 'x', budget: { max_turns: 0 } })).toBe(false);
    // The task size: its JSON Schema says what the validator says, as far as JSON Schema can.
    expect(body({ prompt: 'x', resources: { cpus: 0.5, memory: '1.5g' } })).toBe(true);
    expect(body({ prompt: 'x', resources: { memory: 2_147_483_648 } })).toBe(true);
    for (const resources of [{ cpus: 0 }, { cpus: 257 }, { cpus: '2' }, { memory: '5x' }, { memory: 1024 }, { memory: 1.5 }, { gpus: 1 }]) {
      expect(body({ prompt: 'x', resources }), JSON.stringify(resources)).toBe(false);
    }
    const sized = await http(api.url, '/api/v1/tasks', { key: team.keys.member, body: { prompt: 'echo', resources: { cpus: 2, memory: '4g' } } });
    validate(responseRef('/api/v1/tasks', 'post', '201'), sized.json);
    expect(view({ ...sized.json, resources: { cpus: '2' } })).toBe(false);
  });
});
