/**
 * `airlock worker`: the data-plane daemon. Recovers what a previous run left behind, dials the
 * server, claims offers up to its concurrency, runs each execution through the runner, and on
 * SIGTERM drains: takes no new work, lets running tasks finish (up to the drain timeout),
 * delivers every report, then exits.
 */
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../lib/clock.js';
import { describeError } from '../protocol/errors.js';
import type { ServerMessage } from '../protocol/worker-messages.js';
import type { Backend, Leftover } from './backends/backend.js';
import { bundledAgentRuntime, defaultAgentCommand } from './backends/agent-command.js';
import { DockerBackend } from './backends/docker/backend.js';
import { DirectBackend } from './backends/direct/index.js';
import type { WorkerConfig } from './config.js';
import { ServerConnection } from './connection/connection.js';
import { Outbox } from './outbox/outbox.js';
import { ExecutionRunner } from './runner.js';
import { createModelRouter } from '../llm/router.js';

export const WORKER_VERSION = '0.1.0';
/** Decline a held offer this long before its claim deadline, so the decline arrives in time. */
const CLAIM_MARGIN_MS = 1000;
/** After the last task of a drain ends, how long to wait for the server to acknowledge the last reports. */
const FINAL_FLUSH_MS = 10_000;

export interface WorkerOptions {
  config: WorkerConfig;
  log: Logger;
  clock?: Clock;
  /** Test seam: a backend other than the configured one. */
  backend?: Backend;
  /** Called once the worker has stopped by itself (key refused). */
  onFatal?: (message: string) => void;
}

export function createBackend(config: WorkerConfig, log: Logger): Backend {
  switch (config.backend) {
    case 'direct':
      return new DirectBackend({
        workspaceRoot: config.workspaceRoot,
        agentCommand: defaultAgentCommand(),
        noCleanup: config.noCleanup,
        setupCommand: config.setupCommand ?? undefined,
        teardownCommand: config.teardownCommand ?? undefined,
        setupTimeoutMs: config.setupTimeoutMs,
        teardownTimeoutMs: config.teardownTimeoutMs,
        log,
      });
    case 'docker':
      return new DockerBackend({
        docker: config.docker!,
        workspaceRoot: config.workspaceRoot,
        runtime: { node: process.execPath, bundle: bundledAgentRuntime() },
        noCleanup: config.noCleanup,
        log,
      });
  }
}

export class Worker {
  private readonly backend: Backend;
  private readonly outbox: Outbox;
  private readonly runner: ExecutionRunner;
  private readonly connection: ServerConnection;
  private readonly log: Logger;
  private draining = false;
  private leftovers: Leftover[] = [];
  /** Offers claimed but not yet confirmed: they count against free slots. */
  private readonly claiming = new Map<string, ServerMessage & { type: 'offer' }>();
  /** Offers received while every slot was busy, held until one frees or the deadline nears. */
  private readonly waiting = new Map<string, { offer: ServerMessage & { type: 'offer' }; timer: NodeJS.Timeout }>();
  private stopped: Promise<void> | undefined;
  private resolveFinished!: () => void;
  /** Resolves once the worker has stopped, for whatever reason (drain, stop, refused key). */
  readonly finished = new Promise<void>((resolve) => (this.resolveFinished = resolve));

  constructor(private readonly options: WorkerOptions) {
    const { config } = options;
    this.log = options.log.child({ worker: config.workerId });
    const clock = options.clock ?? systemClock;
    this.backend = options.backend ?? createBackend(config, this.log);
    this.outbox = new Outbox(config.stateDir);
    this.runner = new ExecutionRunner({
      backend: this.backend,
      outbox: this.outbox,
      workerId: config.workerId,
      stateDir: config.stateDir,
      taskEnv: config.env,
      harnesses: config.harnesses,
      gitCredentials: config.gitCredentials,
      forges: config.forges,
      log: this.log,
      clock,
      notify: () => this.connection.pump(),
      // BYOLLM: built now, so a provider whose key is missing fails the start, naming the variable.
      models: { byollm: config.models ? createModelRouter(config.models, { env: process.env }) : null, serverUrl: config.serverUrl },
    });
    this.connection = new ServerConnection({
      serverUrl: config.serverUrl,
      apiKey: config.apiKey,
      outbox: this.outbox,
      log: this.log,
      handler: {
        hello: () => ({
          worker_id: config.workerId,
          version: WORKER_VERSION,
          backend: this.backend.name,
          labels: config.labels,
          capacity: config.concurrency,
          draining: this.draining,
          running: this.inventory(),
          leftovers: this.leftovers.map((l) => ({ execution_id: l.executionId, epoch: l.epoch, detail: l.detail.slice(0, 1000) })),
        }),
        heartbeat: () => ({ leases: this.runner.leases(), free_slots: this.freeSlots(), draining: this.draining }),
        onMessage: (message) => this.onServerMessage(message),
        onLeaseLost: (executionId) => this.runner.abandon(executionId, 'the server says this worker no longer holds the lease'),
        onRejected: (message) => {
          this.log.fatal(message);
          options.onFatal?.(message);
          void this.stop();
        },
      },
    });
  }

  /** What the hello names: executions running here, and those with reports still to deliver. */
  private inventory(): Array<{ execution_id: string; epoch: number }> {
    const running = this.runner.leases();
    const named = new Set(running.map((r) => r.execution_id));
    return [...running, ...this.outbox.pendingExecutions().filter((p) => !named.has(p.execution_id))];
  }

  private claim(offer: ServerMessage & { type: 'offer' }): void {
    this.claiming.set(offer.offer_id, offer);
    this.connection.send({ type: 'claim', offer_id: offer.offer_id });
  }

  /** A slot freed: claim held offers, oldest first, while slots last. */
  private claimWaiting(): void {
    for (const [offerId, { offer, timer }] of this.waiting) {
      if (this.freeSlots() === 0 || this.draining) return;
      clearTimeout(timer);
      this.waiting.delete(offerId);
      this.claim(offer);
    }
  }

  private declineWaiting(reason: string): void {
    for (const { offer, timer } of this.waiting.values()) {
      clearTimeout(timer);
      this.connection.send({ type: 'decline', offer_id: offer.offer_id, reason });
    }
    this.waiting.clear();
  }

  private freeSlots(): number {
    if (this.draining) return 0;
    return Math.max(0, this.options.config.concurrency - this.runner.running - this.claiming.size);
  }

  /** Check the backend, recover leftovers, and connect. */
  async start(): Promise<void> {
    await this.backend.init();
    const { workerId } = this.options.config;
    const known = this.outbox.executions();
    // Task environments that outlived the previous run (containers): take them over first.
    const reattached = this.backend.reattach ? await this.backend.reattach(workerId, known.map((l) => ({ executionId: l.executionId, epoch: l.epoch }))) : [];
    this.leftovers = await this.backend.recover(workerId);
    for (const leftover of this.leftovers) {
      this.log.warn({ execution: leftover.executionId, wasRunning: leftover.wasRunning, detail: leftover.detail }, 'worker:leftover:found');
    }
    const resumed = new Set<string>();
    for (const found of reattached) {
      const local = known.find((l) => l.executionId === found.executionId);
      if (!local || local.epoch !== found.epoch) continue;
      resumed.add(found.executionId);
      this.log.info({ execution: found.executionId, detail: found.detail }, 'worker:reattached');
      void this.runner.resume(local, found).then(() => {
        this.claimWaiting();
        this.connection.sendHeartbeat();
      });
    }
    // Executions the previous run recorded but the backend found nothing of: the server will
    // reconcile them as lost when our hello does not list them.
    for (const local of known) if (!resumed.has(local.executionId)) this.outbox.forgetExecution(local.executionId);
    this.connection.start();
    this.log.info({ backend: this.backend.name, concurrency: this.options.config.concurrency, server: this.options.config.serverUrl }, 'worker:started');
  }

  private onServerMessage(message: ServerMessage): void {
    switch (message.type) {
      case 'welcome':
        // The server has our leftovers now; they were reported with this hello. Offers held
        // from the previous connection were returned to the queue when it dropped.
        this.leftovers = [];
        for (const { timer } of this.waiting.values()) clearTimeout(timer);
        this.waiting.clear();
        this.claiming.clear();
        for (const action of message.reconcile) {
          // Abandon stops what still runs here. Reports of an execution that already ended
          // locally are left to the replay: the server takes its events (append-only) and
          // refuses the rest with lease_lost, which drops them.
          if (action.action === 'abandon' && this.runner.has(action.execution_id)) this.runner.abandon(action.execution_id, action.reason);
        }
        return;
      case 'offer': {
        if (this.draining || this.runner.has(message.execution.execution_id)) {
          this.connection.send({ type: 'decline', offer_id: message.offer_id, reason: this.draining ? 'worker is draining' : 'already running it' });
          return;
        }
        if (this.freeSlots() > 0) {
          this.claim(message);
          return;
        }
        // The server frees a slot when our `finished` arrives; we free it once the task
        // environment is cleaned up too. Hold the offer until then (within its deadline)
        // instead of bouncing it back to the queue.
        const timer = setTimeout(() => {
          if (this.waiting.delete(message.offer_id)) this.connection.send({ type: 'decline', offer_id: message.offer_id, reason: 'no free slot in time' });
        }, Math.max(0, message.claim_deadline_ms - CLAIM_MARGIN_MS));
        this.waiting.set(message.offer_id, { offer: message, timer });
        return;
      }
      case 'claimed': {
        const offer = this.claiming.get(message.offer_id);
        this.claiming.delete(message.offer_id);
        if (!offer) return;
        if (!message.ok) {
          this.log.info({ offer: message.offer_id, reason: message.reason }, 'claim refused');
          return;
        }
        void this.runner.start(offer.execution, message.llm_token ?? null).then(() => {
          this.claimWaiting();
          this.connection.sendHeartbeat();
        });
        return;
      }
      case 'cancel':
        this.runner.cancel(message.execution_id, message.reason, message.grace_ms);
        return;
      case 'heartbeat_ack':
        for (const id of message.lost) this.runner.abandon(id, 'the server no longer recognises this lease');
        for (const c of message.cancel) this.runner.cancel(c.execution_id, c.reason, this.options.config.cancelGraceMs);
        if (message.llm_tokens) this.runner.setLlmTokens(message.llm_tokens);
        return;
      case 'message':
        this.runner.deliverMessage(message.execution_id, message.message_id, message.text);
        return;
      default:
        return;
    }
  }

  /**
   * Drain (first SIGTERM): take no new work, wait for running tasks up to the drain timeout,
   * stop what remains, deliver every report, exit. On a backend whose task environments outlive
   * the worker (docker), running tasks are detached instead: they keep running, and the next
   * start of this worker reattaches to them.
   */
  drain(): Promise<void> {
    if (this.stopped) return this.stopped;
    this.draining = true;
    this.declineWaiting('worker is draining');
    this.log.info({ running: this.runner.running, timeoutMs: this.options.config.drainTimeoutMs }, 'worker:draining');
    this.connection.sendHeartbeat();
    if (this.backend.reattach) {
      // Task environments survive this process (containers): leave them running for the next
      // start of this worker, which reattaches to them (within the server's lease period).
      this.log.info({ running: this.runner.running }, 'worker:detaching');
      this.stopped = (async () => {
        await this.runner.detachAll();
        await this.finish();
      })();
      return this.stopped;
    }
    this.stopped = (async () => {
      const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), this.options.config.drainTimeoutMs).unref());
      if ((await Promise.race([this.runner.idle().then(() => 'idle' as const), timeout])) === 'timeout') {
        this.log.warn('drain timeout reached; stopping the remaining tasks');
        await this.runner.stopAll('the worker was shut down before the task finished', this.options.config.cancelGraceMs);
      }
      await this.finish();
    })();
    return this.stopped;
  }

  /** Stop now (second signal, or fatal): stop running tasks, flush briefly, exit. */
  stop(): Promise<void> {
    this.draining = true;
    this.declineWaiting('worker is stopping');
    const previous = this.stopped;
    this.stopped = (async () => {
      await this.runner.stopAll('the worker was stopped before the task finished', 0);
      await previous;
      await this.finish();
    })();
    return this.stopped;
  }

  private finishing: Promise<void> | undefined;
  private finish(): Promise<void> {
    this.finishing ??= (async () => {
      if (this.connection.isWelcomed) {
        const flushed = await this.connection.flush(FINAL_FLUSH_MS);
        if (!flushed) this.log.warn({ pending: this.outbox.size }, 'some reports were not acknowledged; they will be sent when this worker starts again');
      }
      this.connection.close();
      await this.backend.close().catch((err: unknown) => this.log.warn({ err: describeError(err) }, 'closing the backend failed'));
      this.outbox.close();
      this.log.info('worker:stopped');
      this.resolveFinished();
    })();
    return this.finishing;
  }
}
