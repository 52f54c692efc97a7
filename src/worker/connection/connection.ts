/**
 * The worker's one outbound connection to the control plane: dial, say hello, keep it alive,
 * pump the outbox, and redial with capped exponential backoff and full jitter whenever it
 * drops. It never listens on a port.
 *
 * It is a small reconcile loop: desired state "connected and welcomed"; every event (close,
 * error, read timeout) leads back to `scheduleConnect`. A connection that hears nothing from the
 * server for a whole lease period is presumed dead and replaced (no stream hangs forever).
 *
 * Outbox pumping: reports are sent in outbox order with at most MAX_IN_FLIGHT unacknowledged;
 * after every reconnect, sending restarts from the oldest unacknowledged report.
 */
import type { Logger } from 'pino';
import WebSocket from 'ws';
import { Backoff } from '../../lib/backoff.js';
import { describeError } from '../../protocol/errors.js';
import {
  CLOSE_CODES,
  MAX_WS_MESSAGE_BYTES,
  ServerMessage,
  WORKER_CONNECT_PATH,
  type Hello,
  type Heartbeat,
  type ServerMessage as ServerMessageType,
  type WorkerMessage,
} from '../../protocol/worker-messages.js';
import type { Outbox } from '../outbox/outbox.js';

/** Unacknowledged reports on the wire at once: enough to fill a loopback round trip, bounded so a slow server is not flooded. */
const MAX_IN_FLIGHT = 64;
/** Reports read from the outbox per pump step. */
const PUMP_BATCH = 64;
/** Reconnect backoff: first retry within half a second, never waiting more than 30 s. */
const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 30_000;

export interface ConnectionHandler {
  hello(): Omit<Hello, 'type' | 'protocol'>;
  heartbeat(): Omit<Heartbeat, 'type'>;
  /** Every server message after the welcome (and the welcome itself). */
  onMessage(message: ServerMessageType): void;
  /** The server refused a report because the execution is no longer this worker's. */
  onLeaseLost(executionId: string): void;
  /** Fatal: the server refused our key. The worker should stop. */
  onRejected(message: string): void;
}

export interface ConnectionOptions {
  serverUrl: string;
  apiKey: string;
  outbox: Outbox;
  handler: ConnectionHandler;
  log: Logger;
  /** Test seam: backoff randomness. */
  random?: () => number;
}

export class ServerConnection {
  private ws: WebSocket | undefined;
  private welcomed = false;
  private stopped = false;
  private connectTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readTimer: NodeJS.Timeout | undefined;
  private leaseTtlMs = 30_000;
  private readonly backoff: Backoff;
  /** Highest outbox position sent on this connection. */
  private sentPosition = 0;
  private readonly inFlight = new Map<string, string>(); // report id → execution id
  private idleWaiters: Array<() => void> = [];
  private readonly log: Logger;

  constructor(private readonly options: ConnectionOptions) {
    this.backoff = new Backoff({ baseMs: BACKOFF_BASE_MS, capMs: BACKOFF_CAP_MS, ...(options.random ? { random: options.random } : {}) });
    this.log = options.log.child({ component: 'connection' });
  }

  get isWelcomed(): boolean {
    return this.welcomed;
  }

  start(): void {
    this.connect();
  }

  private endpoint(): string {
    const url = new URL(WORKER_CONNECT_PATH, this.options.serverUrl);
    url.protocol = url.protocol === 'https:' ? 'wss:' : url.protocol === 'http:' ? 'ws:' : url.protocol;
    return url.toString();
  }

  private connect(): void {
    if (this.stopped) return;
    const ws = new WebSocket(this.endpoint(), {
      headers: { Authorization: `Bearer ${this.options.apiKey}` },
      maxPayload: MAX_WS_MESSAGE_BYTES,
      handshakeTimeout: 10_000,
    });
    this.ws = ws;
    ws.on('open', () => {
      this.log.debug('worker:ws:open');
      const hello = this.options.handler.hello();
      this.sendRaw({ type: 'hello', protocol: 1, ...hello });
      this.armReadTimeout();
    });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => {
        let message = body;
        try {
          message = (JSON.parse(body) as { error?: { message?: string } }).error?.message ?? body;
        } catch {
          /* not JSON: show it as it is */
        }
        if (res.statusCode === 401 || res.statusCode === 403) {
          this.options.handler.onRejected(`the server refused this worker's API key (HTTP ${res.statusCode}): ${message}`);
          return;
        }
        this.log.warn({ status: res.statusCode, message }, 'worker:ws:handshake-refused');
      });
      ws.terminate();
    });
    ws.on('message', (data: Buffer) => this.onFrame(data.toString('utf8')));
    ws.on('error', (err) => this.log.warn({ err: describeError(err) }, 'worker:ws:error'));
    ws.on('close', (code, reason) => {
      if (this.ws !== ws) return;
      this.onDisconnected(code, reason.toString());
    });
  }

  private onDisconnected(code: number, reason: string): void {
    this.welcomed = false;
    this.ws = undefined;
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.readTimer);
    this.inFlight.clear();
    this.sentPosition = 0;
    if (this.stopped) return;
    const delay = this.backoff.next();
    const level = code === CLOSE_CODES.protocolError ? 'error' : 'warn';
    this.log[level]({ code, reason, retryInMs: delay, attempt: this.backoff.attempts }, 'worker:ws:reconnecting');
    this.connectTimer = setTimeout(() => this.connect(), delay);
  }

  private armReadTimeout(): void {
    clearTimeout(this.readTimer);
    // A frame can still arrive during the close handshake: a stopped connection arms nothing.
    if (this.stopped) return;
    this.readTimer = setTimeout(() => {
      this.log.warn({ silentForMs: this.leaseTtlMs }, 'no message from the server for a whole lease period; reconnecting');
      this.ws?.terminate();
    }, this.leaseTtlMs);
  }

  private onFrame(text: string): void {
    this.armReadTimeout();
    let parsed: ServerMessageType;
    try {
      const result = ServerMessage.safeParse(JSON.parse(text));
      if (!result.success) {
        this.log.error({ issue: result.error.issues[0]?.message }, 'the server sent a message this worker does not understand; ignoring it (is the server newer?)');
        return;
      }
      parsed = result.data;
    } catch {
      this.log.error('the server sent a frame that is not JSON; ignoring it');
      return;
    }
    switch (parsed.type) {
      case 'welcome':
        this.welcomed = true;
        this.backoff.reset();
        this.leaseTtlMs = parsed.lease_ttl_ms;
        clearInterval(this.heartbeatTimer);
        this.heartbeatTimer = setInterval(() => this.sendHeartbeat(), parsed.heartbeat_ms);
        this.armReadTimeout();
        this.log.info({ session: parsed.session_id, reconcile: parsed.reconcile.length }, 'worker:ws:connected');
        this.options.handler.onMessage(parsed);
        this.pump();
        return;
      case 'ack': {
        const executionId = this.inFlight.get(parsed.id);
        this.inFlight.delete(parsed.id);
        if (!parsed.ok && parsed.error?.code === 'lease_lost' && executionId) {
          this.log.warn({ execution: executionId, message: parsed.error.message }, 'worker:lease:lost');
          this.options.outbox.ack(parsed.id);
          this.options.handler.onLeaseLost(executionId);
        } else if (!parsed.ok) {
          // Any other refusal is a bug on one side: keep the report (it will be retried after a reconnect) and say so.
          this.log.error({ id: parsed.id, error: parsed.error }, 'the server refused a report');
        } else {
          this.options.outbox.ack(parsed.id);
        }
        this.pump();
        this.checkIdle();
        return;
      }
      case 'error':
        this.log.error({ code: parsed.code, message: parsed.message }, 'the server reported a protocol error');
        return;
      default:
        this.options.handler.onMessage(parsed);
    }
  }

  private sendRaw(message: WorkerMessage): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(message));
    return true;
  }

  /** Send a message that needs no outbox (claim, decline, heartbeat). Dropped if disconnected. */
  send(message: WorkerMessage): boolean {
    if (!this.welcomed) return false;
    return this.sendRaw(message);
  }

  sendHeartbeat(): void {
    this.send({ type: 'heartbeat', ...this.options.handler.heartbeat() });
  }

  /** New reports are in the outbox: send what the in-flight window allows. */
  pump(): void {
    if (!this.welcomed) return;
    while (this.inFlight.size < MAX_IN_FLIGHT) {
      const batch = this.options.outbox.pending(this.sentPosition, Math.min(PUMP_BATCH, MAX_IN_FLIGHT - this.inFlight.size));
      if (batch.length === 0) return;
      for (const { position, message } of batch) {
        if (!this.sendRaw(message)) return;
        this.sentPosition = position;
        this.inFlight.set(message.id, message.execution_id);
      }
    }
  }

  private checkIdle(): void {
    if (this.options.outbox.size > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Resolves when every report has been acknowledged, or after `timeoutMs`. Returns whether it emptied. */
  async flush(timeoutMs: number): Promise<boolean> {
    if (this.options.outbox.size === 0) return true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  close(): void {
    this.stopped = true;
    clearTimeout(this.connectTimer);
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.readTimer);
    this.ws?.close(1000, 'worker stopping');
    this.ws = undefined;
  }
}
