// Event ingestion into one server over the real worker protocol.
//  1. Throughput: one simulated worker streams 200,000 events in batches of 500 with 16 batches in
//     flight. Ceiling: the same batches appended directly to the store (no network, no server).
//  2. Latency at 1,000 events/s: batches of 10 every 10 ms (the agent's own batching interval),
//     measured from the moment an event is made to the moment an SSE follower receives it.
import WebSocket from 'ws';
import { benchServer, createTasks, percentile, report, ms, sseEvents } from './lib.js';
import { newId } from '../dist/lib/ids.js';

const TOTAL = Number(process.env.BENCH_EVENTS ?? 200_000);
const BATCH = 500;
const WINDOW = 16;

function connect(url, key, workerId) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace('http', 'ws') + '/api/v1/workers/connect', { headers: { authorization: `Bearer ${key}` } });
    const handlers = new Set();
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', protocol: 1, worker_id: workerId, version: 'bench', backend: 'direct', labels: {}, capacity: 1, draining: false, running: [] })));
    ws.on('error', reject);
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      if (m.type === 'welcome') resolve({ ws, handlers, send: (x) => ws.send(JSON.stringify(x)) });
      for (const h of handlers) h(m);
    });
  });
}

/** Claim the next offer; resolves once the server confirmed the claim. */
function claimOne(worker) {
  return new Promise((resolve) => {
    const h = (m) => {
      if (m.type === 'offer') worker.send({ type: 'claim', offer_id: m.offer_id });
      if (m.type === 'claimed' && m.ok) {
        worker.handlers.delete(h);
        resolve();
      }
    };
    worker.handlers.add(h);
  });
}

function line(seq) {
  return { seq, ts: Date.now(), kind: 'output', data: { stream: 'stdout', text: `line ${seq} of a reasonably ordinary build log output\n` } };
}

async function throughput(stack) {
  const worker = await connect(stack.server.url, stack.workerKey, 'ingest');
  let spec;
  worker.handlers.add((m) => {
    if (m.type === 'offer') spec = m.execution;
  });
  const { ids } = await createTasks(stack.server.url, stack.userKey, 1, 1, { prompt: 'true', harness: 'shell', worker_id: 'ingest' });
  await claimOne(worker);
  let seq = 0;
  let acked = 0;
  let inFlight = 0;
  const started = performance.now();
  await new Promise((resolve) => {
    const pump = () => {
      while (inFlight < WINDOW && seq < TOTAL) {
        const events = [];
        for (let i = 0; i < BATCH && seq < TOTAL; i++) events.push(line(++seq));
        inFlight++;
        worker.send({ type: 'execution.events', id: newId('msg'), execution_id: spec.execution_id, epoch: spec.epoch, events });
      }
    };
    worker.handlers.add((m) => {
      if (m.type !== 'ack') return;
      inFlight--;
      acked++;
      if (acked * BATCH >= TOTAL) resolve();
      else pump();
    });
    pump();
  });
  const rate = TOTAL / ((performance.now() - started) / 1000);
  worker.ws.close();
  // ceiling: the store alone, same batch sizes
  const execution = (await stack.store.listExecutions(ids[0]))[0];
  const ceilingStarted = performance.now();
  const N = Math.min(TOTAL, 100_000);
  for (let s = 0; s < N; s += BATCH) {
    const events = [];
    for (let i = 1; i <= BATCH; i++) events.push({ ...line(TOTAL + s + i) });
    await stack.store.appendEvents({ executionId: execution.id, taskId: ids[0], ordinal: execution.ordinal }, events);
  }
  const ceiling = N / ((performance.now() - ceilingStarted) / 1000);
  return { rate, ceiling };
}

async function latency(stack) {
  const worker = await connect(stack.server.url, stack.workerKey, 'latency');
  let spec;
  worker.handlers.add((m) => {
    if (m.type === 'offer') spec = m.execution;
  });
  const { ids } = await createTasks(stack.server.url, stack.userKey, 1, 1, { prompt: 'true', harness: 'shell', worker_id: 'latency' });
  await claimOne(worker);
  const samples = [];
  const controller = new AbortController();
  const response = await fetch(`${stack.server.url}/api/v1/tasks/${ids[0]}/events`, { headers: { authorization: `Bearer ${stack.userKey}` }, signal: controller.signal });
  const reader = (async () => {
    try {
      for await (const { event, data, receivedAt } of sseEvents(response.body)) {
        if (event === 'transcript') samples.push(receivedAt - data.ts);
      }
    } catch {
      /* aborted */
    }
  })();;
  await new Promise((r) => setTimeout(r, 200));
  const SECONDS = 5;
  let seq = 0;
  for (let tick = 0; tick < SECONDS * 100; tick++) {
    const events = [];
    for (let i = 0; i < 10; i++) events.push(line(++seq));
    worker.send({ type: 'execution.events', id: newId('msg'), execution_id: spec.execution_id, epoch: spec.epoch, events });
    await new Promise((r) => setTimeout(r, 10));
  }
  await new Promise((r) => setTimeout(r, 500));
  controller.abort();
  await reader;
  worker.ws.close();
  return { p50: percentile(samples, 50), p99: percentile(samples, 99), n: samples.length, sent: seq };
}

export async function run() {
  const stack = await benchServer();
  try {
    const t = await throughput(stack);
    const l = await latency(stack);
    process.stdout.write('event ingestion (one server, SQLite)\n');
    report([
      ['ingest throughput', `${t.rate.toFixed(0)} events/s`, `goal ≥ 20,000; store-only ceiling ${t.ceiling.toFixed(0)} events/s`],
      ['worker → SSE latency p50 @1k/s', ms(l.p50), `${l.n}/${l.sent} events received`],
      ['worker → SSE latency p99 @1k/s', ms(l.p99), 'goal < 50 ms'],
    ]);
    return { ingest_events_per_s: t.rate, ingest_ceiling_events_per_s: t.ceiling, sse_latency_p50_ms: l.p50, sse_latency_p99_ms: l.p99 };
  } finally {
    await stack.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
