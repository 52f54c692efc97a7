// Task start on the direct backend: from POST /api/v1/tasks to the first transcript event seen
// by an SSE client, through a real worker process and the real agent runtime.
// Floor: spawning the same agent process directly against a task gateway in this process, from
// spawn to its first output event arriving at the gateway.
// Also: end-to-end latency from a task's own output line to an SSE follower at ~1,000 lines/s.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { TaskGateway } from '../dist/worker/taskgateway/index.js';
import { newId } from '../dist/lib/ids.js';
import { benchServer, percentile, report, ms, sseEvents } from './lib.js';

const RUNS = Number(process.env.BENCH_START_RUNS ?? 30);
const CLI = resolve(import.meta.dirname, '..', 'bin', 'airlock.js');
const PROMPT = 'echo ready';

async function floorOnce(dir) {
  const socketPath = join(dir, `g-${Math.random().toString(36).slice(2, 8)}.sock`);
  let firstOutput;
  const gotOutput = new Promise((r) => (firstOutput = r));
  const spec = { execution_id: newId('exe'), task_id: newId('tsk'), epoch: 1, prompt: PROMPT, harness: 'shell', timeout_seconds: null, title: null };
  const gateway = new TaskGateway({
    socketPath,
    token: 'floor-token',
    spec,
    onEvents: async (events) => {
      if (events.some((e) => e.kind === 'output')) firstOutput(performance.now());
    },
    onResult: () => {},
  });
  await gateway.start();
  const started = performance.now();
  const child = spawn(process.execPath, [CLI, 'agent', 'run'], {
    env: { PATH: process.env.PATH, HOME: dir, TMPDIR: dir, AIRLOCK_GATEWAY: `unix:${socketPath}`, AIRLOCK_TASK_TOKEN: 'floor-token', AIRLOCK_WORKDIR: dir },
    stdio: 'ignore',
  });
  const at = await gotOutput;
  await new Promise((r) => child.on('exit', r));
  await gateway.close();
  return at - started;
}

async function followFirstEvents(base, key, id, started) {
  const response = await fetch(`${base}/api/v1/tasks/${id}/events`, { headers: { authorization: `Bearer ${key}` } });
  let first;
  for await (const { event, data, receivedMono } of sseEvents(response.body)) {
    if (event === 'end') break;
    if (event !== 'transcript') continue;
    first ??= receivedMono - started;
    if (data.kind === 'output') return { first, output: receivedMono - started };
  }
  return { first, output: undefined };
}

function startWorker(url, key, stateDir) {
  const child = spawn(process.execPath, [CLI, 'worker', '--server', url, '--worker-id', 'bench', '--state-dir', stateDir, '--workspace-root', join(stateDir, 'ws'), '--log-level', 'info'], {
    env: { ...process.env, AIRLOCK_API_KEY: key },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolveReady) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('worker:ws:connected')) resolveReady(child);
    });
  });
}

async function latencyAt1k(base, key) {
  const script = "const end=Date.now()+3000;const t=setInterval(()=>{console.log('t='+Date.now());if(Date.now()>end){clearInterval(t)}},1)";
  const response = await fetch(`${base}/api/v1/tasks`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: `node -e "${script}"`, harness: 'shell' }),
  });
  const task = await response.json();
  const sse = await fetch(`${base}/api/v1/tasks/${task.id}/events`, { headers: { authorization: `Bearer ${key}` } });
  const samples = [];
  for await (const { event, data, receivedAt } of sseEvents(sse.body)) {
    if (event === 'end') break;
    if (event !== 'transcript' || data.kind !== 'output') continue;
    for (const m of String(data.data.text).matchAll(/t=(\d+)/g)) samples.push(receivedAt - Number(m[1]));
  }
  return { p50: percentile(samples, 50), p99: percentile(samples, 99), n: samples.length };
}

export async function run() {
  const dir = mkdtempSync(join(tmpdir(), 'al-bs-'));
  const stack = await benchServer();
  const worker = await startWorker(stack.server.url, stack.workerKey, join(dir, 'st'));
  try {
    const floors = [];
    const firsts = [];
    const outputs = [];
    for (let i = 0; i < RUNS; i++) floors.push(await floorOnce(dir));
    for (let i = 0; i < RUNS; i++) {
      const started = performance.now();
      const response = await fetch(`${stack.server.url}/api/v1/tasks`, {
        method: 'POST',
        headers: { authorization: `Bearer ${stack.userKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: PROMPT, harness: 'shell' }),
      });
      const task = await response.json();
      const { first, output } = await followFirstEvents(stack.server.url, stack.userKey, task.id, started);
      firsts.push(first);
      outputs.push(output);
      // let it finish before the next run, so runs do not overlap
      for (;;) {
        const t = await (await fetch(`${stack.server.url}/api/v1/tasks/${task.id}`, { headers: { authorization: `Bearer ${stack.userKey}` } })).json();
        if (['succeeded', 'failed', 'cancelled'].includes(t.state)) break;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    const floor = percentile(floors, 50);
    const out = percentile(outputs, 50);
    const lat = await latencyAt1k(stack.server.url, stack.userKey);
    process.stdout.write(`task start, direct backend (${RUNS} runs each, medians)\n`);
    report([
      ['POST → first event on SSE', ms(percentile(firsts, 50)), 'the worker\'s "starting" event'],
      ['POST → first output on SSE', ms(out), `floor: agent spawned directly ${ms(floor)}; overhead ${ms(out - floor)} (goal < 50 ms)`],
      ['  p90 POST → first output', ms(percentile(outputs, 90)), `floor p90 ${ms(percentile(floors, 90))}`],
      ['task output → SSE p50 @~1k lines/s', ms(lat.p50), `${lat.n} lines`],
      ['task output → SSE p99 @~1k lines/s', ms(lat.p99), 'goal < 50 ms'],
    ]);
    return {
      start_first_event_ms: percentile(firsts, 50),
      start_first_output_ms: out,
      agent_spawn_floor_ms: floor,
      start_overhead_ms: out - floor,
      output_to_sse_p50_ms: lat.p50,
      output_to_sse_p99_ms: lat.p99,
    };
  } finally {
    worker.kill('SIGTERM');
    await new Promise((r) => worker.on('exit', r));
    await stack.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
