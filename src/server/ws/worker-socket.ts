/**
 * The server's end of the worker protocol (docs/protocol.md): authenticates the upgrade with a
 * `worker` key, expects `hello` first, reconciles the worker's inventory, then handles claims,
 * heartbeats and reports. Messages of one connection are handled strictly in order (a report's
 * events are stored before the same worker's `finished` is applied).
 *
 * Hostile input never takes the server down: a frame that is not JSON, not a known message, or
 * out of order closes only that connection with a protocol error.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import { newId } from '../../lib/ids.js';
import { describeError } from '../../protocol/errors.js';
import {
  CLOSE_CODES,
  MAX_WS_MESSAGE_BYTES,
  PROTOCOL_VERSION,
  WORKER_CONNECT_PATH,
  WorkerMessage,
  type ExecutionEvents,
  type ExecutionFinished,
  type ExecutionStarted,
  type Heartbeat,
  type Hello,
  type ServerMessage,
} from '../../protocol/worker-messages.js';
import type { ServerContext } from '../context.js';
import { recordWorkerReportedUsage } from '../llm/worker-usage.js';
import type { Dispatcher } from '../dispatch/dispatcher.js';
import { budgetStopMessage, capArtifacts, isBudgetStop } from '../dispatch/results.js';
import type { WorkerRegistry, WorkerSession } from './registry.js';

/** A connection that has not said hello by then is closed: sockets are not free. */
const HELLO_TIMEOUT_MS = 10_000;

type Ctx = Omit<ServerContext, 'dispatch' | 'workers'>;

/** A frame's payload as text (ws hands over a Buffer, a list of Buffers, or an ArrayBuffer). */
export function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

class ProtocolViolation extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function attachWorkerSockets(app: FastifyInstance, ctx: Ctx, registry: WorkerRegistry, dispatcher: Dispatcher): { close(): void } {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_WS_MESSAGE_BYTES });
  const log = ctx.log.child({ component: 'ws' });

  const reject = (socket: Duplex, status: number, code: string, message: string) => {
    const body = JSON.stringify({ error: { code, message } });
    socket.end(
      `HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : status === 403 ? 'Forbidden' : 'Not Found'}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  };

  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const path = (request.url ?? '').split('?')[0];
    if (path !== WORKER_CONNECT_PATH) {
      reject(socket, 404, 'not_found', `no WebSocket endpoint at ${path}; workers connect to ${WORKER_CONNECT_PATH}`);
      return;
    }
    const header = request.headers.authorization ?? '';
    const token = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
    void ctx
      .authenticate(token)
      .then((principal) => {
        if (!principal) {
          reject(socket, 401, 'unauthenticated', 'missing, malformed or revoked API key — pass a worker key as "Authorization: Bearer <key>"');
          return;
        }
        if (principal.role !== 'worker') {
          reject(socket, 403, 'forbidden', `a ${principal.role} key cannot connect a worker — create one with "airlock admin create-api-key --role worker"`);
          return;
        }
        wss.handleUpgrade(request, socket, head, (ws) => {
          new WorkerConnection(ws, principal.teamId, principal.keyId, ctx, registry, dispatcher, log).begin();
        });
      })
      .catch((err: unknown) => {
        log.error({ err }, 'worker authentication failed');
        socket.destroy();
      });
  };

  app.server.on('upgrade', onUpgrade);
  return {
    close() {
      app.server.off('upgrade', onUpgrade);
      for (const client of wss.clients) client.close(CLOSE_CODES.serverShuttingDown, 'server shutting down');
      wss.close();
    },
  };
}

class WorkerConnection {
  private session: WorkerSession | undefined;
  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  private helloTimer: NodeJS.Timeout | undefined;
  private log: Logger;

  constructor(
    private readonly ws: WebSocket,
    private readonly teamId: string,
    private readonly keyId: string,
    private readonly ctx: Ctx,
    private readonly registry: WorkerRegistry,
    private readonly dispatcher: Dispatcher,
    log: Logger,
  ) {
    this.log = log;
  }

  begin(): void {
    this.helloTimer = setTimeout(() => this.fail('protocol', `no hello within ${HELLO_TIMEOUT_MS} ms`), HELLO_TIMEOUT_MS);
    this.ws.on('message', (data, isBinary) => {
      if (this.closed) return;
      // Handle in arrival order; one message's failure closes the connection, never the server.
      this.queue = this.queue.then(() => this.onMessage(data, isBinary)).catch((err: unknown) => this.onError(err));
    });
    this.ws.on('error', (err) => {
      this.ctx.metrics.wsProtocolErrors.inc({ code: 'frame' });
      this.log.warn({ err: describeError(err), worker: this.session?.workerId }, 'worker:ws:frame-error');
    });
    this.ws.on('close', () => {
      this.closed = true;
      clearTimeout(this.helloTimer);
      this.queue = this.queue.then(() => this.onClose()).catch((err: unknown) => this.log.error({ err }, 'cleanup after close failed'));
    });
  }

  private send(message: ServerMessage): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(JSON.stringify(message));
  }

  private fail(code: string, message: string): void {
    if (this.closed) return;
    this.ctx.metrics.wsProtocolErrors.inc({ code });
    this.log.warn({ worker: this.session?.workerId, code, message }, 'worker:ws:protocol-error');
    this.send({ type: 'error', code, message });
    this.closed = true;
    this.ws.close(code === 'unsupported_protocol' ? CLOSE_CODES.unsupportedProtocol : CLOSE_CODES.protocolError, message.slice(0, 120));
  }

  private onError(err: unknown): void {
    if (err instanceof ProtocolViolation) {
      this.fail(err.code, err.message);
      return;
    }
    this.log.error({ err, worker: this.session?.workerId }, 'handling a worker message failed');
    this.fail('internal', 'the server could not handle a message; reconnect and retry');
  }

  private async onMessage(data: RawData, isBinary: boolean): Promise<void> {
    if (this.closed) return;
    if (isBinary) throw new ProtocolViolation('protocol', 'binary frames are not part of the protocol; send JSON text');
    let json: unknown;
    try {
      json = JSON.parse(rawText(data));
    } catch {
      throw new ProtocolViolation('protocol', 'a frame was not valid JSON');
    }
    const parsed = WorkerMessage.safeParse(json);
    if (!parsed.success) {
      const type = typeof json === 'object' && json !== null && 'type' in json ? String(json.type) : '(none)';
      const issue = parsed.error.issues[0];
      throw new ProtocolViolation(
        'protocol',
        `invalid message of type "${type.slice(0, 40)}": ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'unknown shape'}`,
      );
    }
    const message = parsed.data;
    if (message.type === 'hello') {
      if (this.session) throw new ProtocolViolation('protocol', 'hello was already received on this connection');
      await this.onHello(message);
      return;
    }
    const session = this.session;
    if (!session) throw new ProtocolViolation('protocol', `"${message.type}" before hello; say hello first`);
    switch (message.type) {
      case 'claim':
        return this.onClaim(session, message.offer_id);
      case 'decline':
        return this.onDecline(session, message.offer_id, message.reason);
      case 'heartbeat':
        return this.onHeartbeat(session, message);
      case 'execution.started':
        return this.onStarted(session, message);
      case 'execution.events':
        return this.onEvents(session, message);
      case 'execution.finished':
        return this.onFinished(session, message);
    }
  }

  private async onHello(hello: Hello): Promise<void> {
    clearTimeout(this.helloTimer);
    if (hello.protocol !== PROTOCOL_VERSION) {
      throw new ProtocolViolation('unsupported_protocol', `this server speaks protocol ${PROTOCOL_VERSION}, the worker ${hello.protocol}; upgrade the older side`);
    }
    const { store, clock, settings } = this.ctx;
    const now = clock.now();
    this.log = this.log.child({ worker: hello.worker_id });
    const session: WorkerSession = {
      teamId: this.teamId,
      workerId: hello.worker_id,
      sessionId: newId('wsn'),
      socket: this.ws,
      capacity: hello.capacity,
      draining: hello.draining,
      offers: new Map(),
      executions: new Map(),
      send: (m) => this.send(m),
    };
    const previous = this.registry.add(session);
    if (previous) {
      previous.socket.close(CLOSE_CODES.replaced, 'replaced by a newer connection of the same worker');
      for (const ended of await store.expireOffersOfWorker(this.teamId, hello.worker_id, now)) this.dispatcher.offerEnded(ended);
    }
    this.session = session;
    await store.upsertWorker({
      teamId: this.teamId,
      workerId: hello.worker_id,
      version: hello.version,
      backend: hello.backend,
      labels: hello.labels,
      capacity: hello.capacity,
      connected: true,
      draining: hello.draining,
      connectedAt: now,
      lastSeenAt: now,
    });
    // Leftovers: executions the worker found from a previous run of itself and stopped.
    for (const leftover of hello.leftovers) {
      const { result, ended } = await store.finishExecution({
        executionId: leftover.execution_id,
        epoch: leftover.epoch,
        workerId: hello.worker_id,
        outcome: 'failed',
        exitCode: null,
        failureReason: 'orphaned',
        message: `the worker restarted and found this execution left over: ${leftover.detail}`,
        now,
      });
      if (ended) this.dispatcher.executionEnded(ended);
      await store.appendAudit({
        teamId: this.teamId,
        actor: `worker:${hello.worker_id}`,
        action: 'worker.leftover',
        target: leftover.execution_id,
        detail: { detail: leftover.detail, applied: result },
        at: now,
      });
      this.log.warn({ execution: leftover.execution_id, detail: leftover.detail }, 'worker reported a leftover execution');
    }
    const reconciled = await store.reconcileWorker({
      teamId: this.teamId,
      workerId: hello.worker_id,
      running: hello.running.map((r) => ({ executionId: r.execution_id, epoch: r.epoch })),
      now,
      leaseExpiresAt: now + settings.leaseTtlMs,
      lostMessage: `worker "${hello.worker_id}" reconnected without this execution (it restarted and lost it) — submit the task again`,
    });
    for (const ended of reconciled.ended) this.dispatcher.executionEnded(ended);
    // Executions the worker still names (a container it reattached to, reports it replays) that
    // are no longer its: it stops and removes them on the welcome's word — on the audit trail.
    for (const executionId of reconciled.abandon) {
      await store.appendAudit({
        teamId: this.teamId,
        actor: `worker:${hello.worker_id}`,
        action: 'worker.execution.abandoned',
        target: executionId,
        detail: { detail: 'named by the worker on reconnect, but no longer assigned to it: the worker stops it and removes its task environment' },
        at: now,
      });
    }
    for (const executionId of reconciled.keep) {
      const execution = await store.getExecution(executionId);
      if (execution) session.executions.set(executionId, { taskId: execution.taskId, ordinal: execution.ordinal, epoch: execution.epoch });
    }
    this.send({
      type: 'welcome',
      protocol: PROTOCOL_VERSION,
      session_id: session.sessionId,
      heartbeat_ms: Math.max(1, Math.floor(settings.leaseTtlMs / 4)),
      lease_ttl_ms: settings.leaseTtlMs,
      reconcile: [
        ...reconciled.keep.map((id) => ({ execution_id: id, action: 'continue' as const, reason: 'you hold the lease' })),
        ...reconciled.abandon.map((id) => ({ execution_id: id, action: 'abandon' as const, reason: 'the server no longer assigns this execution to you' })),
      ],
    });
    // Cancellations requested while the worker was away.
    for (const execution of await store.pendingCancels(this.teamId, hello.worker_id)) {
      this.send({ type: 'cancel', execution_id: execution.id, epoch: execution.epoch, reason: 'cancelled by a user', grace_ms: settings.cancelGraceMs });
    }
    this.ctx.metrics.connectedWorkers.set(this.registry.size);
    await store.appendAudit({
      teamId: this.teamId,
      actor: `worker:${hello.worker_id}`,
      action: 'worker.connect',
      target: hello.worker_id,
      detail: { version: hello.version, backend: hello.backend, key: this.keyId, running: hello.running.length },
      at: now,
    });
    this.log.info({ capacity: hello.capacity, running: hello.running.length, keep: reconciled.keep.length }, 'worker:ws:connected');
    this.dispatcher.wake('worker connected', { teamId: this.teamId, workerId: hello.worker_id });
  }

  private async onClaim(session: WorkerSession, offerId: string): Promise<void> {
    const { store, clock, settings, metrics } = this.ctx;
    const now = clock.now();
    const result = await store.claimOffer({ offerId, workerId: session.workerId, teamId: session.teamId, now, leaseExpiresAt: now + settings.leaseTtlMs });
    session.offers.delete(offerId);
    if (result.ok) {
      session.executions.set(result.execution.id, { taskId: result.task.id, ordinal: result.execution.ordinal, epoch: result.execution.epoch });
      metrics.dispatchLatency.observe((now - result.task.createdAt) / 1000);
      const llmToken = this.ctx.llmTokens?.issue(result.execution.id, now);
      this.send({ type: 'claimed', offer_id: offerId, ok: true, reason: null, ...(llmToken ? { llm_token: llmToken } : {}) });
    } else {
      this.send({ type: 'claimed', offer_id: offerId, ok: false, reason: result.reason });
      this.dispatcher.wake('claim refused', { teamId: session.teamId });
    }
  }

  private async onDecline(session: WorkerSession, offerId: string, reason: string): Promise<void> {
    const ended = await this.ctx.store.declineOffer({
      offerId,
      workerId: session.workerId,
      teamId: session.teamId,
      now: this.ctx.clock.now(),
      message: `declined by worker "${session.workerId}": ${reason}`,
    });
    session.offers.delete(offerId);
    // No wake here: re-offering at once to a worker that just declined would loop; the next
    // periodic pass offers the task again (to this or another worker).
    if (ended) this.dispatcher.offerEnded(ended);
  }

  private async onHeartbeat(session: WorkerSession, heartbeat: Heartbeat): Promise<void> {
    const { store, clock, settings } = this.ctx;
    const now = clock.now();
    const wasDraining = session.draining;
    session.draining = heartbeat.draining;
    const { renewed, lost } = await store.renewLeases({
      teamId: session.teamId,
      workerId: session.workerId,
      leases: heartbeat.leases.map((l) => ({ executionId: l.execution_id, epoch: l.epoch })),
      now,
      leaseExpiresAt: now + settings.leaseTtlMs,
    });
    for (const id of lost) {
      session.executions.delete(id);
      this.ctx.llmTokens?.forget(id);
    }
    // LLM tokens past half their life are renewed with the leases they belong to.
    const llmTokens = this.ctx.llmTokens?.renewals(renewed, now) ?? [];
    const cancels = await store.pendingCancels(session.teamId, session.workerId);
    await store.touchWorker(session.teamId, session.workerId, now, heartbeat.draining);
    this.send({
      type: 'heartbeat_ack',
      renewed,
      lost,
      cancel: cancels.map((e) => ({ execution_id: e.id, reason: 'cancelled by a user' })),
      ...(llmTokens.length > 0 ? { llm_tokens: llmTokens } : {}),
    });
    if (wasDraining && !heartbeat.draining) this.dispatcher.wake('worker stopped draining', { teamId: session.teamId, workerId: session.workerId });
  }

  private ack(id: string, error: { code: string; message: string } | null): void {
    this.send({ type: 'ack', id, ok: error === null, error });
  }

  private leaseLost(id: string, executionId: string): void {
    this.ack(id, {
      code: 'lease_lost',
      message: `execution ${executionId} is no longer yours (its lease expired, it was reassigned, or it already ended); stop it and drop its reports`,
    });
  }

  private async onStarted(session: WorkerSession, message: ExecutionStarted): Promise<void> {
    const { store, clock, settings } = this.ctx;
    const now = clock.now();
    const result = await store.markStarted({
      executionId: message.execution_id,
      epoch: message.epoch,
      workerId: session.workerId,
      now,
      leaseExpiresAt: now + settings.leaseTtlMs,
    });
    if (result === 'lease_lost') return this.leaseLost(message.id, message.execution_id);
    this.ack(message.id, null);
    const known = session.executions.get(message.execution_id);
    if (result === 'ok' && known && this.ctx.hub.hasFollowers(known.taskId)) {
      const task = await store.getTask(session.teamId, known.taskId);
      if (task) this.ctx.hub.publishTaskUpdate(task);
    }
  }

  private async onEvents(session: WorkerSession, message: ExecutionEvents): Promise<void> {
    let known = session.executions.get(message.execution_id);
    if (!known || known.epoch !== message.epoch) {
      // Not (or no longer) held: still accept the transcript of an execution this worker ran in
      // that epoch (events are append-only and change no state), refuse anything else.
      const execution = await this.ctx.store.getExecution(message.execution_id);
      if (!execution || execution.teamId !== session.teamId || execution.workerId !== session.workerId || execution.epoch !== message.epoch) {
        return this.leaseLost(message.id, message.execution_id);
      }
      known = { taskId: execution.taskId, ordinal: execution.ordinal, epoch: execution.epoch };
    }
    const inserted = await this.ctx.store.appendEvents(
      { executionId: message.execution_id, taskId: known.taskId, ordinal: known.ordinal },
      message.events,
    );
    this.ctx.metrics.eventsIngested.inc(inserted);
    this.ack(message.id, null);
    if (inserted > 0) {
      this.ctx.hub.publish(
        known.taskId,
        message.events.map((e) => ({ ...e, taskId: known.taskId, executionId: message.execution_id, ordinal: known.ordinal })),
      );
    }
  }

  /** Artifacts and usage are recorded with the finish, in its transaction (so a replay is a no-op). */
  private async onFinished(session: WorkerSession, message: ExecutionFinished): Promise<void> {
    const { result, ended } = await this.ctx.store.finishExecution({
      executionId: message.execution_id,
      epoch: message.epoch,
      workerId: session.workerId,
      outcome: message.outcome,
      exitCode: message.exit_code,
      failureReason: message.failure_reason,
      message: (await this.budgetMessage(session, message)) ?? message.message,
      now: this.ctx.clock.now(),
      artifacts: message.artifacts ? capArtifacts(message.artifacts) : null,
      usage: message.usage ?? null,
    });
    if (result === 'lease_lost') return this.leaseLost(message.id, message.execution_id);
    this.ack(message.id, null);
    session.executions.delete(message.execution_id);
    this.ctx.llmTokens?.forget(message.execution_id);
    if (result === 'ok' && ended && message.usage) {
      await this.ctx.llmUsage?.flush(message.execution_id);
      await recordWorkerReportedUsage(this.ctx.store, {
        teamId: session.teamId,
        taskId: ended.task.id,
        executionId: message.execution_id,
        usage: message.usage,
        now: this.ctx.clock.now(),
      }).catch((err: unknown) => this.log.error({ err: describeError(err), execution: message.execution_id }, 'llm:usage:record-failed'));
    }
    if (ended) this.dispatcher.executionEnded(ended);
  }

  /** For a run a budget stopped: the words that say so (which budget, where the work is). */
  private async budgetMessage(session: WorkerSession, message: ExecutionFinished): Promise<string | undefined> {
    if (!isBudgetStop(message.artifacts?.stop_reason)) return undefined;
    const taskId = session.executions.get(message.execution_id)?.taskId ?? (await this.ctx.store.getExecution(message.execution_id))?.taskId;
    const task = taskId === undefined ? undefined : await this.ctx.store.getTask(session.teamId, taskId);
    if (!task) return undefined;
    return budgetStopMessage(task.id, task.budget, message.artifacts, message.message)?.slice(0, 4000);
  }

  private async onClose(): Promise<void> {
    const session = this.session;
    if (!session) return;
    const current = this.registry.remove(session);
    this.ctx.metrics.connectedWorkers.set(this.registry.size);
    if (!current) return; // replaced by a newer connection, which owns the worker's state now
    const now = this.ctx.clock.now();
    // Unclaimed offers go straight back to the queue; running executions keep their lease
    // until it expires, giving the worker time to reconnect.
    for (const ended of await this.ctx.store.expireOffersOfWorker(session.teamId, session.workerId, now)) this.dispatcher.offerEnded(ended);
    await this.ctx.store.markWorkerDisconnected(session.teamId, session.workerId, now);
    this.log.info('worker:ws:disconnected');
    this.dispatcher.wake('worker disconnected', { teamId: session.teamId });
  }
}
