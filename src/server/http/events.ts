/**
 * `GET /api/v1/tasks/:id/events`: a task's transcript, live over server-sent events (or whole, as
 * JSON, with `?format=json`). Each transcript event is sent with `id: <ordinal>.<seq>` so a client
 * resumes with `Last-Event-ID` (or `?after=`); task state changes are `event: task`; once the task
 * is terminal and its transcript sent, `event: end` closes the stream.
 *
 * Invariant — nothing lost, nothing doubled: the follower subscribes to the hub BEFORE reading
 * the stored backlog, queues what the hub delivers meanwhile, and sends only events past the last
 * position it sent. Before `end` it reads the store once more, so events stored before the task
 * finished are all sent even if their live notification raced the task update.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { TERMINAL_TASK_STATES } from '../../protocol/lifecycle.js';
import { EventView } from '../../protocol/task.js';
import type { Principal, ServerContext, TranscriptListener } from '../context.js';
import type { EventRecord, TaskRecord } from '../store/store.js';
import { defineRoute, type AnyRoute } from './route.js';
import { TaskParams, loadTask, renderTask } from './tasks.js';
import { comparePositions, eventView, formatPosition, parsePosition, type EventPosition } from './views.js';

/** Backlog page size: few round trips for long transcripts, bounded memory per follower. */
export const EVENTS_PAGE_SIZE = 1000;
/**
 * A comment line this often keeps idle streams open through proxies (nginx and cloud load
 * balancers cut idle connections at 60 s) and lets clients detect a dead stream with a read
 * timeout of a few intervals.
 */
export const SSE_KEEPALIVE_MS = 15_000;
/** Reconnect delay suggested to EventSource clients (`retry:`): quick, but not a hot loop. */
const SSE_RETRY_MS = 2_000;
/**
 * A follower whose unsent output passes either bound is disconnected: it resumes from the store
 * with Last-Event-ID, so nothing is lost, and a stalled client cannot grow server memory.
 */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
const MAX_PENDING_EVENTS = 20_000;

const EventsQuery = z.strictObject({
  after: z.string().optional().describe('resume after this event id ("<ordinal>.<seq>"); the Last-Event-ID header wins if both are given'),
  format: z.enum(['sse', 'json']).default('sse').describe('`json`: the whole transcript as one JSON array instead of a stream'),
});

export interface EventStreamOptions {
  keepAliveMs: number;
}

/** Open followers, so the server can end them when it closes (they would hold it open forever). */
export class Followers {
  private readonly open = new Set<TranscriptFollower>();
  add(follower: TranscriptFollower): void {
    this.open.add(follower);
  }
  delete(follower: TranscriptFollower): void {
    this.open.delete(follower);
  }
  closeAll(): void {
    for (const follower of [...this.open]) follower.close();
  }
  get size(): number {
    return this.open.size;
  }
}

type Pending = { kind: 'events'; events: EventRecord[] } | { kind: 'task'; task: TaskRecord };

class TranscriptFollower implements TranscriptListener {
  private last: EventPosition | null;
  private readonly pending: Pending[] = [];
  private pendingEvents = 0;
  private live = false;
  /** The last task view sent, to skip repeats (an update queued while its state was read anyway). */
  private lastTaskJson = '';
  private pumping = false;
  private closed = false;
  private unsubscribe: (() => void) | undefined;
  private keepAlive: NodeJS.Timeout | undefined;

  constructor(
    private readonly ctx: ServerContext,
    private readonly principal: Principal,
    private readonly taskId: string,
    private readonly res: ServerResponse,
    after: EventPosition | null,
    private readonly followers: Followers,
    private readonly options: EventStreamOptions,
  ) {
    this.last = after;
  }

  async run(): Promise<void> {
    this.followers.add(this);
    this.res.on('close', () => this.close());
    this.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // nginx would otherwise buffer the stream and deliver it in lumps.
      'x-accel-buffering': 'no',
    });
    this.res.write(`retry: ${SSE_RETRY_MS}\n\n`);
    this.keepAlive = setInterval(() => this.write(': keep-alive\n\n'), this.options.keepAliveMs);
    this.keepAlive.unref();
    // Subscribe first: whatever is published from now on is queued until the backlog is out.
    this.unsubscribe = this.ctx.hub.subscribe(this.taskId, this);
    try {
      const task = await this.ctx.store.getTask(this.principal.teamId, this.taskId);
      if (!task || this.closed) return this.close();
      await this.sendBacklog();
      if (await this.sendTask(task)) return;
      this.live = true;
      await this.pump();
    } catch (err) {
      this.fail(err);
    }
  }

  onEvents(events: EventRecord[]): void {
    if (this.closed) return;
    this.pending.push({ kind: 'events', events });
    this.pendingEvents += events.length;
    if (this.pendingEvents > MAX_PENDING_EVENTS) return this.shed('too many events queued');
    if (this.live) void this.pump().catch((err: unknown) => this.fail(err));
  }

  onTask(task: TaskRecord): void {
    if (this.closed) return;
    this.pending.push({ kind: 'task', task });
    if (this.live) void this.pump().catch((err: unknown) => this.fail(err));
  }

  /** End the stream without `end` (client gone, server closing, or an error): clients resume. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.keepAlive);
    this.unsubscribe?.();
    this.followers.delete(this);
    if (!this.res.writableEnded) this.res.end();
  }

  private fail(err: unknown): void {
    this.ctx.log.warn({ err, taskId: this.taskId }, 'http:events:stream-failed');
    this.close();
  }

  /** Drop a follower that does not keep up: destroy, not end, so its buffered output is freed now. */
  private shed(why: string): void {
    this.ctx.log.warn({ taskId: this.taskId, why }, 'http:events:follower-too-slow');
    this.close();
    this.res.destroy();
  }

  /** Deliver queued items in order; one pump at a time, so events and task updates never interleave. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (!this.closed && this.pending.length > 0) {
        const item = this.pending.shift()!;
        if (item.kind === 'events') {
          this.pendingEvents -= item.events.length;
          this.writeEvents(item.events);
        } else if (await this.sendTask(item.task)) {
          return;
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  /** Stored events after the last position sent, page by page, waiting for the client to drain. */
  private async sendBacklog(): Promise<void> {
    for (;;) {
      const page = await this.ctx.store.listEvents(this.taskId, this.last, EVENTS_PAGE_SIZE);
      if (this.closed) return;
      this.writeEvents(page);
      await this.drained();
      if (page.length < EVENTS_PAGE_SIZE) return;
    }
  }

  /** Send the task's state; when it is terminal, finish the stream. Returns true if it ended. */
  private async sendTask(task: TaskRecord): Promise<boolean> {
    const json = JSON.stringify(await renderTask(this.ctx, task));
    if (this.closed) return true;
    if (json !== this.lastTaskJson) this.write(`event: task\ndata: ${json}\n\n`);
    this.lastTaskJson = json;
    if (!TERMINAL_TASK_STATES.has(task.state)) return false;
    await this.sendBacklog();
    if (this.closed) return true;
    this.write(`event: end\ndata: ${JSON.stringify({ task_id: task.id, state: task.state })}\n\n`);
    this.close();
    return true;
  }

  private writeEvents(events: readonly EventRecord[]): void {
    let out = '';
    for (const event of events) {
      if (this.last && comparePositions(event, this.last) <= 0) continue; // already sent
      this.last = { ordinal: event.ordinal, seq: event.seq };
      out += `id: ${formatPosition(event)}\nevent: transcript\ndata: ${JSON.stringify(eventView(event))}\n\n`;
    }
    if (out) this.write(out);
  }

  private write(chunk: string): void {
    if (this.closed) return;
    this.res.write(chunk);
    if (this.res.writableLength > MAX_BUFFERED_BYTES) this.shed('client is not reading');
  }

  private drained(): Promise<void> {
    if (this.closed || !this.res.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.on('drain', done);
      this.res.on('close', done);
    });
  }
}

function resumePosition(header: string | string[] | undefined, after: string | undefined): EventPosition | null {
  const lastEventId = Array.isArray(header) ? header[0] : header;
  if (lastEventId !== undefined && lastEventId !== '') return parsePosition(lastEventId, 'Last-Event-ID');
  if (after !== undefined) return parsePosition(after, 'after');
  return null;
}

export function eventRoutes(ctx: ServerContext, followers: Followers, options: EventStreamOptions): AnyRoute[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/api/v1/tasks/:id/events',
      operationId: 'taskEvents',
      summary: "Follow a task's transcript",
      description:
        'Server-sent events. `event: transcript` carries an EventView and `id: <ordinal>.<seq>`; `event: task` a TaskView whenever the task changes; ' +
        '`event: end` follows once the task is terminal and its whole transcript was sent. Resume with the Last-Event-ID header or `?after=`. ' +
        `A comment line is sent every ${SSE_KEEPALIVE_MS / 1000} s. With \`?format=json\`: the transcript as one JSON array.`,
      tag: 'tasks',
      auth: 'user',
      params: TaskParams,
      query: EventsQuery,
      stream: true,
      headers: { 'Last-Event-ID': 'resume after this event id ("<ordinal>.<seq>"), as EventSource sends it on reconnect' },
      responses: {
        200: {
          description: 'The transcript: a stream of events, or one JSON array.',
          content: { 'text/event-stream': null, 'application/json': z.array(EventView) },
        },
      },
      handler: async ({ principal, params, query, request, reply }) => {
        const task = await loadTask(ctx, principal, params.id);
        const after = resumePosition(request.headers['last-event-id'], query.after);
        if (query.format === 'json') {
          const events: EventView[] = [];
          let position = after;
          for (;;) {
            const page = await ctx.store.listEvents(task.id, position, EVENTS_PAGE_SIZE);
            for (const event of page) events.push(eventView(event));
            const tail = page[page.length - 1];
            if (!tail || page.length < EVENTS_PAGE_SIZE) break;
            position = { ordinal: tail.ordinal, seq: tail.seq };
          }
          return events;
        }
        reply.hijack();
        await new TranscriptFollower(ctx, principal, task.id, reply.raw, after, followers, options).run();
        return undefined;
      },
    }),
  ];
}

/** Ends every open stream when the app closes (clients reconnect and resume elsewhere). */
export function closeFollowersOnShutdown(app: FastifyInstance, followers: Followers): void {
  app.addHook('preClose', (done) => {
    followers.closeAll();
    done();
  });
}
