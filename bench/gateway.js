// Model-routing overhead of the two-hop path: agent → task gateway (Unix socket) → worker's model
// route → control plane's LLM gateway (a real `airlock server --config` process) → provider (the
// scripted model server, a TEST DOUBLE, in its own process), against the same requests sent to
// the provider directly. Non-streaming: whole-answer latency; streaming: time to first byte.
// The two paths alternate request by request so both see the same machine noise; added latency
// is reported at the median and p99 (goal: < 3 ms median, < 15 ms p99). The worker side runs in
// this process: the task gateway and the model route are the worker's own classes.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import WebSocket from 'ws';
import { TaskGateway } from '../dist/worker/taskgateway/index.js';
import { ExecutionModelRoute, controlPlaneProvider } from '../dist/worker/llm/index.js';
import { listeningUrl, ms, percentile, report, serverProcess } from './lib.js';

const REQUESTS = Number(process.env.BENCH_GATEWAY_REQUESTS ?? 400);
const WARMUP = 50;
const CLI = resolve(import.meta.dirname, '..', 'bin', 'airlock.js');
const CHAT = { model: 'bench-model', messages: [{ role: 'user', content: 'Say something short.' }] };

/** CPU time (user + system) a process has used so far, in ms, from /proc (clock ticks of 10 ms). */
function processCpuMs(pid) {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10; // utime, stime: fields 14 and 15 of proc(5)
}

function ownCpuMs() {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

async function providerProcess() {
  const child = spawn(process.execPath, [CLI, 'dev', 'model-server', '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await listeningUrl(child, child.stdout, 'model server');
  return {
    url,
    pid: child.pid,
    async close() {
      child.kill('SIGTERM');
      await new Promise((r) => child.on('exit', r));
    },
  };
}

/** Play a worker just far enough to hold one execution (and its LLM token) with live heartbeats. */
async function claimExecution(server) {
  const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}/api/v1/workers/connect`, { headers: { authorization: `Bearer ${server.workerKey}` } });
  const inbox = [];
  let wake = () => {};
  ws.on('message', (data) => {
    inbox.push(JSON.parse(data.toString()));
    wake();
  });
  await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
  const next = async (type) => {
    for (;;) {
      const i = inbox.findIndex((m) => m.type === type);
      if (i !== -1) return inbox.splice(i, 1)[0];
      await new Promise((r) => (wake = r));
    }
  };
  ws.send(JSON.stringify({ type: 'hello', protocol: 1, worker_id: 'bench', version: 'bench', backend: 'direct', labels: {}, capacity: 1, draining: false, running: [] }));
  await next('welcome');
  const created = await fetch(`${server.url}/api/v1/tasks`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.userKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'bench', harness: 'shell', worker_id: 'bench' }),
  });
  if (created.status !== 201) throw new Error(`task create failed: ${await created.text()}`);
  const offer = await next('offer');
  ws.send(JSON.stringify({ type: 'claim', offer_id: offer.offer_id }));
  const claimed = await next('claimed');
  if (!claimed.ok || !claimed.llm_token) throw new Error(`claim failed: ${JSON.stringify(claimed)}`);
  const spec = offer.execution;
  const heartbeat = setInterval(() => {
    ws.send(JSON.stringify({ type: 'heartbeat', leases: [{ execution_id: spec.execution_id, epoch: spec.epoch }], free_slots: 0, draining: false }));
    inbox.length = 0;
  }, 2_000);
  return {
    spec,
    token: claimed.llm_token.token,
    close() {
      clearInterval(heartbeat);
      ws.close();
    },
  };
}

/** One POST; resolves with [time to first body byte, time to the end], in ms. */
function timedPost(options, body) {
  return new Promise((resolveTime, reject) => {
    const payload = JSON.stringify(body);
    const started = performance.now();
    const req = http.request(
      { ...options, method: 'POST', headers: { ...options.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
      (res) => {
        let first;
        res.on('data', () => (first ??= performance.now() - started));
        res.on('end', () => (res.statusCode === 200 ? resolveTime([first, performance.now() - started]) : reject(new Error(`HTTP ${res.statusCode}`))));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

export async function run() {
  const dir = mkdtempSync(join(tmpdir(), 'al-bench-gw-'));
  const provider = await providerProcess();
  const config = join(dir, 'server.yaml');
  writeFileSync(config, `models:\n  default: scripted\n  providers:\n    scripted:\n      type: openai-compatible\n      base_url: ${provider.url}/v1\n`);
  const server = await serverProcess(['--config', config]);
  const execution = await claimExecution(server);
  const route = new ExecutionModelRoute(controlPlaneProvider(server.url, () => execution.token), 'control-plane');
  const gateway = new TaskGateway({
    socketPath: join(dir, 'gw.sock'),
    token: 'bench-task-token',
    spec: execution.spec,
    onEvents: async () => {},
    onResult: () => {},
    llm: route.handle,
  });
  await gateway.start();
  const providerUrl = new URL(provider.url);
  const direct = { host: providerUrl.hostname, port: providerUrl.port, path: '/v1/chat/completions', agent: new http.Agent({ keepAlive: true, maxSockets: 1 }), headers: {} };
  const viaGateway = { socketPath: gateway.socketPath, path: '/v1/chat/completions', agent: new http.Agent({ keepAlive: true, maxSockets: 1 }), headers: { authorization: 'Bearer bench-task-token' } };
  try {
    const results = {};
    for (const { mode, body, pick } of [
      { mode: 'non-streaming', body: { ...CHAT, stream: false }, pick: 1 },
      { mode: 'streaming (time to first byte)', body: { ...CHAT, stream: true }, pick: 0 },
    ]) {
      const directTimes = [];
      const gatewayTimes = [];
      for (let i = 0; i < WARMUP + REQUESTS; i++) {
        const d = await timedPost(direct, body);
        const g = await timedPost(viaGateway, body);
        if (i < WARMUP) continue;
        directTimes.push(d[pick]);
        gatewayTimes.push(g[pick]);
      }
      const row = {
        direct_median_ms: percentile(directTimes, 50),
        direct_p99_ms: percentile(directTimes, 99),
        gateway_median_ms: percentile(gatewayTimes, 50),
        gateway_p99_ms: percentile(gatewayTimes, 99),
      };
      row.added_median_ms = row.gateway_median_ms - row.direct_median_ms;
      row.added_p99_ms = row.gateway_p99_ms - row.direct_p99_ms;
      results[mode.startsWith('non') ? 'non_streaming' : 'streaming_ttfb'] = row;
      process.stdout.write(`model routing, ${mode}: ${REQUESTS} requests each way, alternating (after ${WARMUP} warm-up)\n`);
      report([
        ['provider directly', `${ms(row.direct_median_ms)} / ${ms(row.direct_p99_ms)}`, 'median / p99: the floor'],
        ['task gateway → worker → server → provider', `${ms(row.gateway_median_ms)} / ${ms(row.gateway_p99_ms)}`, 'median / p99'],
        ['added by the two hops', `${ms(row.added_median_ms)} / ${ms(row.added_p99_ms)}`, 'goal < 3 ms median, < 15 ms p99'],
      ]);
    }
    // CPU time per request, in separate phases (wall-clock figures on a busy machine are mostly
    // waiting for a core; CPU time is what the hops cost whatever the load).
    const cpu = {};
    for (const [name, target] of [['direct', direct], ['gateway', viaGateway], ['direct again', direct]]) {
      const own = ownCpuMs();
      const srv = processCpuMs(server.pid);
      const prov = processCpuMs(provider.pid);
      for (let i = 0; i < REQUESTS; i++) await timedPost(target, { ...CHAT, stream: true });
      cpu[name] = { bench: (ownCpuMs() - own) / REQUESTS, server: (processCpuMs(server.pid) - srv) / REQUESTS, provider: (processCpuMs(provider.pid) - prov) / REQUESTS };
    }
    const directCpu = Math.min(cpu.direct.bench, cpu['direct again'].bench);
    results.cpu_per_request = {
      worker_side_ms: cpu.gateway.bench - directCpu,
      server_ms: cpu.gateway.server,
      provider_direct_ms: Math.min(cpu.direct.provider, cpu['direct again'].provider),
      provider_via_gateway_ms: cpu.gateway.provider,
    };
    process.stdout.write(`model routing, CPU time per streamed request (${REQUESTS} each, separate phases)\n`);
    report([
      ['client + task gateway + worker route', ms(cpu.gateway.bench), `minus the client alone (${ms(directCpu)}): ${ms(results.cpu_per_request.worker_side_ms)} added on the worker`],
      ['server (LLM gateway)', ms(cpu.gateway.server), 'token check, store lookup, provider call, usage upsert'],
      ['provider (test double)', ms(cpu.gateway.provider), `same work as direct (${ms(results.cpu_per_request.provider_direct_ms)})`],
    ]);
    const usage = await route.finalUsage();
    if (usage.requests !== 2 * (WARMUP + REQUESTS) + REQUESTS) throw new Error(`the route metered ${usage.requests} requests`);
    return { requests: REQUESTS, ...results };
  } finally {
    direct.agent.destroy();
    viaGateway.agent.destroy();
    await gateway.close();
    execution.close();
    await server.close();
    await provider.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
