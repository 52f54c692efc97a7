/**
 * Third-party CLI agents as harnesses, end to end: the real `claude` and `codex` CLIs (from
 * node_modules/.bin), run by the real agent runtime against a real TaskGateway on a Unix socket,
 * on a real git repository. The gateway's `llm` is the worker's real model route (BYOLLM router)
 * whose providers are the scripted model server (a test double) with a provider key — so the
 * test can check that the provider saw every request through the gateway, and that neither that
 * key nor the task token ever reached the CLI's environment or argv. Also: `command:<name>` templates, and the model proxy
 * on its own. No test here needs the internet: every CLI has its phone-home switched off.
 */
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runAgent } from '../../src/agent/run.js';
import { packageSelfCommand } from '../../src/cli/agent.js';
import { startModelProxy } from '../../src/agent/harness/model-proxy.js';
import { DUMMY_API_KEY } from '../../src/agent/harness/cli-agent.js';
import { createModelRouter, parseModelsConfig } from '../../src/llm/index.js';
import type { LlmRequest } from '../../src/llm/types.js';
import { ExecutionModelRoute } from '../../src/worker/llm/index.js';
import type { AgentEvent, AgentResult } from '../../src/protocol/gateway.js';
import type { ExecutionSpec } from '../../src/protocol/task.js';
import { loadWorkerFile } from '../../src/worker/config.js';
import { resolveHarnessTemplates, specWithHarness, UnknownHarnessTemplateError } from '../../src/worker/harness-templates.js';
import { TaskGateway } from '../../src/worker/taskgateway/index.js';
import { conversationStep, offersNoTools, startScriptedModelServer, type ModelScript, type RecordedRequest, type ScriptedModelServer, type ScriptedTurn } from '../support/model-server.js';

const TOKEN = 'task-token-3f9c2b7a1d0e4c8b9a6f5e4d3c2b1a09';
const PROVIDER_KEY = 'sk-provider-secret-7c1e0d9b8a';
const BIN = path.resolve('node_modules/.bin');
/** Each CLI run takes a few seconds here; a minute means something hangs (e.g. on the network). */
const CLI_TEST_TIMEOUT_MS = 60_000;

let dir: string;
let workdir: string;
let socketPath: string;
let model: ScriptedModelServer | undefined;
let gateway: TaskGateway | undefined;
let events: AgentEvent[];
let results: AgentResult[];
let llmCalls: number;
/** Where the CLIs would have gone outside: an HTTP(S) proxy that records and refuses everything. */
let egress: { url: string; attempts: string[]; close(): Promise<void> };

async function startEgressRecorder(): Promise<typeof egress> {
  const attempts: string[] = [];
  const server = http.createServer((req, res) => {
    attempts.push(`${req.method} ${req.url}`);
    res.writeHead(403).end();
  });
  server.on('connect', (req, socket) => {
    attempts.push(`CONNECT ${req.url}`);
    socket.on('error', () => undefined);
    socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    attempts,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

beforeEach(async () => {
  egress = await startEgressRecorder();
  dir = await mkdtemp(path.join(os.tmpdir(), 'airlock-3p-'));
  workdir = path.join(dir, 'work');
  socketPath = path.join(dir, 'gw.sock');
  await mkdir(workdir);
  await mkdir(path.join(dir, 'home'));
  await mkdir(path.join(dir, 'tmp'));
  const git = (...args: string[]) => execFileSync('git', args, { cwd: workdir, env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', HOME: dir } });
  git('init', '-q', '-b', 'main');
  await writeFile(path.join(workdir, 'README.md'), '# Sample\n\nThe greeting is: hello.\n');
  git('add', '.');
  git('-c', 'user.name=t', '-c', 'user.email=t@example.invalid', 'commit', '-qm', 'init');
  events = [];
  results = [];
  llmCalls = 0;
});

afterEach(async () => {
  await egress.close();
  await gateway?.close();
  gateway = undefined;
  await model?.close();
  model = undefined;
  await rm(dir, { recursive: true, force: true });
});

/**
 * The gateway's model port: the worker's real model route (BYOLLM router) with providers that
 * are the scripted server, each adding "its" key and a marker header. `via` picks the default
 * provider, so each CLI's requests pass through in its own API.
 */
function workerRoute(server: ScriptedModelServer, via: 'anthropic' | 'responses' | 'chat') {
  const marker = { 'x-test-via': 'task-gateway' };
  const router = createModelRouter(
    parseModelsConfig({
      default: via,
      providers: {
        anthropic: { type: 'anthropic', base_url: server.url, api_key_env: 'PROVIDER_KEY', headers: marker },
        responses: { type: 'openai-compatible', base_url: `${server.url}/v1`, api: 'responses', api_key_env: 'PROVIDER_KEY', headers: marker },
        chat: { type: 'openai-compatible', base_url: `${server.url}/v1`, api: 'chat', api_key_env: 'PROVIDER_KEY', headers: marker },
      },
    }),
    { env: { PROVIDER_KEY } },
  );
  const route = new ExecutionModelRoute(router, 'byollm');
  return (request: LlmRequest) => {
    llmCalls++;
    return route.handle(request);
  };
}

async function serve(spec: ExecutionSpec, script: ModelScript, via: 'anthropic' | 'responses' | 'chat' = 'chat'): Promise<void> {
  model = await startScriptedModelServer({ script });
  gateway = new TaskGateway({
    socketPath,
    token: TOKEN,
    spec,
    llm: workerRoute(model, via),
    onEvents: async (batch) => {
      events.push(...batch);
    },
    onResult: (result) => {
      results.push(result);
    },
  });
  await gateway.start();
}

function specFor(harness: string, prompt: string, extra: Partial<ExecutionSpec> = {}): ExecutionSpec {
  return { execution_id: 'exe_aaaaaaaaaaaaaaaaaaaa', task_id: 'tsk_aaaaaaaaaaaaaaaaaaaa', epoch: 1, prompt, harness, timeout_seconds: null, title: null, ...extra };
}

async function runTheAgent(extraEnv: Record<string, string> = {}): Promise<number> {
  const stderr: string[] = [];
  const code = await runAgent({
    env: {
      PATH: `${BIN}:${path.dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin`,
      HOME: path.join(dir, 'home'),
      TMPDIR: path.join(dir, 'tmp'),
      LANG: 'C.UTF-8',
      AIRLOCK_GATEWAY: `unix:${socketPath}`,
      AIRLOCK_TASK_TOKEN: TOKEN,
      AIRLOCK_WORKDIR: workdir,
      // An operator passed real provider keys to tasks by mistake: the CLIs must not get them.
      OPENAI_API_KEY: PROVIDER_KEY,
      ANTHROPIC_API_KEY: PROVIDER_KEY,
      // Anything a CLI sends beyond loopback goes to the recorder (there is no internet here).
      HTTPS_PROXY: egress.url,
      HTTP_PROXY: egress.url,
      https_proxy: egress.url,
      http_proxy: egress.url,
      NO_PROXY: '127.0.0.1,localhost',
      no_proxy: '127.0.0.1,localhost',
      ...extraEnv,
    },
    selfCommand: packageSelfCommand(),
    stderr: (line) => stderr.push(line),
    handleSignals: false,
    specDeadlineMs: 2_000,
  });
  if (code !== 0 && process.env.AIRLOCK_TEST_DEBUG) console.error(stderr.join('\n'), JSON.stringify(events.slice(-10), null, 1));
  return code;
}

/**
 * A bash command that records what the CLI's processes can see: its own environment, then the
 * argv and environment of each ancestor up to (not including) this test process.
 */
function snoopCommand(): string {
  return `env > "${dir}/snoop-env.txt"; p=$$; while [ "$p" -gt 1 ] && [ "$p" != "${process.pid}" ]; do tr '\\0' ' ' < /proc/$p/cmdline; echo; tr '\\0' '\\n' < /proc/$p/environ; echo; p=$(cut -d' ' -f4 /proc/$p/stat); done > "${dir}/snoop-procs.txt"; echo snooped`;
}

async function expectNoSecretsSeen(): Promise<void> {
  const env = await readFile(path.join(dir, 'snoop-env.txt'), 'utf8');
  const procs = await readFile(path.join(dir, 'snoop-procs.txt'), 'utf8');
  expect(procs.length).toBeGreaterThan(0);
  for (const text of [env, procs]) {
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain(PROVIDER_KEY);
    expect(text).not.toContain('AIRLOCK_TASK_TOKEN');
  }
  // The CLI process itself got the proxy's loopback URL (env or argv) and only the dummy key.
  expect(procs).toMatch(/(BASE_URL=|base_url=")http:\/\/127\.0\.0\.1:\d+/);
  expect(procs).toContain(DUMMY_API_KEY);
}

function expectProviderSawOnlyTheGateway(requests: RecordedRequest[]): void {
  const modelCalls = requests.filter((r) => r.api !== 'unknown');
  expect(modelCalls.length).toBeGreaterThan(0);
  expect(modelCalls.length).toBe(llmCalls);
  for (const request of requests) {
    expect(request.headers['x-test-via']).toBe('task-gateway');
    expect(request.hasAuthorization).toBe(true);
  }
}

const assistantText = (agent: string) =>
  events
    .filter((e) => e.kind === 'output' && e.data.type === 'assistant' && e.data.agent === agent)
    .map((e) => String(e.data.text))
    .join('');
const statusEvents = (agent: string) => events.filter((e) => e.kind === 'status' && e.data.agent === agent).map((e) => e.data);

describe('claude-code harness', () => {
  it(
    'edits a file and runs a command through the real CLI, with the transcript, result and usage',
    async () => {
      const readme = path.join(workdir, 'README.md');
      // One scripted step per tool result so far; requests without tools are side calls.
      const script = (request: RecordedRequest): ScriptedTurn => {
        if (offersNoTools(request)) return { text: '{"title": "Edit the greeting"}' };
        const step = conversationStep(request);
        const steps: ScriptedTurn[] = [
          { text: 'Reading the README first.', toolCalls: [{ name: 'Read', arguments: { file_path: readme } }] },
          { toolCalls: [{ name: 'Edit', arguments: { file_path: readme, old_string: 'hello.', new_string: 'hello from claude.' } }] },
          { toolCalls: [{ name: 'Bash', arguments: { command: snoopCommand(), description: 'record the environment' } }] },
          { text: 'Changed the greeting in README.md.' },
        ];
        return steps[Math.min(step, steps.length - 1)]!;
      };
      await serve(specFor('claude-code', 'Change the greeting in README.md to "hello from claude."'), script, 'anthropic');
      const code = await runTheAgent();

      expect(code).toBe(0);
      expect(await readFile(readme, 'utf8')).toContain('The greeting is: hello from claude.');
      expect(results).toEqual([expect.objectContaining({ outcome: 'succeeded', exit_code: 0, summary: 'Changed the greeting in README.md.' })]);

      const status = statusEvents('claude-code');
      expect(status[0]).toMatchObject({ type: 'harness_started' });
      expect(assistantText('claude-code')).toContain('Reading the README first.');
      expect(status).toContainEqual(expect.objectContaining({ type: 'tool_call', name: 'Edit', arguments: expect.objectContaining({ new_string: 'hello from claude.' }) }));
      expect(status).toContainEqual(expect.objectContaining({ type: 'tool_result', name: 'Bash', ok: true, output: expect.stringContaining('snooped') }));
      const result = events.find((e) => e.kind === 'result')!;
      expect(result.data.usage).toMatchObject({ requests: llmCalls });
      expect((result.data.usage as { input_tokens: number }).input_tokens).toBeGreaterThan(0);

      await expectNoSecretsSeen();
      expectProviderSawOnlyTheGateway(model!.requests);
      expect(egress.attempts).toEqual([]);
      // Its model calls are Anthropic Messages, with the CLI's version header passed on.
      expect(model!.requests.every((r) => r.api === 'messages' && r.headers['anthropic-version'] !== undefined)).toBe(true);
    },
    CLI_TEST_TIMEOUT_MS,
  );

  it(
    'fails with the API error the CLI reports when the model route answers an error',
    async () => {
      await serve(specFor('claude-code', 'anything', { model: 'claude-test-model' }), () => ({ error: { status: 400, message: 'scripted: this model does not exist' } }), 'anthropic');
      const code = await runTheAgent();
      expect(code).not.toBe(0);
      expect(results[0]).toMatchObject({ outcome: 'failed' });
      expect(results[0]!.summary).toMatch(/claude-code/);
      // The task's model was asked for.
      expect((model!.requests[0]!.body as { model: string }).model).toBe('claude-test-model');
    },
    CLI_TEST_TIMEOUT_MS,
  );
});

describe('cancellation', () => {
  it(
    'stops the CLI (and its in-flight model call) promptly when the task is cancelled',
    async () => {
      await serve(specFor('claude-code', 'wait for a slow model'), () => ({ text: 'too late', delayMs: 30_000 }), 'anthropic');
      const started = Date.now();
      const running = runTheAgent();
      // Cancel once the CLI's model call is waiting at the provider.
      while (!model!.requests.some((r) => r.api === 'messages')) await new Promise((r) => setTimeout(r, 50));
      gateway!.cancel('cancelled by the test');
      const code = await running;
      expect(code).not.toBe(0);
      expect(results[0]).toMatchObject({ outcome: 'cancelled' });
      expect(Date.now() - started).toBeLessThan(20_000);
    },
    CLI_TEST_TIMEOUT_MS,
  );
});

describe('codex harness', () => {
  it(
    'edits a file and runs a command through the real CLI, with the transcript, result and usage',
    async () => {
      const script = (request: RecordedRequest): ScriptedTurn => {
        const step = conversationStep(request);
        const steps: ScriptedTurn[] = [
          { text: 'Editing README.md.', toolCalls: [{ name: 'exec_command', arguments: { cmd: "sed -i 's/hello\\./hello from codex./' README.md && grep greeting README.md" } }] },
          { toolCalls: [{ name: 'exec_command', arguments: { cmd: snoopCommand() } }] },
          { text: 'Changed the greeting.' },
        ];
        return steps[Math.min(step, steps.length - 1)]!;
      };
      await serve(specFor('codex', '-change the greeting (a prompt starting with a dash)', { model: 'gpt-test-codex' }), script, 'responses');
      const code = await runTheAgent();

      expect(code).toBe(0);
      expect(await readFile(path.join(workdir, 'README.md'), 'utf8')).toContain('The greeting is: hello from codex.');
      expect(results).toEqual([expect.objectContaining({ outcome: 'succeeded', exit_code: 0, summary: 'Changed the greeting.' })]);

      const status = statusEvents('codex');
      expect(status).toContainEqual(expect.objectContaining({ type: 'harness_started' }));
      expect(assistantText('codex')).toContain('Editing README.md.');
      expect(status).toContainEqual(expect.objectContaining({ type: 'tool_call', name: 'command' }));
      expect(status).toContainEqual(expect.objectContaining({ type: 'tool_result', name: 'command', ok: true, meta: { exitCode: 0 }, output: expect.stringContaining('hello from codex.') }));
      const result = events.find((e) => e.kind === 'result')!;
      expect(result.data.usage).toMatchObject({ requests: llmCalls });

      await expectNoSecretsSeen();
      expectProviderSawOnlyTheGateway(model!.requests);
      expect(egress.attempts).toEqual([]);
      expect(model!.requests.every((r) => r.api === 'responses' && (r.body as { model: string }).model === 'gpt-test-codex')).toBe(true);
      // The prompt arrived whole, dash included.
      expect(JSON.stringify(model!.requests[0]!.body)).toContain('-change the greeting (a prompt starting with a dash)');
    },
    CLI_TEST_TIMEOUT_MS,
  );
});

describe('through the router\'s translation', () => {
  it(
    'codex (Responses) works with a Messages-API provider behind the worker',
    async () => {
      const script = (request: RecordedRequest): ScriptedTurn =>
        conversationStep(request) === 0
          ? { toolCalls: [{ name: 'exec_command', arguments: { cmd: "sed -i 's/hello\\./hello via translation./' README.md && cat README.md" } }] }
          : { text: 'Translated and done.' };
      await serve(specFor('codex', 'change the greeting', { model: 'any-model' }), script, 'anthropic');
      expect(await runTheAgent()).toBe(0);
      expect(await readFile(path.join(workdir, 'README.md'), 'utf8')).toContain('hello via translation.');
      expect(results[0]).toMatchObject({ outcome: 'succeeded', summary: 'Translated and done.' });
      expect(model!.requests.filter((r) => r.api !== 'unknown').every((r) => r.api === 'messages')).toBe(true);
      expect(egress.attempts).toEqual([]);
    },
    CLI_TEST_TIMEOUT_MS,
  );
});

describe('command:<name> harnesses', () => {
  const AGENT_SCRIPT = `
const [prompt, modelName, baseUrl, where] = process.argv.slice(2);
const res = await fetch(baseUrl + '/chat/completions', {
  method: 'POST',
  headers: { 'content-type': 'application/json', authorization: 'Bearer ' + process.env.OPENAI_API_KEY },
  body: JSON.stringify({ model: modelName, messages: [{ role: 'user', content: prompt }] }),
});
const answer = await res.json();
const fs = await import('node:fs');
fs.writeFileSync(where + '/answer.txt', answer.choices[0].message.content + '\\n');
fs.writeFileSync(where + '/argv.json', JSON.stringify({ prompt, modelName, baseUrl, where, env: process.env.OPENAI_BASE_URL }));
console.log('template agent done');
`;

  it(
    'fills the template from the worker config and runs it without a shell, model calls through the proxy',
    async () => {
      const script = path.join(dir, 'agent.mjs');
      await writeFile(script, AGENT_SCRIPT);
      const configFile = path.join(dir, 'worker.yaml');
      await writeFile(configFile, `harnesses:\n  tiny:\n    command: [node, "${script}", "{prompt}", "{model}", "{base_url_openai}", "{workdir}"]\n    model: tiny-model\n    env: { TINY_FLAG: "on" }\n`);
      const templates = resolveHarnessTemplates(loadWorkerFile(configFile).harnesses);
      const prompt = `a prompt with "quotes", $(touch ${dir}/pwned) and spaces`;
      const served = specWithHarness(specFor('command:tiny', prompt), templates);
      expect(served.env).toEqual({ TINY_FLAG: 'on' });
      await serve(served.spec, [{ text: 'the template agent got an answer' }]);
      const code = await runTheAgent(served.env);

      expect(code).toBe(0);
      expect(await readFile(path.join(workdir, 'answer.txt'), 'utf8')).toBe('the template agent got an answer\n');
      const argv = JSON.parse(await readFile(path.join(workdir, 'argv.json'), 'utf8'));
      expect(argv.prompt).toBe(prompt);
      expect(argv.modelName).toBe('tiny-model');
      expect(argv.baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
      expect(argv.env).toBe(argv.baseUrl);
      expect(argv.where).toBe(workdir);
      await expect(readFile(path.join(dir, 'pwned'))).rejects.toThrow();
      expect(events.some((e) => e.kind === 'output' && String(e.data.text).includes('template agent done'))).toBe(true);
      expectProviderSawOnlyTheGateway(model!.requests);
    },
    CLI_TEST_TIMEOUT_MS,
  );

  it('refuses a template with an unknown placeholder, naming it and the known ones', async () => {
    const configFile = path.join(dir, 'worker.yaml');
    await writeFile(configFile, 'harnesses:\n  bad:\n    command: [aider, --message, "{promt}"]\n');
    expect(() => loadWorkerFile(configFile)).toThrow(/harnesses\.bad\.command\[2\].*\{promt\} is not a placeholder.*\{prompt\}/s);
    await writeFile(configFile, 'harnesses:\n  Bad_Name:\n    command: [x]\n');
    expect(() => loadWorkerFile(configFile)).toThrow(/lowercase/);
    await writeFile(configFile, 'harnesses:\n  ok:\n    command: [x]\n    env: { AIRLOCK_TASK_TOKEN: steal }\n');
    expect(() => loadWorkerFile(configFile)).toThrow(/AIRLOCK_TASK_TOKEN.*cannot be set/);
  });

  it('rejects a task naming a template the worker does not have', () => {
    const templates = resolveHarnessTemplates({ tiny: { command: ['x'] } });
    expect(() => specWithHarness(specFor('command:aider', 'p'), templates)).toThrow(UnknownHarnessTemplateError);
    expect(() => specWithHarness(specFor('command:aider', 'p'), templates)).toThrow(/no command template "aider".*command:tiny/);
    expect(specWithHarness(specFor('shell', 'p'), templates).spec.harness_command).toBeUndefined();
  });

  it(
    'fails clearly when the spec carries no template, or the program is missing',
    async () => {
      await serve(specFor('command:ghost', 'p'), []);
      expect(await runTheAgent()).toBe(2);
      expect(results[0]!.summary).toMatch(/no command for the command:ghost harness/);
      await gateway!.close();
      results = [];
      await serve(specFor('command:ghost', 'p', { harness_command: ['no-such-agent-binary', '{prompt}'] }), []);
      expect(await runTheAgent()).toBe(127);
      expect(results[0]!.summary).toMatch(/could not start no-such-agent-binary.*on PATH/);
    },
    CLI_TEST_TIMEOUT_MS,
  );
});

describe('model proxy', () => {
  it('forwards only the model routes, adds the token itself, and answers the harmless extras locally', async () => {
    await serve(specFor('shell', 'p'), [{ text: 'via the proxy' }], 'anthropic');
    const proxy = await startModelProxy({ address: { kind: 'unix', socketPath, display: `unix:${socketPath}` }, token: TOKEN }, { model: 'm1' });
    try {
      // No credentials from the client: the proxy adds the task token; a client's key is dropped.
      const ok = await fetch(`${proxy.url}/v1/messages?beta=true`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': 'client-key', 'anthropic-version': '2023-06-01' },
        body: JSON.stringify({ model: 'm1', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }),
      });
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as { content: Array<{ text: string }> }).content[0]!.text).toBe('via the proxy');
      expect(proxy.forwarded).toBe(1);
      // Everything else of the gateway is out of reach.
      for (const [method, route] of [['GET', '/v1/task'], ['POST', '/v1/result'], ['POST', '/v1/events'], ['GET', '/v1/control'], ['POST', '/v1/git/credential']] as const) {
        const res = await fetch(`${proxy.url}${route}`, { method, ...(method === 'POST' ? { body: '{}' } : {}) });
        expect(res.status, route).toBe(404);
        expect(await res.text()).not.toContain(TOKEN);
      }
      expect((await fetch(`${proxy.url}/`, { method: 'HEAD' })).status).toBe(200);
      const count = await fetch(`${proxy.url}/v1/messages/count_tokens`, { method: 'POST', body: JSON.stringify({ messages: [{ role: 'user', content: 'x'.repeat(400) }] }) });
      expect(((await count.json()) as { input_tokens: number }).input_tokens).toBeGreaterThan(90);
      const models = (await (await fetch(`${proxy.url}/v1/models`)).json()) as { data: Array<{ id: string }> };
      expect(models.data.map((m) => m.id)).toEqual(['m1']);
      expect(proxy.forwarded).toBe(1);
      expect(llmCalls).toBe(1);
    } finally {
      await proxy.close();
    }
  });

  it('streams through unbuffered: the first event arrives before the provider has finished', async () => {
    await serve(specFor('shell', 'p'), [{ text: 'streamed' }]);
    // Replace the passthrough with a provider that sends one event, waits, then ends.
    await gateway!.close();
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    gateway = new TaskGateway({
      socketPath,
      token: TOKEN,
      spec: specFor('shell', 'p'),
      onEvents: async () => undefined,
      onResult: () => undefined,
      llm: async () => ({
        status: 200,
        headers: { 'content-type': 'text/event-stream' },
        body: (async function* () {
          yield new TextEncoder().encode('data: first\n\n');
          await released;
          yield new TextEncoder().encode('data: [DONE]\n\n');
        })(),
        usage: Promise.resolve(null),
      }),
    });
    await gateway.start();
    const proxy = await startModelProxy({ address: { kind: 'unix', socketPath, display: `unix:${socketPath}` }, token: TOKEN });
    try {
      const res = await fetch(`${proxy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', stream: true, messages: [] }) });
      const reader = res.body!.getReader();
      const first = await reader.read();
      expect(new TextDecoder().decode(first.value)).toContain('data: first');
      release();
      let rest = '';
      for (;;) {
        const next = await reader.read();
        if (next.done) break;
        rest += new TextDecoder().decode(next.value);
      }
      expect(rest).toContain('[DONE]');
    } finally {
      release();
      await proxy.close();
    }
  });
});
