// The cloud providers against wire-level fakes (test/support/provider-fakes.ts): Bedrock through
// the AWS SDK (SigV4, binary event stream), Vertex AI through google-auth-library (token from a
// fake token endpoint) and Azure OpenAI (deployment URL, api-key). Each is driven through the
// router by clients of every API, so pass-through and translation are both exercised.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createModelRouter, parseModelsConfig, type LlmApi } from '../../src/llm/index.js';
import { startAzureFake, startBedrockFake, startVertexFake, writeVertexCredentials, type FakeTurn, type ProviderFake } from '../support/provider-fakes.js';
import { llmRequest, readAll } from '../support/llm-client.js';
import { readBody, readStream } from '../support/llm-readers.js';

const fakes: ProviderFake[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(fakes.splice(0).map((f) => f.close()));
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const TURN: FakeTurn = { text: 'Reading it now.', toolCalls: [{ name: 'read_file', arguments: { path: 'src/ä.ts', range: [1, 9] } }], usage: { input: 50, output: 12 } };
const AWS_ENV = { AWS_ACCESS_KEY_ID: 'AKIDFAKEFORTESTS', AWS_SECRET_ACCESS_KEY: 'fake-secret', AWS_SESSION_TOKEN: 'fake-session' };

function request(api: LlmApi, model: string, stream: boolean): Record<string, unknown> {
  const tools = [{ name: 'read_file', description: 'Read', schema: { type: 'object', properties: { path: { type: 'string' } } } }];
  if (api === 'chat') return { model, messages: [{ role: 'system', content: 'sys' }, { role: 'user', content: 'go' }], tools: tools.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: t.schema } })), stream, ...(stream ? { stream_options: { include_usage: true } } : {}) };
  if (api === 'responses') return { model, instructions: 'sys', input: 'go', tools: tools.map((t) => ({ type: 'function', name: t.name, description: t.description, parameters: t.schema })), stream };
  return { model, system: 'sys', max_tokens: 300, messages: [{ role: 'user', content: 'go' }], tools: tools.map((t) => ({ name: t.name, description: t.description, input_schema: t.schema })), stream };
}

async function answer(router: ReturnType<typeof createModelRouter>, api: LlmApi, model: string, stream: boolean) {
  const response = await router.handle(llmRequest(api, request(api, model, stream)));
  const text = await readAll(response);
  return { status: response.status, answer: stream && response.status === 200 ? readStream(api, text) : readBody(api, text), usage: await response.usage };
}

const CASES: Array<[LlmApi, boolean]> = [
  ['messages', true],
  ['messages', false],
  ['chat', true],
  ['chat', false],
  ['responses', true],
  ['responses', false],
];

describe('bedrock', () => {
  async function setup(turns: FakeTurn[]) {
    const fake = await startBedrockFake(turns);
    fakes.push(fake);
    const config = parseModelsConfig({ default: 'aws', providers: { aws: { type: 'bedrock', region: 'eu-west-1', base_url: fake.url, timeout_seconds: 10 } } });
    return { fake, router: createModelRouter(config, { env: AWS_ENV }) };
  }

  it.each(CASES)('%s client (stream: %s): SigV4-signed InvokeModel with the Anthropic body, answer in the client format', async (api, stream) => {
    const { fake, router } = await setup([TURN]);
    const result = await answer(router, api, 'anthropic.claude-test-v1:0', stream);
    expect(result.status).toBe(200);
    expect(result.answer).toMatchObject({ text: TURN.text, error: null, usage: { input: 50, output: 12 } });
    expect(result.answer.toolCalls.map((c) => [c.name, c.arguments])).toEqual([['read_file', { path: 'src/ä.ts', range: [1, 9] }]]);
    expect(result.usage).toMatchObject({ input_tokens: 50, output_tokens: 12 });
    const seen = fake.requests[0]!;
    expect(seen.path).toBe(`/model/${encodeURIComponent('anthropic.claude-test-v1:0')}/${stream ? 'invoke-with-response-stream' : 'invoke'}`);
    expect(seen.auth).toBe('sigv4');
    expect(seen.sigv4Scope).toMatch(/^AKIDFAKEFORTESTS\/\d{8}\/eu-west-1\/bedrock\/aws4_request$/);
    expect(seen.headers['x-amz-date']).toMatch(/^\d{8}T\d{6}Z$/);
    expect(seen.body).toMatchObject({ anthropic_version: 'bedrock-2023-05-31', system: 'sys', max_tokens: api === 'messages' ? 300 : 4096 });
    expect(seen.body.model).toBeUndefined();
    expect(seen.body.stream).toBeUndefined();
  });

  it('a stream exception becomes the client API stream error event; an HTTP error keeps its status', async () => {
    const { router } = await setup([{ text: 'Some words first', midStreamError: 'model fell over' }, { error: { status: 429, message: 'Too many requests' } }]);
    const broken = await answer(router, 'chat', 'm', true);
    expect(broken.answer.error).toMatch(/ModelStreamErrorException: model fell over/i);
    expect(broken.answer.text).toBe('Some w');
    const throttled = await router.handle(llmRequest('messages', request('messages', 'm', true)));
    expect(throttled.status).toBe(429);
    expect(JSON.parse(await readAll(throttled))).toMatchObject({ type: 'error', error: { type: 'rate_limit_error', message: expect.stringContaining('Too many requests') } });
  });
});

describe('bedrock timeouts and headers', () => {
  it('a Bedrock call that does not answer in time → 504; anthropic-beta becomes the anthropic_beta body field', async () => {
    const fake = await startBedrockFake([{ text: 'late', delayMs: 3_000 }, { text: 'on time' }]);
    fakes.push(fake);
    const config = parseModelsConfig({ default: 'aws', providers: { aws: { type: 'bedrock', region: 'us-east-1', base_url: fake.url, timeout_seconds: 0.2 } } });
    const router = createModelRouter(config, { env: AWS_ENV });
    const late = await router.handle(llmRequest('messages', request('messages', 'm', false)));
    expect(late.status).toBe(504);
    expect(JSON.parse(await readAll(late))).toMatchObject({ type: 'error', error: { type: 'timeout_error', message: expect.stringMatching(/did not answer within 0\.2 s/) } });
    const ok = await router.handle(llmRequest('messages', request('messages', 'm', false), { headers: { 'anthropic-beta': 'a-2025, b-2025' } }));
    expect(ok.status).toBe(200);
    await readAll(ok);
    expect(fake.requests[1]!.body.anthropic_beta).toEqual(['a-2025', 'b-2025']);
  });
});

describe('vertex', () => {
  it.each(CASES)('%s client (stream: %s): bearer token from the credentials file, rawPredict with the Anthropic body', async (api, stream) => {
    const fake = await startVertexFake([TURN]);
    fakes.push(fake);
    const dir = await mkdtemp(join(tmpdir(), 'airlock-vertex-'));
    dirs.push(dir);
    const credentials = await writeVertexCredentials(dir, fake);
    const config = parseModelsConfig({ default: 'gcp', providers: { gcp: { type: 'vertex', project_id: 'my-proj', location: 'us-east5', base_url: fake.url, credentials_file: credentials, model: 'claude-test@2025' } } });
    const router = createModelRouter(config, { env: {} });
    const result = await answer(router, api, 'whatever-the-client-says', stream);
    expect(result.status).toBe(200);
    expect(result.answer).toMatchObject({ text: TURN.text, error: null, usage: { input: 50, output: 12 } });
    expect(result.answer.toolCalls.map((c) => c.arguments)).toEqual([{ path: 'src/ä.ts', range: [1, 9] }]);
    expect(fake.tokenRequests).toBe(1);
    const seen = fake.requests[0]!;
    expect(seen.path).toBe(`/v1/projects/my-proj/locations/us-east5/publishers/anthropic/models/${encodeURIComponent('claude-test@2025')}:${stream ? 'streamRawPredict' : 'rawPredict'}`);
    expect(seen.auth).toBe('bearer:ya29.fake-vertex-token');
    expect(seen.body).toMatchObject({ anthropic_version: 'vertex-2023-10-16', system: 'sys' });
    expect(seen.body.model).toBeUndefined();
    expect(seen.body.stream === true).toBe(stream);
  });

  it('names the credentials setting when no token can be had', async () => {
    const config = parseModelsConfig({ default: 'gcp', providers: { gcp: { type: 'vertex', project_id: 'p', location: 'us-east5', base_url: 'http://127.0.0.1:9', credentials_file: '/nonexistent/creds.json' } } });
    const response = await createModelRouter(config, { env: {} }).handle(llmRequest('messages', request('messages', 'm', false)));
    expect(response.status).toBe(502);
    expect(JSON.parse(await readAll(response)).error.message).toMatch(/could not get a Google access token for provider "gcp".*credentials_file/);
  });
});

describe('azure-openai', () => {
  it.each(CASES)('%s client (stream: %s): deployment URL, api-version and api-key', async (api, stream) => {
    const fake = await startAzureFake([TURN]);
    fakes.push(fake);
    const config = parseModelsConfig({ default: 'az', providers: { az: { type: 'azure-openai', base_url: fake.url, deployment: 'gpt-dep', api_version: '2024-10-21', api_key_env: 'AZ_KEY' } } });
    const router = createModelRouter(config, { env: { AZ_KEY: 'azure-secret' } });
    const result = await answer(router, api, 'gpt-x', stream);
    expect(result.status).toBe(200);
    expect(result.answer).toMatchObject({ text: TURN.text, error: null, usage: { input: 50, output: 12 } });
    expect(result.answer.toolCalls.map((c) => c.arguments)).toEqual([{ path: 'src/ä.ts', range: [1, 9] }]);
    expect(fake.requests[0]!.path).toBe('/openai/deployments/gpt-dep/chat/completions?api-version=2024-10-21');
    expect(fake.requests[0]!.auth).toBe('api-key');
  });
});
