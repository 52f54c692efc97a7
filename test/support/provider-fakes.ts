// Wire-level fakes of the cloud model platforms, for tests only (no real AWS, Google or Azure
// call is ever made): Amazon Bedrock (InvokeModel / InvokeModelWithResponseStream, binary
// `application/vnd.amazon.eventstream` framing encoded with @smithy/eventstream-codec, SigV4
// Authorization header checked), Google Vertex AI (rawPredict / streamRawPredict with a bearer
// token from a fake STS token endpoint, reachable through an external-account credentials file),
// and Azure OpenAI (deployment URL, api-version, api-key header). Each answers scripted turns
// with the Anthropic or OpenAI wire bodies of src/dev/model-wire.ts and records every request
// (credentials only as present/absent).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttp2Server, type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from 'node:http2';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EventStreamCodec } from '@smithy/eventstream-codec';
import { chatCompletionBody, chatCompletionStream, encodeSse, errorBody, messagesBody, messagesStream, type ResolvedTurn } from '../../src/dev/model-wire.js';

export interface FakeTurn {
  text?: string;
  toolCalls?: Array<{ name: string; arguments: Record<string, unknown> }>;
  usage?: { input: number; output: number };
  error?: { status: number; message: string };
  midStreamError?: string;
  /** Hold the answer back this long. */
  delayMs?: number;
}

export interface FakeRequest {
  method: string;
  path: string;
  /** Headers minus credentials. */
  headers: Record<string, string>;
  /** The Authorization (or api-key) header's shape, never its value: 'sigv4', 'bearer:<token>' for the fake's own token, 'api-key', 'other' or 'none'. */
  auth: string;
  /** For SigV4: the Credential scope `<key id>/<date>/<region>/<service>/aws4_request`. */
  sigv4Scope?: string;
  body: any;
}

export interface ProviderFake {
  url: string;
  requests: FakeRequest[];
  close(): Promise<void>;
}

const codec = new EventStreamCodec(
  (bytes) => Buffer.from(bytes).toString('utf8'),
  (text) => new Uint8Array(Buffer.from(text, 'utf8')),
);

const FAKE_ACCESS_TOKEN = 'ya29.fake-vertex-token';
const SIGV4 = /^AWS4-HMAC-SHA256 Credential=([^,]+), SignedHeaders=([a-z0-9;:-]+), Signature=([0-9a-f]{64})$/;

type AnyRequest = IncomingMessage | Http2ServerRequest;
type AnyResponse = ServerResponse | Http2ServerResponse;

async function readBody(request: AnyRequest): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function record(request: AnyRequest, text: string): FakeRequest {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (name === 'authorization' || name === 'api-key' || name === 'x-amz-security-token' || name.startsWith(':') || value === undefined) continue;
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  const authorization = request.headers.authorization;
  let auth = request.headers['api-key'] ? 'api-key' : 'none';
  let sigv4Scope: string | undefined;
  if (authorization) {
    const sig = SIGV4.exec(authorization);
    const signed = sig ? sig[2]!.split(';') : [];
    // Over HTTP/2 the SDK signs :authority in place of host.
    if (sig && (signed.includes('host') || signed.includes(':authority')) && signed.includes('x-amz-date')) {
      auth = 'sigv4';
      sigv4Scope = sig[1];
    } else auth = authorization === `Bearer ${FAKE_ACCESS_TOKEN}` ? `bearer:${FAKE_ACCESS_TOKEN}` : 'other';
  }
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* kept as text */
  }
  return { method: request.method ?? '', path: request.url ?? '', headers, auth, ...(sigv4Scope ? { sigv4Scope } : {}), body };
}

function resolve(turn: FakeTurn, model: string, n: number, idPrefix: string): ResolvedTurn {
  return {
    model,
    id: `fake_${n}`,
    text: turn.text,
    toolCalls: (turn.toolCalls ?? []).map((call, i) => ({ id: `${idPrefix}_fake_${n}_${i}`, name: call.name, argumentsJson: JSON.stringify(call.arguments) })),
    usage: turn.usage ?? { input: 1, output: 1 },
    created: Math.floor(Date.now() / 1000),
  };
}

async function listen(server: Server, requests: FakeRequest[]): Promise<ProviderFake> {
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}

function json(response: AnyResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  response.writeHead(status, { 'content-type': 'application/json', ...headers });
  response.end(JSON.stringify(body));
}

function scripted(turns: FakeTurn[]): () => FakeTurn {
  let next = 0;
  return () => turns[next++] ?? { error: { status: 500, message: `provider fake: the script ran out after ${turns.length} turns` } };
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/**
 * Amazon Bedrock runtime: POST /model/<id>/invoke and /model/<id>/invoke-with-response-stream,
 * over HTTP/2 (cleartext, prior knowledge) as the SDK's Bedrock runtime client speaks it.
 * Requests without a well-formed SigV4 Authorization header get the 403 Bedrock would send.
 */
export async function startBedrockFake(turns: FakeTurn[]): Promise<ProviderFake> {
  const requests: FakeRequest[] = [];
  const take = scripted(turns);
  let n = 0;
  const sessions = new Set<Http2Session>();
  const server = createHttp2Server((request, response) => {
    void (async () => {
      const seen = record(request, await readBody(request));
      requests.push(seen);
      const match = /^\/model\/([^/]+)\/(invoke|invoke-with-response-stream)$/.exec(seen.path);
      if (!match || request.method !== 'POST') return json(response, 404, { message: `provider fake (Bedrock): no route ${request.method} ${seen.path}` }, { 'x-amzn-errortype': 'UnknownOperationException' });
      if (seen.auth !== 'sigv4') return json(response, 403, { message: 'Missing Authentication Token' }, { 'x-amzn-errortype': 'AccessDeniedException' });
      const turn = take();
      if (turn.delayMs) await sleep(turn.delayMs);
      if (turn.error) {
        const type = turn.error.status === 429 ? 'ThrottlingException' : turn.error.status === 400 ? 'ValidationException' : 'InternalServerException';
        return json(response, turn.error.status, { message: turn.error.message }, { 'x-amzn-errortype': type });
      }
      const resolved = resolve(turn, decodeURIComponent(match[1]!), ++n, 'toolu');
      if (match[2] === 'invoke') {
        if (turn.midStreamError) return json(response, 500, { message: turn.midStreamError }, { 'x-amzn-errortype': 'InternalServerException' });
        return json(response, 200, messagesBody(resolved));
      }
      response.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream', 'x-amzn-bedrock-content-type': 'application/json' });
      const events = messagesStream(resolved, turn.midStreamError === undefined ? {} : { failWith: turn.midStreamError });
      for (const event of events) {
        if (event.event === 'error') {
          const message = (JSON.parse(event.data) as { error: { message: string } }).error.message;
          response.write(
            codec.encode({
              headers: { ':message-type': { type: 'string', value: 'exception' }, ':exception-type': { type: 'string', value: 'modelStreamErrorException' }, ':content-type': { type: 'string', value: 'application/json' } },
              body: new Uint8Array(Buffer.from(JSON.stringify({ message }))),
            }),
          );
          continue;
        }
        const payload = JSON.stringify({ bytes: Buffer.from(event.data).toString('base64') });
        response.write(
          codec.encode({
            headers: { ':event-type': { type: 'string', value: 'chunk' }, ':content-type': { type: 'string', value: 'application/json' }, ':message-type': { type: 'string', value: 'event' } },
            body: new Uint8Array(Buffer.from(payload)),
          }),
        );
      }
      response.end();
    })().catch(() => undefined); // a client that went away (timeout tests) leaves nothing to answer
  });
  server.on('session', (session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise((done) => {
        for (const session of sessions) session.destroy();
        server.close(() => done());
      }),
  };
}

/**
 * Google Vertex AI with Anthropic models, plus the STS token endpoint an external-account
 * credentials file points at (POST /token → the fake access token). Model calls without that
 * bearer token get 401.
 */
export async function startVertexFake(turns: FakeTurn[]): Promise<ProviderFake & { tokenRequests: number }> {
  const requests: FakeRequest[] = [];
  const take = scripted(turns);
  let n = 0;
  const state = { tokenRequests: 0 };
  const server = createServer((request, response) => {
    void (async () => {
      const text = await readBody(request);
      if (request.url === '/token' && request.method === 'POST') {
        state.tokenRequests++;
        return json(response, 200, { access_token: FAKE_ACCESS_TOKEN, issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', token_type: 'Bearer', expires_in: 3600 });
      }
      const seen = record(request, text);
      requests.push(seen);
      const match = /^\/v1\/projects\/([^/]+)\/locations\/([^/]+)\/publishers\/anthropic\/models\/([^/:]+):(rawPredict|streamRawPredict)$/.exec(seen.path);
      if (!match) return json(response, 404, { error: { code: 404, message: `provider fake (Vertex): no route ${seen.path}`, status: 'NOT_FOUND' } });
      if (seen.auth !== `bearer:${FAKE_ACCESS_TOKEN}`) return json(response, 401, { error: { code: 401, message: 'Request had invalid authentication credentials.', status: 'UNAUTHENTICATED' } });
      const turn = take();
      if (turn.delayMs) await sleep(turn.delayMs);
      if (turn.error) return json(response, turn.error.status, errorBody('messages', turn.error.status, turn.error.message));
      const resolved = resolve(turn, decodeURIComponent(match[3]!), ++n, 'toolu');
      if (match[4] === 'rawPredict') return json(response, 200, messagesBody(resolved));
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      for (const event of messagesStream(resolved, turn.midStreamError === undefined ? {} : { failWith: turn.midStreamError })) response.write(encodeSse(event));
      response.end();
    })().catch(() => undefined); // a client that went away (timeout tests) leaves nothing to answer
  });
  const fake = await listen(server, requests);
  return Object.defineProperty(fake, 'tokenRequests', { get: () => state.tokenRequests }) as ProviderFake & { tokenRequests: number };
}

/** An external-account (workload identity) credentials file whose token endpoint is the fake's. */
export async function writeVertexCredentials(dir: string, fake: { url: string }): Promise<string> {
  const subjectToken = join(dir, 'subject-token');
  await writeFile(subjectToken, 'fake-subject-token');
  const file = join(dir, 'vertex-credentials.json');
  await writeFile(
    file,
    JSON.stringify({
      type: 'external_account',
      audience: '//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/test/providers/fake',
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      token_url: `${fake.url}/token`,
      credential_source: { file: subjectToken },
    }),
  );
  return file;
}

/** Azure OpenAI: POST /openai/deployments/<d>/chat/completions?api-version=… with an api-key header. */
export async function startAzureFake(turns: FakeTurn[]): Promise<ProviderFake> {
  const requests: FakeRequest[] = [];
  const take = scripted(turns);
  let n = 0;
  const server = createServer((request, response) => {
    void (async () => {
      const seen = record(request, await readBody(request));
      requests.push(seen);
      const url = new URL(seen.path, 'http://fake');
      const match = /^\/openai\/deployments\/([^/]+)\/chat\/completions$/.exec(url.pathname);
      if (!match || !url.searchParams.get('api-version')) return json(response, 404, { error: { code: '404', message: 'Resource not found' } });
      if (seen.auth !== 'api-key') return json(response, 401, { error: { code: '401', message: 'Access denied due to invalid subscription key or wrong API endpoint.' } });
      const turn = take();
      if (turn.error) return json(response, turn.error.status, errorBody('chat-completions', turn.error.status, turn.error.message));
      const resolved = resolve(turn, match[1]!, ++n, 'call');
      if (seen.body.stream !== true) return json(response, 200, chatCompletionBody(resolved));
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      const includeUsage = seen.body.stream_options?.include_usage === true;
      for (const event of chatCompletionStream(resolved, { includeUsage, ...(turn.midStreamError === undefined ? {} : { failWith: turn.midStreamError }) })) response.write(encodeSse(event));
      response.end();
    })().catch(() => undefined); // a client that went away (timeout tests) leaves nothing to answer
  });
  return listen(server, requests);
}
