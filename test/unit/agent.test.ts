// The agent runtime end to end, in-process, against a real TaskGateway on a real Unix socket:
// the shell harness's output, exit codes, cancellation, follow-up messages, large output, and
// the reporter's batching and retries.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runAgent } from '../../src/agent/run.js';
import { packageSelfCommand } from '../../src/cli/agent.js';
import { getHarness, harnessNames } from '../../src/agent/harness/index.js';
import { GatewayClient, parseGatewayAddress } from '../../src/agent/report/client.js';
import { Reporter } from '../../src/agent/report/reporter.js';
import { splitForEvents } from '../../src/agent/report/split.js';
import { AsyncQueue } from '../../src/agent/control.js';
import type { AgentEvent, AgentResult } from '../../src/protocol/gateway.js';
import { MAX_EVENT_DATA_BYTES, type ExecutionSpec } from '../../src/protocol/task.js';
import { TaskGateway } from '../../src/worker/taskgateway/index.js';

const TOKEN = 'test-token-0123456789abcdef';

let dir: string;
let socketPath: string;
let workdir: string;
let gateway: TaskGateway | undefined;
let events: AgentEvent[];
let results: AgentResult[];
let failUploads: number;

function specFor(prompt: string): ExecutionSpec {
  return { execution_id: 'exe_aaaaaaaaaaaaaaaaaaaa', task_id: 'tsk_aaaaaaaaaaaaaaaaaaaa', epoch: 1, prompt, harness: 'shell', timeout_seconds: null, title: null };
}

async function serve(prompt: string): Promise<TaskGateway> {
  gateway = new TaskGateway({
    socketPath,
    token: TOKEN,
    spec: specFor(prompt),
    onEvents: async (batch) => {
      if (failUploads > 0) {
        failUploads--;
        throw new Error('simulated outbox failure');
      }
      events.push(...batch);
    },
    onResult: (result) => {
      results.push(result);
    },
  });
  await gateway.start();
  return gateway;
}

function agentEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: dir,
    TMPDIR: dir,
    AIRLOCK_GATEWAY: `unix:${socketPath}`,
    AIRLOCK_TASK_TOKEN: TOKEN,
    AIRLOCK_WORKDIR: workdir,
    ...extra,
  };
}

async function run(extra: Record<string, string> = {}): Promise<{ code: number; stderr: string[] }> {
  const stderr: string[] = [];
  const code = await runAgent({ env: agentEnv(extra), selfCommand: packageSelfCommand(), stderr: (line) => stderr.push(line), handleSignals: false, specDeadlineMs: 500 });
  return { code, stderr };
}

const output = (stream: 'stdout' | 'stderr' = 'stdout') =>
  events.filter((e) => e.kind === 'output' && e.data.stream === stream).map((e) => e.data.text as string).join('');

function pidAlive(pid: number): boolean {
  try {
    const state = execFileSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' }).trim();
    return state.length > 0 && !state.startsWith('Z');
  } catch {
    return false;
  }
}

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'airlock-agent-'));
  socketPath = path.join(dir, 'gateway.sock');
  workdir = path.join(dir, 'work');
  await mkdir(workdir);
  events = [];
  results = [];
  failUploads = 0;
});

afterEach(async () => {
  await gateway?.close();
  gateway = undefined;
  await rm(dir, { recursive: true, force: true });
});

describe('runAgent: environment', () => {
  it('exits 2 with a clear message when the gateway variables are missing', async () => {
    const stderr: string[] = [];
    expect(await runAgent({ env: { PATH: '/bin' }, stderr: (l) => stderr.push(l), handleSignals: false, selfCommand: packageSelfCommand() })).toBe(2);
    expect(stderr.join('\n')).toMatch(/AIRLOCK_GATEWAY and AIRLOCK_TASK_TOKEN are not set/);
    stderr.length = 0;
    expect(await runAgent({ env: { AIRLOCK_GATEWAY: 'unix:/x' }, stderr: (l) => stderr.push(l), handleSignals: false, selfCommand: packageSelfCommand() })).toBe(2);
    expect(stderr.join('\n')).toMatch(/AIRLOCK_TASK_TOKEN is not set/);
  });

  it('exits 2 when AIRLOCK_GATEWAY is not an address it understands', async () => {
    const stderr: string[] = [];
    const env = { AIRLOCK_GATEWAY: 'ftp://somewhere', AIRLOCK_TASK_TOKEN: 't' };
    expect(await runAgent({ env, stderr: (l) => stderr.push(l), handleSignals: false, selfCommand: packageSelfCommand() })).toBe(2);
    expect(stderr.join('\n')).toMatch(/expected unix:\/path\/to\/socket or http:\/\/host:port/);
  });

  it('exits 69 when nothing serves the gateway', async () => {
    const { code, stderr } = await run();
    expect(code).toBe(69);
    expect(stderr.join('\n')).toMatch(/could not reach the task gateway/);
  });

  it('exits 70 when the token is refused', async () => {
    await serve('true');
    const { code, stderr } = await run({ AIRLOCK_TASK_TOKEN: 'wrong' });
    expect(code).toBe(70);
    expect(stderr.join('\n')).toMatch(/401 unauthenticated/);
  });

  it('parses both gateway address forms', () => {
    expect(parseGatewayAddress('unix:/run/a.sock')).toMatchObject({ kind: 'unix', socketPath: '/run/a.sock' });
    expect(parseGatewayAddress('http://10.0.0.5:8080')).toMatchObject({ kind: 'http', host: '10.0.0.5', port: 8080 });
    expect(parseGatewayAddress('http://[::1]:9')).toMatchObject({ kind: 'http', host: '::1', port: 9 });
    expect(() => parseGatewayAddress('unix:relative.sock')).toThrow(/absolute/);
    expect(() => parseGatewayAddress('http://h:1/path')).toThrow(/no path/);
    expect(() => parseGatewayAddress('https://h:1')).toThrow(/expected/);
  });
});

describe('runAgent: shell harness', () => {
  it('streams output as events, brackets them with lifecycle and result, and reports success', async () => {
    await serve('echo hello\necho oops >&2\npwd');
    const { code } = await run();
    expect(code).toBe(0);
    expect(output()).toBe(`hello\n${workdir}\n`);
    expect(output('stderr')).toBe('oops\n');
    expect(events[0]).toMatchObject({ seq: 1, kind: 'lifecycle', data: { phase: 'harness_started', harness: 'shell' } });
    expect(events.at(-1)).toMatchObject({ kind: 'result', data: { outcome: 'succeeded', exit_code: 0 } });
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(results).toEqual([{ outcome: 'succeeded', exit_code: 0, summary: null }]);
  });

  it('propagates a non-zero exit status', async () => {
    await serve('echo before\nexit 3');
    const { code } = await run();
    expect(code).toBe(3);
    expect(results).toEqual([{ outcome: 'failed', exit_code: 3, summary: 'the script exited with status 3' }]);
  });

  it('keeps the task token from the script', async () => {
    await serve('echo "token=${AIRLOCK_TASK_TOKEN:-absent}"');
    await run();
    expect(output()).toBe('token=absent\n');
  });

  it('runs any prompt text verbatim, quotes and all', async () => {
    const prompt = `printf '%s\\n' "it's \\"quoted\\"" '$HOME stays literal' \`echo back\`ticks`;
    await serve(prompt);
    await run();
    expect(output()).toBe(`it's "quoted"\n$HOME stays literal\nbackticks\n`);
  });

  it('splits large output into events within the size limit, losing nothing', async () => {
    await serve(`head -c 300000 /dev/zero | tr '\\0' 'a'; printf '\\001%.0s' $(seq 1 20000)`);
    await run();
    const texts = events.filter((e) => e.kind === 'output').map((e) => e.data);
    for (const data of texts) expect(Buffer.byteLength(JSON.stringify(data))).toBeLessThanOrEqual(MAX_EVENT_DATA_BYTES);
    expect(output()).toBe('a'.repeat(300000) + '\u0001'.repeat(20000));
  });

  it('kills what the script left running in the background once it exits', async () => {
    await serve('sleep 1000 &\necho "bg=$!"');
    await run();
    const pid = Number(/bg=(\d+)/.exec(output())![1]);
    expect(pidAlive(pid)).toBe(false);
  });

  it('stops the script on cancel: SIGTERM to its group, result cancelled', async () => {
    const g = await serve('echo started\nsleep 1000 &\necho "bg=$!"\nsleep 1000');
    const running = run();
    await waitFor(() => output().includes('bg='));
    g.cancel('the user changed their mind');
    const { code } = await running;
    expect(code).toBe(143);
    expect(results[0]).toMatchObject({ outcome: 'cancelled', summary: 'cancelled: the user changed their mind' });
    expect(pidAlive(Number(/bg=(\d+)/.exec(output())![1]))).toBe(false);
  });

  it('escalates to SIGKILL when the script ignores SIGTERM', { timeout: 20_000 }, async () => {
    const g = await serve(`trap 'echo got-term' TERM\necho ready\nwhile :; do sleep 0.1; done`);
    const running = run();
    await waitFor(() => output().includes('ready'));
    g.cancel('stop');
    const { code } = await running;
    expect(output()).toContain('got-term');
    expect(results[0]!.outcome).toBe('cancelled');
    expect(code).toBe(137);
  });

  it('records follow-up messages in the transcript', async () => {
    const g = await serve('echo ready\nsleep 1');
    const running = run();
    await waitFor(() => output().includes('ready'));
    g.deliverMessage({ id: 'msg_1', text: 'also fix the tests' });
    await running;
    expect(events.filter((e) => e.kind === 'message').map((e) => e.data)).toEqual([{ id: 'msg_1', text: 'also fix the tests' }]);
  });

  it('retries uploads the worker could not take, without losing or duplicating events', async () => {
    failUploads = 2;
    await serve('for i in 1 2 3; do echo line $i; done');
    expect((await run()).code).toBe(0);
    expect(output()).toBe('line 1\nline 2\nline 3\n');
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
  });
});

describe('Reporter', () => {
  it('batches a burst into uploads of at most 500 events, in order', async () => {
    const sizes: number[] = [];
    gateway = new TaskGateway({
      socketPath,
      token: TOKEN,
      spec: specFor('true'),
      onEvents: async (batch) => {
        sizes.push(batch.length);
        events.push(...batch);
      },
      onResult: () => undefined,
    });
    await gateway.start();
    const client = new GatewayClient(parseGatewayAddress(`unix:${socketPath}`), TOKEN);
    const reporter = new Reporter(client);
    for (let i = 0; i < 1200; i++) reporter.emit('status', { i });
    expect(await reporter.close(5_000)).toBe(true);
    client.close();
    expect(events.map((e) => e.data.i)).toEqual([...Array(1200).keys()]);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(500);
  });

  it('gives up at the deadline when the gateway is gone', async () => {
    const client = new GatewayClient(parseGatewayAddress(`unix:${socketPath}`), TOKEN);
    const warnings: string[] = [];
    const reporter = new Reporter(client, { warn: (m) => warnings.push(m) });
    reporter.emit('status', { text: 'nobody listens' });
    expect(await reporter.close(300)).toBe(false);
    client.close();
    expect(warnings.join()).toMatch(/giving up/);
  });

  it('replaces an event too large for the gateway with a note', async () => {
    await serve('true');
    const client = new GatewayClient(parseGatewayAddress(`unix:${socketPath}`), TOKEN);
    const reporter = new Reporter(client);
    reporter.emit('status', { text: 'z'.repeat(MAX_EVENT_DATA_BYTES) });
    expect(await reporter.close(5_000)).toBe(true);
    client.close();
    expect(events[0]!.data).toMatchObject({ truncated: true });
  });
});

describe('splitForEvents', () => {
  it('pieces concatenate to the input, fit the limit, and never split a surrogate pair', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('a', '"', '\\', '\u0001', '\n', 'é', '€', '😀', '\ud800') as fc.Arbitrary<string>, maxLength: 400 }), fc.integer({ min: 12, max: 80 }), (text, max) => {
        const pieces = splitForEvents(text, max);
        expect(pieces.join('')).toBe(text);
        for (const piece of pieces) {
          expect(piece.length).toBeGreaterThan(0);
          expect(Buffer.byteLength(JSON.stringify(piece)) - 2).toBeLessThanOrEqual(max);
          expect(/^[\udc00-\udfff]/.test(piece) && /[\ud800-\udbff]$/.test(text.slice(0, text.indexOf(piece)))).toBe(false);
        }
      }),
    );
  });
});

describe('harness registry', () => {
  it('knows every built-in harness name, command templates, and nothing it cannot run', () => {
    expect(harnessNames().sort()).toEqual(['builtin', 'claude-code', 'codex', 'shell']);
    expect(getHarness('shell')?.name).toBe('shell');
    expect(getHarness('command:aider')?.name).toBe('command:aider');
    expect(getHarness('toString')).toBeUndefined();
    expect(getHarness('nope')).toBeUndefined();
  });

  it('AsyncQueue delivers in order and ends', async () => {
    const queue = new AsyncQueue<number>();
    queue.push(1);
    const seen: number[] = [];
    const consumer = (async () => {
      for await (const n of queue) seen.push(n);
    })();
    queue.push(2);
    queue.end();
    queue.push(3);
    await consumer;
    expect(seen).toEqual([1, 2]);
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
