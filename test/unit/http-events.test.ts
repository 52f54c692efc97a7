/**
 * Live transcripts over server-sent events, against the real store and hub: backlog then live
 * events then `end`; resume with Last-Event-ID / ?after=; every event exactly once and in order
 * — across reconnects, across executions, across backlog pages, and when events land in the
 * window between subscribing and reading the backlog; followers released when clients leave.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/lib/ids.js';
import { EventView, TaskView } from '../../src/protocol/task.js';
import type { EventRecord, ExecutionRecord, Store } from '../../src/server/store/store.js';
import { http } from '../support/http-client.js';
import { appendEvents, createTeam, finishExecution, interpose, startExecution, startTestApi, type TestApi, type TestTeam } from '../support/http-context.js';
import { eventually, openSse, type SseFrame, type SseStream } from '../support/http-sse.js';

let api: TestApi;
let team: TestTeam;
const open: SseStream[] = [];

beforeAll(async () => {
  api = await startTestApi({ sseKeepAliveMs: 100 });
  team = await createTeam(api, 'events');
});

afterEach(async () => {
  open.splice(0).forEach((s) => s.close());
  // Every test leaves no follower behind: closed streams unsubscribe.
  await eventually(() => api.hub.followerCount === 0, 5000, 'followers to be released');
});

afterAll(async () => {
  await api?.close();
});

async function follow(taskId: string, headers: Record<string, string> = {}, query = '', target: TestApi = api, key = team.keys.member): Promise<SseStream> {
  const stream = await openSse(`${target.url}/api/v1/tasks/${taskId}/events${query}`, { authorization: `Bearer ${key}`, ...headers });
  open.push(stream);
  return stream;
}

async function newRunningTask(target: TestApi = api, t: TestTeam = team): Promise<{ task: TaskView; execution: ExecutionRecord }> {
  const res = await http(target.url, '/api/v1/tasks', { key: t.keys.member, body: { prompt: 'echo' } });
  const task = res.json as TaskView;
  const execution = await startExecution(target, t.team.id, task.id);
  return { task, execution };
}

function seqs(from: number, to: number): Array<{ seq: number }> {
  return Array.from({ length: to - from + 1 }, (_, i) => ({ seq: from + i }));
}

function transcriptIds(frames: SseFrame[]): string[] {
  return frames.filter((f) => f.event === 'transcript').map((f) => f.id!);
}

describe('following a task', () => {
  it('sends the backlog, the task, live events, the final task, then end — and closes', async () => {
    const { task, execution } = await newRunningTask();
    await appendEvents(api, execution, seqs(1, 3));
    const stream = await follow(task.id);
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(stream.headers.get('cache-control')).toContain('no-cache');

    const backlog = [await stream.next(), await stream.next(), await stream.next()];
    expect(backlog.map((f) => [f!.event, f!.id])).toEqual([
      ['transcript', '1.1'],
      ['transcript', '1.2'],
      ['transcript', '1.3'],
    ]);
    const view = EventView.parse(JSON.parse(backlog[0]!.data));
    expect(view).toMatchObject({ id: '1.1', execution_id: execution.id, seq: 1, kind: 'output', data: { stream: 'stdout', text: 'line 1.1\n' } });
    const state = await stream.next();
    expect(state).toMatchObject({ event: 'task' });
    expect(state!.id).toBeUndefined();
    expect(TaskView.parse(JSON.parse(state!.data))).toMatchObject({ id: task.id, state: 'running' });

    await eventually(() => api.hub.followerCount === 1);
    await appendEvents(api, execution, seqs(4, 5));
    expect((await stream.next())!.id).toBe('1.4');
    expect((await stream.next())!.id).toBe('1.5');

    await finishExecution(api, execution, 'succeeded');
    const rest = await stream.readToEnd();
    expect(rest.map((f) => f.event)).toEqual(['task', 'end']);
    expect(JSON.parse(rest[0]!.data)).toMatchObject({ state: 'succeeded', exit_code: 0 });
    expect(JSON.parse(rest[1]!.data)).toEqual({ task_id: task.id, state: 'succeeded' });
    expect(await stream.next()).toBeUndefined(); // the server closed the stream
    await eventually(() => api.hub.followerCount === 0);
  });

  it('ends at once for a finished task, after its whole transcript', async () => {
    const { task, execution } = await newRunningTask();
    await appendEvents(api, execution, seqs(1, 4));
    await finishExecution(api, execution, 'failed');
    const frames = await (await follow(task.id)).readToEnd();
    expect(frames.map((f) => f.id ?? f.event)).toEqual(['1.1', '1.2', '1.3', '1.4', 'task', 'end']);
    expect(JSON.parse(frames[4]!.data)).toMatchObject({ state: 'failed', failure_reason: 'exit_code' });
  });

  it('follows a queued task through cancellation', async () => {
    const res = await http(api.url, '/api/v1/tasks', { key: team.keys.member, body: { prompt: 'echo' } });
    const stream = await follow(res.json.id);
    expect(JSON.parse((await stream.next())!.data)).toMatchObject({ state: 'queued' });
    await eventually(() => api.hub.followerCount === 1);
    await http(api.url, `/api/v1/tasks/${res.json.id}/cancel`, { method: 'POST', key: team.keys.member });
    const rest = await stream.readToEnd();
    expect(rest.map((f) => f.event)).toEqual(['task', 'end']);
    expect(JSON.parse(rest[1]!.data)).toMatchObject({ state: 'cancelled' });
  });

  it('sends keep-alive comments while idle', async () => {
    const { task } = await newRunningTask();
    const stream = await follow(task.id);
    await stream.next(); // the task frame
    await eventually(() => stream.comments.filter((c) => c === 'keep-alive').length >= 2, 3000, 'keep-alive comments');
  });

  it('has no HEAD twin that would open a follower', async () => {
    const { task } = await newRunningTask();
    const res = await http(api.url, `/api/v1/tasks/${task.id}/events`, { method: 'HEAD', key: team.keys.member });
    expect(res.status).toBe(404);
    expect(api.hub.followerCount).toBe(0);
    expect((await http(api.url, '/healthz', { method: 'HEAD' })).status).toBe(200);
  });

  it('releases the follower when the client goes away', async () => {
    const { task } = await newRunningTask();
    const streams = [await follow(task.id), await follow(task.id)];
    await Promise.all(streams.map((s) => s.next()));
    await eventually(() => api.hub.followerCount === 2);
    streams[0]!.close();
    await eventually(() => api.hub.followerCount === 1, 5000, 'one follower released');
    streams[1]!.close();
    await eventually(() => api.hub.followerCount === 0, 5000, 'both followers released');
  });
});

describe('resuming', () => {
  it('resumes after Last-Event-ID, across executions (ordinal, then seq)', async () => {
    // Execution 1 is offered, writes events, and its offer expires: the task returns to the
    // queue and execution 2 runs it (the store's real re-queue path).
    const res = await http(api.url, '/api/v1/tasks', { key: team.keys.member, body: { prompt: 'echo', worker_id: 'solo' } });
    const task = res.json as TaskView;
    const now = Date.now();
    const offer = async (deadline: number) =>
      (
        await api.store.offerTasks({
          teamId: team.team.id,
          workerId: 'solo',
          limit: 1,
          now,
          offerDeadline: deadline,
          newExecutionId: () => newId('exe'),
          newOfferId: () => newId('off'),
        })
      )[0]!.execution;
    const first = await offer(now + 1);
    await appendEvents(api, first, seqs(1, 3));
    await api.store.expireOffers(now + 10);
    const second = await startExecution(api, team.team.id, task.id, 'solo');
    expect(second.ordinal).toBe(2);
    await appendEvents(api, second, seqs(1, 2));

    const stream = await follow(task.id, { 'last-event-id': '1.2' });
    expect([await stream.next(), await stream.next(), await stream.next()].map((f) => f!.id)).toEqual(['1.3', '2.1', '2.2']);
    const after = await follow(task.id, {}, '?after=2.1');
    expect((await after.next())!.id).toBe('2.2');
    const all = await http(api.url, `/api/v1/tasks/${task.id}/events?format=json`, { key: team.keys.member });
    expect(all.json.map((e: EventView) => [e.id, e.execution_id])).toEqual([
      ['1.1', first.id],
      ['1.2', first.id],
      ['1.3', first.id],
      ['2.1', second.id],
      ['2.2', second.id],
    ]);
  });

  it('prefers Last-Event-ID over ?after= (EventSource reconnects keep the original URL)', async () => {
    const { task, execution } = await newRunningTask();
    await appendEvents(api, execution, seqs(1, 5));
    const stream = await follow(task.id, { 'last-event-id': '1.4' }, '?after=1.1');
    expect((await stream.next())!.id).toBe('1.5');
  });

  it('refuses malformed positions with 400 naming the input', async () => {
    const { task } = await newRunningTask();
    for (const bad of ['abc', '1', '1.', '.1', '1.2.3', '-1.2', '1.99999999999999999']) {
      const res = await http(api.url, `/api/v1/tasks/${task.id}/events`, { key: team.keys.member, headers: { 'last-event-id': bad } });
      expect(res.status, bad).toBe(400);
      expect(res.json.error.code).toBe('validation');
      expect(res.json.error.message).toMatch(/^Last-Event-ID must be an event id like "1\.42"/);
      const q = await http(api.url, `/api/v1/tasks/${task.id}/events?after=${encodeURIComponent(bad)}`, { key: team.keys.member });
      expect(q.status).toBe(400);
      expect(q.json.error.message).toMatch(/after/);
    }
    const unknown = await http(api.url, `/api/v1/tasks/${task.id}/events?format=xml`, { key: team.keys.member });
    expect(unknown.status).toBe(400);
  });

  it('delivers every event exactly once, in order, across repeated reconnects while events stream in', async () => {
    const { task, execution } = await newRunningTask();
    const total = 400;
    const received: string[] = [];
    let seq = 0;
    const producer = (async () => {
      while (seq < total) {
        const batch = seqs(seq + 1, Math.min(total, seq + 7));
        seq += batch.length;
        await appendEvents(api, execution, batch);
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      await finishExecution(api, execution, 'succeeded');
    })();
    let ended = false;
    let reconnects = 0;
    while (!ended) {
      const last = received[received.length - 1];
      const stream = await follow(task.id, last ? { 'last-event-id': last } : {});
      // Read a random number of frames, then drop the connection (a flaky network).
      const budget = 1 + Math.floor(Math.random() * 60);
      for (let i = 0; i < budget; i++) {
        const frame = await stream.next(10_000);
        if (!frame) break;
        if (frame.event === 'transcript') received.push(frame.id!);
        if (frame.event === 'end') {
          ended = true;
          break;
        }
      }
      stream.close();
      reconnects++;
    }
    await producer;
    expect(reconnects).toBeGreaterThan(2);
    expect(received).toEqual(Array.from({ length: total }, (_, i) => `1.${i + 1}`));
  });
});

describe('the subscribe-then-read window', () => {
  it('loses nothing and doubles nothing when events land while the backlog is read', async () => {
    let hook: ((phase: 'before' | 'after') => Promise<void>) | undefined;
    // Settles once the racing read and both of its appends are done: events of one execution
    // arrive in seq order, so the test must not store seq 7 while 5 and 6 are still on their way.
    let raced!: () => void;
    const racedDone = new Promise<void>((resolve) => (raced = resolve));
    const racing = await startTestApi({
      wrapStore: (store: Store) =>
        interpose(store, {
          async listEvents(taskId, after, limit): Promise<EventRecord[]> {
            const current = hook;
            hook = undefined; // only the first read of a follower races
            await current?.('before'); // stored and published before the read: in both
            const page = await store.listEvents(taskId, after, limit);
            await current?.('after'); // stored and published after the read: only live
            if (current) raced();
            return page;
          },
        }),
    });
    try {
      const t = await createTeam(racing, 'race');
      const { task, execution } = await newRunningTask(racing, t);
      await appendEvents(racing, execution, seqs(1, 2));
      hook = async (phase) => {
        if (phase === 'before') await appendEvents(racing, execution, seqs(3, 4));
        else await appendEvents(racing, execution, seqs(5, 6));
      };
      const stream = await follow(task.id, {}, '', racing, t.keys.member);
      await racedDone;
      await appendEvents(racing, execution, seqs(7, 7));
      await finishExecution(racing, execution, 'succeeded');
      const frames = await stream.readToEnd();
      expect(transcriptIds(frames)).toEqual(['1.1', '1.2', '1.3', '1.4', '1.5', '1.6', '1.7']);
      expect(frames[frames.length - 1]!.event).toBe('end');
    } finally {
      open.splice(0).forEach((s) => s.close());
      await eventually(() => racing.hub.followerCount === 0);
      await racing.close();
    }
  });

  it('pages a long backlog (more than one page) without gaps', async () => {
    const { task, execution } = await newRunningTask();
    const total = 2_345;
    for (let from = 1; from <= total; from += 500) await appendEvents(api, execution, seqs(from, Math.min(total, from + 499)));
    await finishExecution(api, execution, 'succeeded');
    const frames = await (await follow(task.id)).readToEnd(10_000);
    const ids = transcriptIds(frames);
    expect(ids).toHaveLength(total);
    expect(ids).toEqual(Array.from({ length: total }, (_, i) => `1.${i + 1}`));

    const json = await http(api.url, `/api/v1/tasks/${task.id}/events?format=json`, { key: team.keys.member });
    expect(json.status).toBe(200);
    expect(json.json).toHaveLength(total);
    expect(EventView.parse(json.json[total - 1])).toMatchObject({ id: `1.${total}`, seq: total });
    const tail = await http(api.url, `/api/v1/tasks/${task.id}/events?format=json&after=1.${total - 2}`, { key: team.keys.member });
    expect(tail.json.map((e: EventView) => e.id)).toEqual([`1.${total - 1}`, `1.${total}`]);
  });
});

describe('slow followers', () => {
  it('disconnects a client that stops reading instead of buffering without bound', async () => {
    const { connect } = await import('node:net');
    const { task, execution } = await newRunningTask();
    const port = Number(new URL(api.url).port);
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(`GET /api/v1/tasks/${task.id}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${team.keys.member}\r\n\r\n`);
    socket.pause(); // never read: the kernel buffers fill, then the server's
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => undefined);
    await eventually(() => api.hub.followerCount === 1, 5000, 'the follower');
    const text = 'x'.repeat(60 * 1024);
    for (let seq = 1; seq <= 600 && api.hub.followerCount > 0; seq += 50) {
      await appendEvents(api, execution, seqs(seq, seq + 49).map((e) => ({ ...e, data: { stream: 'stdout', text } })));
    }
    await eventually(() => api.hub.followerCount === 0, 10_000, 'the slow follower to be dropped');
    socket.resume(); // read what arrived: then the connection is seen closed
    await closed;
  });
});

describe('server shutdown', () => {
  it('ends open streams so closing the app does not hang', async () => {
    const separate = await startTestApi();
    const t = await createTeam(separate, 'shutdown');
    const { task } = await newRunningTask(separate, t);
    const stream = await follow(task.id, {}, '', separate, t.keys.member);
    await stream.next();
    await eventually(() => separate.hub.followerCount === 1);
    await separate.close();
    expect(await stream.next()).toBeUndefined();
    expect(separate.hub.followerCount).toBe(0);
  });
});
