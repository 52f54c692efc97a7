/**
 * docs/protocol.md, section by section, over real sockets against a real server. The worker side
 * is played by the test (RawWorker) so each rule can be broken on purpose.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { RawWorker } from '../support/raw-worker.js';
import { eventually, startTestServer, waitForTask, type TestServer } from '../support/stack.js';

let server: TestServer;
const open: RawWorker[] = [];

async function hello(extra: Record<string, unknown> = {}) {
  const result = await RawWorker.hello(server.url, server.workerKey, extra);
  open.push(result.worker);
  return result;
}

async function createTask(body: Record<string, unknown> = {}) {
  const { status, body: task } = await server.api('/api/v1/tasks', { body: { prompt: 'echo hi', harness: 'shell', ...body } });
  expect(status).toBe(201);
  return task;
}

function msgId() {
  return `m-${Math.random().toString(36).slice(2)}`;
}

beforeAll(async () => {
  // The claim window is generous for a test (1.5 s): on a loaded 2-core CI machine an event-loop
  // stall between the offer's write and its send can eat a shorter one and refuse a prompt claim.
  server = await startTestServer({ settings: { leaseTtlMs: 1200, claimTimeoutMs: 1500, cancelGraceMs: 100 } });
});

afterAll(async () => {
  for (const w of open) w.terminate();
  await server.close();
});

describe('§1 connecting', () => {
  it('refuses a missing or bad key with 401 and a user key with 403', async () => {
    await expect(RawWorker.connect(server.url, 'alk_nope')).rejects.toThrow(/401/);
    await expect(RawWorker.connect(server.url, server.userKey)).rejects.toThrow(/403/);
  });

  it('closes the connection on a frame that is not JSON, and keeps serving everyone else', async () => {
    const { worker: good } = await hello({ worker_id: 'good' });
    const bad = await RawWorker.connect(server.url, server.workerKey);
    bad.send('{not json');
    expect(await bad.closed).toBe(4400);
    const { status } = await server.api('/healthz');
    expect(status).toBe(200);
    good.send({ type: 'heartbeat', leases: [], free_slots: 1, draining: false });
    await good.next('heartbeat_ack');
    good.close();
  });

  it('closes the connection on an unknown message type with an error naming it', async () => {
    const bad = await RawWorker.connect(server.url, server.workerKey);
    bad.send({ type: 'hello', protocol: 1, worker_id: 'x1', version: 't', backend: 'direct', labels: {}, capacity: 1, running: [] });
    await bad.next('welcome');
    bad.send({ type: 'format_disk' });
    const error = await bad.next('error');
    expect(error.message).toMatch(/format_disk/);
    expect(await bad.closed).toBe(4400);
  });

  it('refuses messages before hello, and invalid worker ids', async () => {
    const early = await RawWorker.connect(server.url, server.workerKey);
    early.send({ type: 'heartbeat', leases: [], free_slots: 1, draining: false });
    expect((await early.next('error')).message).toMatch(/before hello/);
    for (const id of ['a/b', '..', 'has space', 'x'.repeat(200), '../etc']) {
      const w = await RawWorker.connect(server.url, server.workerKey);
      w.send({ type: 'hello', protocol: 1, worker_id: id, version: 't', backend: 'direct', labels: {}, capacity: 1, running: [] });
      const error = await w.next('error');
      expect(error.message).toMatch(/worker_id/);
      expect(await w.closed).toBe(4400);
    }
  });

  it('refuses an unsupported protocol version with 4426', async () => {
    const w = await RawWorker.connect(server.url, server.workerKey);
    w.send({ type: 'hello', protocol: 99, worker_id: 'future', version: 't', backend: 'direct', labels: {}, capacity: 1, running: [] });
    expect(await w.closed).toBe(4426);
  });

  it('closes an oversized frame without harming the server', async () => {
    const w = await RawWorker.connect(server.url, server.workerKey);
    w.send('x'.repeat(5 * 1024 * 1024));
    expect(await w.closed).toBe(1009);
    expect((await server.api('/readyz')).status).toBe(200);
  });
});

describe('§3 offers and claims', () => {
  it('offers no more than the worker has slots, and re-queues an offer nobody claims', async () => {
    const a = await createTask({ worker_id: 'slots' });
    const b = await createTask({ worker_id: 'slots' });
    const { worker } = await hello({ worker_id: 'slots', capacity: 1 });
    const first = await worker.next('offer');
    expect([a.id, b.id]).toContain(first.execution.task_id);
    await expect(worker.next('offer', 300)).rejects.toThrow(/no offer/);
    // do not claim: after the deadline the task goes back to the queue and is offered again
    const again = await worker.next('offer', 5000);
    expect(again.execution.epoch).toBeGreaterThan(0);
    const { body } = await server.api(`/api/v1/tasks/${first.execution.task_id}`);
    expect(body.executions.some((e: any) => e.state === 'expired')).toBe(true);
    worker.close();
  });

  it('a claim after the deadline is refused', async () => {
    const task = await createTask({ worker_id: 'late' });
    const { worker } = await hello({ worker_id: 'late', capacity: 1 });
    const offer = await worker.next('offer');
    await new Promise((r) => setTimeout(r, 2200));
    worker.send({ type: 'claim', offer_id: offer.offer_id });
    const claimed = await worker.next('claimed', 5000, (m) => m.offer_id === offer.offer_id);
    expect(claimed.ok).toBe(false);
    worker.close();
    await server.api(`/api/v1/tasks/${task.id}/cancel`, { method: 'POST' });
  });

  it('a declined offer returns to the queue', async () => {
    const task = await createTask({ worker_id: 'decliner' });
    const { worker } = await hello({ worker_id: 'decliner', capacity: 1 });
    const offer = await worker.next('offer');
    worker.send({ type: 'decline', offer_id: offer.offer_id, reason: 'not today' });
    const again = await worker.next('offer');
    expect(again.execution.task_id).toBe(task.id);
    expect(again.execution.epoch).toBe(offer.execution.epoch + 1);
    worker.close();
    await server.api(`/api/v1/tasks/${task.id}/cancel`, { method: 'POST' });
  });
});

describe('§4–5 leases, fencing and idempotent reports', () => {
  it('stores replayed events once, fences a stale epoch, and treats a repeated finish as a no-op', async () => {
    const task = await createTask({ worker_id: 'reporter' });
    const { worker } = await hello({ worker_id: 'reporter' });
    const spec = await worker.claimNext();
    const ref = { execution_id: spec.execution_id, epoch: spec.epoch };
    const started = msgId();
    worker.send({ type: 'execution.started', id: started, ...ref });
    expect((await worker.next('ack', 5000, (m) => m.id === started)).ok).toBe(true);
    const events = [1, 2, 3].map((seq) => ({ seq, ts: Date.now(), kind: 'output', data: { stream: 'stdout', text: `line ${seq}\n` } }));
    for (let i = 0; i < 3; i++) {
      const id = msgId();
      worker.send({ type: 'execution.events', id, ...ref, events }); // the same events three times
      expect((await worker.next('ack', 5000, (m) => m.id === id)).ok).toBe(true);
    }
    const stale = msgId();
    worker.send({ type: 'execution.finished', id: stale, execution_id: spec.execution_id, epoch: spec.epoch + 7, outcome: 'succeeded', exit_code: 0, failure_reason: null, message: null });
    const refused = await worker.next('ack', 5000, (m) => m.id === stale);
    expect(refused).toMatchObject({ ok: false, error: { code: 'lease_lost' } });
    for (let i = 0; i < 2; i++) {
      const id = msgId();
      worker.send({ type: 'execution.finished', id, ...ref, outcome: 'succeeded', exit_code: 0, failure_reason: null, message: null });
      expect((await worker.next('ack', 5000, (m) => m.id === id)).ok).toBe(true);
    }
    const { body: stored } = await server.api(`/api/v1/tasks/${task.id}/events?format=json`);
    expect(stored.map((e: any) => e.seq)).toEqual([1, 2, 3]);
    expect((await waitForTask(server, task.id, ['succeeded'])).state).toBe('succeeded');
    worker.close();
  });

  it('a worker that stops heartbeating loses its lease: the task fails with worker_lost', async () => {
    const task = await createTask({ worker_id: 'silent' });
    const { worker } = await hello({ worker_id: 'silent' });
    const spec = await worker.claimNext();
    worker.send({ type: 'execution.started', id: msgId(), execution_id: spec.execution_id, epoch: spec.epoch });
    // no heartbeats from here on
    const done = await waitForTask(server, task.id, ['failed'], 10_000);
    expect(done.failure_reason).toBe('worker_lost');
    expect(done.message).toMatch(/silent/);
    // the stale worker comes back: its finish is refused, and a heartbeat reports the lease lost
    const late = msgId();
    worker.send({ type: 'execution.finished', id: late, execution_id: spec.execution_id, epoch: spec.epoch, outcome: 'succeeded', exit_code: 0, failure_reason: null, message: null });
    expect((await worker.next('ack', 5000, (m) => m.id === late)).error.code).toBe('lease_lost');
    worker.send({ type: 'heartbeat', leases: [{ execution_id: spec.execution_id, epoch: spec.epoch }], free_slots: 1, draining: false });
    expect((await worker.next('heartbeat_ack')).lost).toEqual([spec.execution_id]);
    expect((await waitForTask(server, task.id, ['failed'])).failure_reason).toBe('worker_lost');
    worker.close();
  });

  it('heartbeats keep a lease alive past its ttl', async () => {
    const task = await createTask({ worker_id: 'beating' });
    const { worker, welcome } = await hello({ worker_id: 'beating' });
    const spec = await worker.claimNext();
    const timer = setInterval(
      () => worker.send({ type: 'heartbeat', leases: [{ execution_id: spec.execution_id, epoch: spec.epoch }], free_slots: 0, draining: false }),
      welcome.heartbeat_ms,
    );
    await new Promise((r) => setTimeout(r, 3000));
    clearInterval(timer);
    const { body } = await server.api(`/api/v1/tasks/${task.id}`);
    expect(body.state).toBe('assigned');
    const id = msgId();
    worker.send({ type: 'execution.finished', id, execution_id: spec.execution_id, epoch: spec.epoch, outcome: 'succeeded', exit_code: 0, failure_reason: null, message: null });
    expect((await worker.next('ack', 5000, (m) => m.id === id)).ok).toBe(true);
    worker.close();
  });
});

describe('§2 reconciliation on reconnect', () => {
  it('continues executions it still holds, abandons unknown ones, and ends the ones it forgot', async () => {
    const kept = await createTask({ worker_id: 'recon' });
    const forgotten = await createTask({ worker_id: 'recon' });
    const first = await hello({ worker_id: 'recon', capacity: 2 });
    const a = await first.worker.claimNext();
    const b = await first.worker.claimNext();
    first.worker.terminate();
    const keep = a.task_id === kept.id ? a : b;
    const bogus = { execution_id: 'exe_aaaaaaaaaaaaaaaaaaaa', epoch: 1 };
    const { worker, welcome } = await hello({ worker_id: 'recon', capacity: 2, running: [{ execution_id: keep.execution_id, epoch: keep.epoch }, bogus] });
    expect(welcome.reconcile).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ execution_id: keep.execution_id, action: 'continue' }),
        expect.objectContaining({ execution_id: bogus.execution_id, action: 'abandon' }),
      ]),
    );
    const lost = await waitForTask(server, forgotten.id, ['failed']);
    expect(lost.failure_reason).toBe('worker_lost');
    const id = msgId();
    worker.send({ type: 'execution.finished', id, execution_id: keep.execution_id, epoch: keep.epoch, outcome: 'succeeded', exit_code: 0, failure_reason: null, message: null });
    expect((await worker.next('ack', 5000, (m) => m.id === id)).ok).toBe(true);
    worker.close();
  });

  it('a second connection with the same worker id replaces the first', async () => {
    const { worker: old } = await hello({ worker_id: 'twin' });
    const { worker: fresh } = await hello({ worker_id: 'twin' });
    expect(await old.closed).toBe(4409);
    fresh.send({ type: 'heartbeat', leases: [], free_slots: 1, draining: false });
    await fresh.next('heartbeat_ack');
    fresh.close();
  });
});

describe('§6 cancellation', () => {
  it('pushes cancel to the worker and repeats it on heartbeat replies until the execution ends', async () => {
    const task = await createTask({ worker_id: 'cancelme' });
    const { worker } = await hello({ worker_id: 'cancelme' });
    const spec = await worker.claimNext();
    worker.send({ type: 'execution.started', id: msgId(), execution_id: spec.execution_id, epoch: spec.epoch });
    await server.api(`/api/v1/tasks/${task.id}/cancel`, { method: 'POST' });
    const cancel = await worker.next('cancel');
    expect(cancel).toMatchObject({ execution_id: spec.execution_id, epoch: spec.epoch });
    worker.send({ type: 'heartbeat', leases: [{ execution_id: spec.execution_id, epoch: spec.epoch }], free_slots: 0, draining: false });
    expect((await worker.next('heartbeat_ack')).cancel).toEqual([expect.objectContaining({ execution_id: spec.execution_id })]);
    const id = msgId();
    worker.send({ type: 'execution.finished', id, execution_id: spec.execution_id, epoch: spec.epoch, outcome: 'cancelled', exit_code: 143, failure_reason: null, message: 'stopped' });
    await worker.next('ack', 5000, (m) => m.id === id);
    expect((await waitForTask(server, task.id, ['cancelled'])).state).toBe('cancelled');
    worker.close();
  });

  it('a cancelled offer cannot be claimed', async () => {
    const task = await createTask({ worker_id: 'toolate' });
    const { worker } = await hello({ worker_id: 'toolate' });
    const offer = await worker.next('offer');
    await server.api(`/api/v1/tasks/${task.id}/cancel`, { method: 'POST' });
    worker.send({ type: 'claim', offer_id: offer.offer_id });
    expect((await worker.next('claimed')).ok).toBe(false);
    worker.close();
  });
});

describe('§8 drain', () => {
  it('a draining worker is offered nothing', async () => {
    const { worker } = await hello({ worker_id: 'drainer', draining: true });
    const task = await createTask({ worker_id: 'drainer' });
    await expect(worker.next('offer', 500)).rejects.toThrow(/no offer/);
    worker.send({ type: 'heartbeat', leases: [], free_slots: 1, draining: false });
    expect((await worker.next('offer')).execution.task_id).toBe(task.id);
    worker.close();
  });
});

describe('metrics', () => {
  it('exposes queue depth, tasks by state, connected workers and dispatch latency', async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    for (const name of ['airlock_queue_depth', 'airlock_tasks{state="queued"}', 'airlock_connected_workers', 'airlock_dispatch_latency_seconds_bucket']) {
      expect(text).toContain(name);
    }
  });
});

it('keeps serving after a burst of garbage connections', async () => {
  const sockets = await Promise.all(
    Array.from({ length: 20 }, async () => {
      const ws = new WebSocket(server.url.replace('http', 'ws') + '/api/v1/workers/connect', { headers: { authorization: `Bearer ${server.workerKey}` } });
      await new Promise((r) => ws.once('open', r));
      ws.send(Buffer.from([0xff, 0xfe, 0x00]));
      return ws;
    }),
  );
  await eventually(() => sockets.every((s) => s.readyState === WebSocket.CLOSED));
  expect((await server.api('/healthz')).status).toBe(200);
});
