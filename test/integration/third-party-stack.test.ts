/**
 * Third-party agents through the whole stack: a real server, a real worker process (direct
 * backend) configured with `models:` (BYOLLM, providers = the scripted model server, a TEST
 * DOUBLE) and `harnesses:` (a command template), and the real agent runtime. Shows the worker
 * filling `harness_command` from its YAML, refusing a template it does not have, and the real
 * `claude` CLI doing a task whose model calls go agent → proxy → task gateway → worker → provider.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conversationStep, offersNoTools, startScriptedModelServer, type RecordedRequest, type ScriptedModelServer, type ScriptedTurn } from '../support/model-server.js';
import { startTestServer, startWorker, stopWorker, waitForTask, type TestServer, type TestWorker } from '../support/stack.js';

const PROVIDER_KEY = 'sk-provider-stack-5b2e9d';
const BIN = path.resolve('node_modules/.bin');

let provider: ScriptedModelServer;
let server: TestServer;
let worker: TestWorker;

/** Chat Completions requests come from the template agent; Messages requests from Claude Code. */
function script(request: RecordedRequest): ScriptedTurn {
  if (request.api === 'chat-completions') return { text: 'answer for the template agent' };
  if (offersNoTools(request)) return { text: '{"title": "stack test"}' };
  const steps: ScriptedTurn[] = [
    { text: 'Writing the proof file.', toolCalls: [{ name: 'Bash', arguments: { command: "echo 'made by claude' > proof.txt && cat proof.txt && pwd", description: 'write proof' } }] },
    { text: 'Wrote proof.txt.' },
  ];
  return steps[Math.min(conversationStep(request), steps.length - 1)]!;
}

beforeAll(async () => {
  provider = await startScriptedModelServer({ script });
  server = await startTestServer();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'airlock-3p-stack-'));
  const agentScript = path.join(dir, 'agent.mjs');
  writeFileSync(
    agentScript,
    `const [prompt, model, base] = process.argv.slice(2);
const res = await fetch(base + '/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, messages: [{ role: 'user', content: prompt }] }) });
const body = await res.json();
console.log('template agent got: ' + body.choices[0].message.content + ' (model ' + model + ')');
`,
  );
  const config = path.join(dir, 'worker.yaml');
  writeFileSync(
    config,
    [
      'models:',
      '  default: anth',
      '  providers:',
      `    anth: { type: anthropic, base_url: "${provider.url}", api_key_env: PROVIDER_KEY }`,
      `    chat: { type: openai-compatible, base_url: "${provider.url}/v1", api: chat, api_key_env: PROVIDER_KEY }`,
      'harnesses:',
      '  tiny:',
      `    command: [node, "${agentScript}", "{prompt}", "{model}", "{base_url_openai}"]`,
      '    model: chat/tiny-model',
      '',
    ].join('\n'),
  );
  worker = startWorker(server, { args: ['--config', config], env: { PROVIDER_KEY, PATH: `${BIN}:${path.dirname(process.execPath)}:${process.env.PATH ?? '/usr/bin:/bin'}` } });
  await worker.waitForLog(/worker:ws:connected/);
});

afterAll(async () => {
  await stopWorker(worker);
  await server.close();
  await provider.close();
});

async function run(body: Record<string, unknown>, states = ['succeeded', 'failed', 'cancelled']) {
  const { status, body: task } = await server.api('/api/v1/tasks', { body });
  expect(status, JSON.stringify(task)).toBe(201);
  const done = await waitForTask(server, task.id, states, 50_000);
  const { body: events } = await server.api(`/api/v1/tasks/${task.id}/events?format=json`);
  return { done, events: events as Array<{ kind: string; data: Record<string, unknown> }> };
}

describe('third-party agents on a real worker', () => {
  it('runs a command template from the worker YAML, its model call routed by the worker', async () => {
    const { done, events } = await run({ prompt: 'say "hi" $(whoami)', harness: 'command:tiny' });
    expect(done.state, JSON.stringify(done)).toBe('succeeded');
    const out = events.filter((e) => e.kind === 'output').map((e) => String(e.data.text)).join('');
    expect(out).toContain('template agent got: answer for the template agent (model chat/tiny-model)');
    expect(done.usage).toMatchObject({ requests: 1 });
    const call = provider.requests.find((r) => r.api === 'chat-completions')!;
    expect((call.body as { model: string }).model).toBe('tiny-model');
    expect(JSON.stringify(call.body)).toContain('say \\"hi\\" $(whoami)');
  }, 60_000);

  it('fails a task naming a template the worker does not have, as rejected, saying which it has', async () => {
    const { done } = await run({ prompt: 'p', harness: 'command:aider' });
    expect(done.state).toBe('failed');
    expect(done.failure_reason).toBe('rejected');
    expect(done.message).toMatch(/no command template "aider".*command:tiny/);
  }, 60_000);

  it('runs the real claude CLI: it writes a file and runs a command, model calls metered on the task', async () => {
    const { done, events } = await run({ prompt: 'Write proof.txt', harness: 'claude-code' });
    expect(done.state, JSON.stringify(done)).toBe('succeeded');
    expect(done.message).toBe('Wrote proof.txt.');
    const results = events.filter((e) => e.kind === 'status' && e.data.type === 'tool_result');
    expect(results).toContainEqual(expect.objectContaining({ data: expect.objectContaining({ name: 'Bash', ok: true, output: expect.stringMatching(/made by claude\n.*\/work/s) }) }));
    expect(done.usage.requests).toBeGreaterThanOrEqual(2);
    expect(provider.requests.filter((r) => r.api === 'messages').every((r) => r.hasAuthorization)).toBe(true);
  }, 60_000);
});
