/**
 * Task-scoped LLM tokens at the control plane's gateway, over real sockets: minted with the claim,
 * renewed on heartbeats, refused when expired, forged, of another or an unknown execution, or of an
 * execution that ended; API keys refused; every refusal in the client's own error format; no
 * provider configured → 503 saying how to configure one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateServerSecret } from '../../src/server/auth/keys.js';
import { LlmTokenAuthority } from '../../src/server/llm/tokens.js';
import { postJson, startLlmServer, type LlmTestServer } from '../support/llm-stack.js';
import { startScriptedModelServer, type ScriptedModelServer } from '../support/model-server.js';
import { RawWorker } from '../support/raw-worker.js';

const TTL_MS = 2_000;
let provider: ScriptedModelServer;
let server: LlmTestServer;
let bare: LlmTestServer;

beforeAll(async () => {
  provider = await startScriptedModelServer({ script: () => ({ text: 'ok', usage: { input: 3, output: 1 } }) });
  server = await startLlmServer({
    file: { models: { default: 'p', providers: { p: { type: 'openai-compatible', base_url: `${provider.url}/v1` } } } },
    tokenTtlMs: TTL_MS,
    settings: { leaseTtlMs: 5_000 },
  });
  bare = await startLlmServer();
});

afterAll(async () => {
  await server?.close();
  await bare?.close();
  await provider?.close();
});

const chat = { model: 'm', messages: [{ role: 'user', content: 'hi' }] };
const messages = { model: 'm', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] };

async function claimOne(on: LlmTestServer, workerId = 'raw'): Promise<{ worker: RawWorker; spec: any; token: any }> {
  const { worker } = await RawWorker.hello(on.url, on.workerKey, { worker_id: workerId });
  const created = await on.api('/api/v1/tasks', { body: { prompt: 'x', harness: 'shell', worker_id: workerId } });
  expect(created.status).toBe(201);
  const offer = await worker.next('offer');
  worker.send({ type: 'claim', offer_id: offer.offer_id });
  const claimed = await worker.next('claimed');
  expect(claimed.ok).toBe(true);
  return { worker, spec: offer.execution, token: claimed.llm_token };
}

describe('LLM tokens', () => {
  it('a claim carries a token for that execution, which the gateway accepts until the execution ends', async () => {
    const { worker, spec, token } = await claimOne(server);
    expect(token).toMatchObject({ execution_id: spec.execution_id, token: expect.stringMatching(/^allt\./) });
    expect(token.expires_at_ms).toBeGreaterThan(Date.now());
    const ok = await postJson({ url: server.url }, '/llm/v1/chat/completions', token.token, chat);
    expect(ok.status, ok.text).toBe(200);
    expect(ok.json().choices[0].message.content).toBe('ok');

    // Heartbeats renew it once half its life is gone.
    await new Promise((r) => setTimeout(r, TTL_MS / 2 + 100));
    worker.send({ type: 'heartbeat', leases: [{ execution_id: spec.execution_id, epoch: spec.epoch }], free_slots: 0, draining: false });
    const ack = await worker.next('heartbeat_ack');
    expect(ack.llm_tokens).toEqual([expect.objectContaining({ execution_id: spec.execution_id })]);
    expect(ack.llm_tokens[0].expires_at_ms).toBeGreaterThan(token.expires_at_ms);

    // The execution ends: its (still unexpired) token is refused at once.
    worker.send({ type: 'execution.finished', id: 'm1', execution_id: spec.execution_id, epoch: spec.epoch, outcome: 'succeeded', exit_code: 0, failure_reason: null, message: null });
    await worker.next('ack');
    const ended = await postJson({ url: server.url }, '/llm/v1/chat/completions', ack.llm_tokens[0].token, chat);
    expect(ended.status).toBe(401);
    expect(ended.json().error.message).toMatch(/has ended \(succeeded\): its LLM tokens are revoked/);
    worker.close();
    await worker.closed;
  });

  it('refuses expired, forged, unknown-execution tokens and API keys, in each client format', async () => {
    const authority = new LlmTokenAuthority(loadOrCreateServerSecret(server.dataDir), 60_000);
    const { worker, spec, token } = await claimOne(server, 'raw2');
    const expired = authority.issue(spec.execution_id, Date.now() - 120_000).token;
    const unknown = authority.issue('exe_aaaaaaaaaaaaaaaaaaaa', Date.now()).token;
    // The signature of one execution's token does not cover another execution.
    const [, , expiry, signature] = token.token.split('.');
    const swapped = `allt.exe_bbbbbbbbbbbbbbbbbbbb.${expiry}.${signature}`;
    const otherServer = new LlmTokenAuthority(Buffer.alloc(32, 7), 60_000).issue(spec.execution_id, Date.now()).token;
    const cases: Array<[string | null, RegExp]> = [
      [null, /missing LLM token/],
      [server.userKey, /API keys are not accepted/],
      [server.workerKey, /API keys are not accepted/],
      [expired, /has expired/],
      [unknown, /does not know/],
      [swapped, /not valid/],
      [otherServer, /not valid/],
      ['allt.garbage', /not valid/],
    ];
    for (const [credential, message] of cases) {
      const openai = await postJson({ url: server.url }, '/llm/v1/chat/completions', credential, chat);
      expect(openai.status, `${credential}: ${openai.text}`).toBe(401);
      expect(openai.headers['www-authenticate']).toBe('Bearer');
      expect(openai.json()).toMatchObject({ error: { message: expect.stringMatching(message), type: 'invalid_request_error', code: 'invalid_api_key' } });
      const anthropic = await postJson({ url: server.url }, '/llm/v1/messages', credential, messages);
      expect(anthropic.status).toBe(401);
      expect(anthropic.json()).toMatchObject({ type: 'error', error: { type: 'authentication_error', message: expect.stringMatching(message) } });
    }
    // Anthropic clients send their key as x-api-key: the token works there too.
    const viaHeader = await postJson({ url: server.url }, '/llm/v1/messages', null, messages, { 'x-api-key': token.token });
    expect(viaHeader.status).not.toBe(401);
    worker.close();
    await worker.closed;
  });

  it('answers bad bodies in the client format, before anything reaches a provider', async () => {
    const { worker, token } = await claimOne(server, 'raw3');
    const before = provider.requests.length;
    const notJson = await fetch(`${server.url}/llm/v1/responses`, { method: 'POST', headers: { authorization: `Bearer ${token.token}`, 'content-type': 'application/json' }, body: '{"model": nope' });
    expect(notJson.status).toBe(400);
    expect(await notJson.json()).toMatchObject({ error: { type: 'invalid_request_error', message: expect.stringMatching(/not valid JSON/) } });
    const noModel = await postJson({ url: server.url }, '/llm/v1/messages', token.token, { messages: [] });
    expect(noModel.status).toBe(400);
    expect(noModel.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
    expect(provider.requests.length).toBe(before);
    worker.close();
    await worker.closed;
  });

  it('without a provider configured answers 503 saying how to configure one or use BYOLLM', async () => {
    const { worker, token } = await claimOne(bare);
    const reply = await postJson({ url: bare.url }, '/llm/v1/chat/completions', token.token, chat);
    expect(reply.status).toBe(503);
    expect(reply.json().error.message).toMatch(/no model provider is configured.*--config.*BYOLLM/);
    const anthropic = await postJson({ url: bare.url }, '/llm/v1/messages', token.token, messages);
    expect(anthropic.json()).toMatchObject({ type: 'error', error: { type: 'api_error' } });
    worker.close();
    await worker.closed;
  });
});
