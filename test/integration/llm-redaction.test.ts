/**
 * Model requests leave the worker redacted: a secret the worker gives tasks (`-e`) that the agent
 * read into its conversation reaches neither the control plane's gateway nor a BYOLLM provider —
 * raw or encoded. The provider is the scripted model server (a TEST DOUBLE), which records every
 * request it receives.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInProcessWorker, startLlmServer, type InProcessWorker, type LlmTestServer } from '../support/llm-stack.js';
import { startScriptedModelServer, type ScriptedModelServer } from '../support/model-server.js';
import { waitForTask } from '../support/stack.js';

const SECRET = 'deploy-s3cret-value-91f2a7';

let provider: ScriptedModelServer;
let server: LlmTestServer;
let workers: InProcessWorker[] = [];

beforeAll(async () => {
  provider = await startScriptedModelServer({ script: () => ({ text: 'ok', usage: { input: 1, output: 1 } }) });
  const models = { default: 'scripted', providers: { scripted: { type: 'openai-compatible' as const, base_url: `${provider.url}/v1` } } };
  server = await startLlmServer({ file: { models } });
  workers = [
    await startInProcessWorker(server, { workerId: 'via-cp', env: [`DEPLOY_TOKEN=${SECRET}`] }),
    await startInProcessWorker(server, { workerId: 'byollm', env: [`DEPLOY_TOKEN=${SECRET}`], models }),
  ];
});

afterAll(async () => {
  for (const worker of workers) await worker.stop();
  await server?.close();
  await provider?.close();
});

describe('model requests are redacted on the worker', () => {
  it.each(['via-cp', 'byollm'])('removes task secrets, raw and encoded, before a request leaves (%s)', async (workerId) => {
    const target = workerId === 'via-cp' ? workers[0]! : workers[1]!;
    const before = provider.requests.length;
    const prompt = `agent ${workerId} ${Math.random().toString(36).slice(2)}`;
    let status = 0;
    target.agents.set(prompt, async ({ call }) => {
      const reply = await call('/v1/chat/completions', {
        model: 'any',
        messages: [
          { role: 'user', content: 'what is in .env?' },
          { role: 'tool', tool_call_id: 'c1', content: `DEPLOY_TOKEN=${SECRET}\nencoded: ${Buffer.from(SECRET).toString('base64')}` },
        ],
      });
      status = reply.status;
    });
    const { body } = await server.api('/api/v1/tasks', { body: { prompt, harness: 'shell', worker_id: workerId } });
    const task = await waitForTask(server as never, body.id, ['succeeded', 'failed', 'cancelled']);
    expect(task.state, JSON.stringify(task)).toBe('succeeded');
    expect(status).toBe(200);
    const sent = provider.requests.slice(before).map((r) => JSON.stringify(r.body));
    expect(sent).toHaveLength(1);
    expect(sent[0]).not.toContain(SECRET);
    expect(sent[0]).not.toContain(Buffer.from(SECRET).toString('base64'));
    expect(sent[0]).toContain('[REDACTED:DEPLOY_TOKEN]');
  });
});
