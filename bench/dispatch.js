// Dispatcher throughput: 50 simulated workers (in-process WebSocket clients speaking the real
// protocol, no-op executions) on SQLite, tasks from create to succeeded.
// Ceiling: the same five state changes per task made directly on the store, no network or
// dispatcher — what the store alone can do on this machine.
import WebSocket from 'ws';
import { newId } from '../dist/lib/ids.js';
import { benchServer, createTasks, report, serverProcess } from './lib.js';

const WORKERS = 50;
const CAPACITY = 4;
const TASKS = Number(process.env.BENCH_DISPATCH_TASKS ?? 5000);

function simulatedWorker(url, key, id) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace('http', 'ws') + '/api/v1/workers/connect', { headers: { authorization: `Bearer ${key}` } });
    let n = 0;
    const send = (m) => ws.send(JSON.stringify(m));
    ws.on('open', () => send({ type: 'hello', protocol: 1, worker_id: id, version: 'bench', backend: 'direct', labels: {}, capacity: CAPACITY, draining: false, running: [] }));
    ws.on('error', reject);
    const offers = new Map();
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      if (m.type === 'welcome') resolve(ws);
      else if (m.type === 'offer') {
        offers.set(m.offer_id, m.execution);
        send({ type: 'claim', offer_id: m.offer_id });
      } else if (m.type === 'claimed') {
        const spec = offers.get(m.offer_id);
        offers.delete(m.offer_id);
        if (!m.ok) return;
        const ref = { execution_id: spec.execution_id, epoch: spec.epoch };
        send({ type: 'execution.started', id: `${id}-${n++}`, ...ref });
        send({ type: 'execution.finished', id: `${id}-${n++}`, ...ref, outcome: 'succeeded', exit_code: 0, failure_reason: null, message: null });
      }
    });
  });
}

async function storeCeiling(store, teamId, count) {
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const now = Date.now();
    const task = await store.createTask({ id: newId('tsk'), teamId, title: null, prompt: 'true', harness: 'shell', workerId: 'ceiling', timeoutSeconds: null, now });
    const [offer] = await store.offerTasks({ teamId, workerId: 'ceiling', limit: 1, now, offerDeadline: now + 10_000, newExecutionId: () => newId('exe'), newOfferId: () => newId('off') });
    await store.claimOffer({ offerId: offer.execution.offerId, workerId: 'ceiling', teamId, now, leaseExpiresAt: now + 30_000 });
    await store.markStarted({ executionId: offer.execution.id, epoch: offer.execution.epoch, workerId: 'ceiling', now, leaseExpiresAt: now + 30_000 });
    await store.finishExecution({ executionId: offer.execution.id, epoch: offer.execution.epoch, workerId: 'ceiling', outcome: 'succeeded', exitCode: 0, failureReason: null, message: null, now });
    if (task.id === undefined) throw new Error('unreachable');
  }
  return count / ((performance.now() - started) / 1000);
}

export async function run() {
  const local = await benchServer();
  const ceiling = await storeCeiling(local.store, local.teamId, 2000);
  await local.close();
  const server = await serverProcess();
  const store = await server.openStore();
  try {
    const sockets = await Promise.all(Array.from({ length: WORKERS }, (_, i) => simulatedWorker(server.url, server.workerKey, `sim-${i}`)));
    const started = performance.now();
    await createTasks(server.url, server.userKey, TASKS, 32, { prompt: 'true', harness: 'shell' });
    const created = performance.now();
    for (;;) {
      const counts = await store.countTasksByState();
      if (counts.succeeded >= TASKS) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const finished = performance.now();
    for (const ws of sockets) ws.close();
    const rate = TASKS / ((finished - started) / 1000);
    const createRate = TASKS / ((created - started) / 1000);
    process.stdout.write(`dispatch throughput (${WORKERS} simulated workers × ${CAPACITY} slots, ${TASKS} tasks, server process on SQLite)\n`);
    report([
      ['create → succeeded', `${rate.toFixed(0)} tasks/s`, `goal ≥ 1,000; store-only ceiling ${ceiling.toFixed(0)} tasks/s (same 5 writes, no network)`],
      ['POST /api/v1/tasks (during)', `${createRate.toFixed(0)} tasks/s`, '32 concurrent clients'],
    ]);
    return { dispatch_tasks_per_s: rate, store_ceiling_tasks_per_s: ceiling, create_per_s: createRate };
  } finally {
    await store.close();
    await server.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
