/**
 * The dispatcher: one reconcile loop that offers queued tasks to connected workers with free
 * slots, and two sweeps that return unclaimed offers to the queue and end executions whose
 * lease ran out. Anything that may change the answer (a task created or re-queued, a worker
 * connected, a slot freed) calls `wake(reason)`; wakes that arrive while a pass runs coalesce
 * into one more pass, so a burst of a thousand creates costs a handful of passes, not a
 * thousand.
 *
 * Invariant: a task is offered only through `store.offerTasks`, which is atomic, so two loops
 * (two server replicas on PostgreSQL) never offer the same task twice; the claim step then
 * decides ownership.
 */
import type { Logger } from 'pino';
import { newId } from '../../lib/ids.js';
import { workingBranch, type ExecutionSpec } from '../../protocol/task.js';
import type { Dispatch, Principal, ServerContext, WakeScope } from '../context.js';
import { recipeResources, type EndedExecution, type ExecutionRecord, type TaskRecord } from '../store/store.js';
import { freeSlots, type WorkerRegistry, type WorkerSession } from '../ws/registry.js';

/** How often the sweeps run, as a fraction of the shortest deadline they enforce (lease or claim). */
const SWEEP_FRACTION = 1 / 8;
/** Bounds on the sweep period: often enough to notice a lost worker quickly, rarely enough to be free. */
const MIN_SWEEP_MS = 50;
const MAX_SWEEP_MS = 1000;
/** After a failed pass (store unavailable), try again after this long rather than spinning. */
const RETRY_AFTER_ERROR_MS = 1000;

/**
 * What the worker needs to run the execution: the task's prompt and harness, its resolved
 * recipe (frozen at creation), budget, model and push/pull-request choice, and the working
 * branch `airlock/<short task id>`. `harness_command` is the worker's to fill in. `resources`
 * is sent only when the task has a size: a worker older than it refuses unknown fields.
 */
export function executionSpec(task: TaskRecord, execution: ExecutionRecord): ExecutionSpec {
  const { recipe } = task;
  const resources = recipeResources(recipe);
  return {
    execution_id: execution.id,
    task_id: task.id,
    epoch: execution.epoch,
    prompt: task.prompt,
    harness: task.harness,
    timeout_seconds: task.timeoutSeconds,
    title: task.title,
    branch: workingBranch(task.id),
    image: recipe.image,
    repositories: recipe.repositories,
    setup_commands: recipe.setupCommands,
    setup_timeout_seconds: recipe.setupTimeoutSeconds,
    secret_names: recipe.secretNames,
    env_names: recipe.envNames,
    budget: task.budget,
    model: task.model,
    push: task.push,
    pull_request: task.pullRequest,
    ...(resources ? { resources } : {}),
  };
}

export class Dispatcher implements Dispatch {
  private pending = false;
  /** What the next pass must look at: everything, some teams' queues, or some workers' slots. */
  private pendingFull = false;
  private readonly pendingTeams = new Set<string>();
  private readonly pendingWorkers = new Set<string>();
  private running = false;
  private stopped = false;
  private sweepTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly startedAt: number;
  private readonly log: Logger;
  private idle: Promise<void> = Promise.resolve();

  constructor(
    private readonly ctx: Omit<ServerContext, 'dispatch' | 'workers' | 'authenticate'>,
    private readonly registry: WorkerRegistry,
  ) {
    this.startedAt = ctx.clock.now();
    this.log = ctx.log.child({ component: 'dispatch' });
  }

  start(): void {
    const shortest = Math.min(this.ctx.settings.leaseTtlMs, this.ctx.settings.claimTimeoutMs);
    const period = Math.min(MAX_SWEEP_MS, Math.max(MIN_SWEEP_MS, Math.floor(shortest * SWEEP_FRACTION)));
    this.sweepTimer = setInterval(() => void this.sweep(), period);
    this.sweepTimer.unref();
    this.wake('server started');
  }

  /** Stop the loop and sweeps; resolves when a pass in progress has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.sweepTimer);
    clearTimeout(this.retryTimer);
    await this.idle;
  }

  wake(reason: string, scope?: WakeScope): void {
    if (this.stopped) return;
    if (!scope) this.pendingFull = true;
    else if (scope.workerId) this.pendingWorkers.add(`${scope.teamId}\u0000${scope.workerId}`);
    else this.pendingTeams.add(scope.teamId);
    this.pending = true;
    if (this.running) return;
    this.running = true;
    this.log.trace({ reason, scope }, 'dispatch:wake');
    this.idle = new Promise((resolve) => setImmediate(() => void this.loop().finally(resolve)));
  }

  private async loop(): Promise<void> {
    try {
      while (this.pending && !this.stopped) {
        this.pending = false;
        const full = this.pendingFull;
        const teams = [...this.pendingTeams];
        const workers = [...this.pendingWorkers];
        this.pendingFull = false;
        this.pendingTeams.clear();
        this.pendingWorkers.clear();
        if (full) {
          await this.offerTo([...this.registry.all()], false);
          continue;
        }
        for (const teamId of teams) {
          await this.offerTo([...this.registry.all()].filter((s) => s.teamId === teamId), true);
        }
        for (const key of workers) {
          const [teamId, workerId] = key.split('\u0000') as [string, string];
          const session = this.registry.get(teamId, workerId);
          if (session && !teams.includes(teamId)) await this.offerTo([session], false);
        }
      }
    } catch (err) {
      this.log.error({ err }, 'dispatch pass failed; retrying');
      this.retryTimer = setTimeout(() => this.wake('retry after error'), RETRY_AFTER_ERROR_MS);
      this.retryTimer.unref();
    } finally {
      this.running = false;
    }
  }

  /**
   * Offer queued tasks to these sessions, each up to its free slots. With `untilExhausted`
   * (a team's unrouted queue), stop at the first session that got fewer than it asked for:
   * nothing unrouted is left, and routed tasks are woken for their own worker.
   */
  private async offerTo(sessions: WorkerSession[], untilExhausted: boolean): Promise<void> {
    const { store, clock, settings } = this.ctx;
    for (const session of sessions) {
      const limit = freeSlots(session);
      if (limit === 0 || session.socket.readyState !== session.socket.OPEN) continue;
      const now = clock.now();
      const offered = await store.offerTasks({
        teamId: session.teamId,
        workerId: session.workerId,
        limit,
        now,
        offerDeadline: now + settings.claimTimeoutMs,
        newExecutionId: () => newId('exe'),
        newOfferId: () => newId('off'),
      });
      for (const { task, execution } of offered) {
        session.offers.set(execution.offerId, execution.id);
        session.send({
          type: 'offer',
          offer_id: execution.offerId,
          claim_deadline_ms: settings.claimTimeoutMs,
          execution: executionSpec(task, execution),
        });
        this.ctx.hub.publishTaskUpdate(task);
      }
      if (untilExhausted && offered.length < limit) return;
    }
  }

  private sweeping = false;

  /** Return expired offers to the queue and end executions whose lease ran out. */
  async sweep(): Promise<void> {
    if (this.sweeping || this.stopped) return;
    this.sweeping = true;
    try {
      const now = this.ctx.clock.now();
      const expiredOffers = await this.ctx.store.expireOffers(now);
      for (const ended of expiredOffers) this.offerEnded(ended);
      // A full pass every sweep is the safety net for anything a targeted wake missed (and
      // re-offers tasks that were declined, without a hot decline/offer loop).
      this.wake(expiredOffers.length > 0 ? 'offers expired' : 'periodic pass');
      // Right after a (re)start, leases may have run out while no server was there to renew
      // them: give every worker one lease period to reconnect before declaring it lost.
      if (now - this.startedAt >= this.ctx.settings.leaseTtlMs) {
        const lost = await this.ctx.store.expireLeases(
          now,
          (execution) =>
            `worker "${execution.workerId}" stopped renewing its lease (it crashed, was killed, or lost its connection) — ` +
            'check that worker\'s logs and host; the task can be submitted again',
        );
        for (const ended of lost) this.executionEnded(ended);
      }
    } catch (err) {
      this.log.error({ err }, 'sweep failed; will retry');
    } finally {
      this.sweeping = false;
    }
  }

  /** An offer ended without a claim (expired, declined, worker gone). */
  offerEnded(ended: EndedExecution): void {
    const session = this.registry.get(ended.execution.teamId, ended.execution.workerId);
    session?.offers.delete(ended.execution.offerId);
    this.ctx.hub.publishTaskUpdate(ended.task);
    if (ended.task.state === 'cancelled') this.countFinished(ended.task);
  }

  /** An execution ended (finished, lost, reconciled away): free the slot and tell followers. */
  executionEnded(ended: EndedExecution): void {
    const session = this.registry.get(ended.execution.teamId, ended.execution.workerId);
    session?.executions.delete(ended.execution.id);
    this.ctx.hub.publishTaskUpdate(ended.task);
    this.countFinished(ended.task);
    this.wake('slot freed', { teamId: ended.execution.teamId, workerId: ended.execution.workerId });
  }

  private countFinished(task: TaskRecord): void {
    this.ctx.metrics.tasksFinished.inc({ outcome: task.state, reason: task.failureReason ?? '' });
  }

  async cancelTask(principal: Principal, taskId: string): Promise<TaskRecord | undefined> {
    const now = this.ctx.clock.now();
    const result = await this.ctx.store.requestCancel({
      teamId: principal.teamId,
      taskId,
      now,
      message: 'cancelled by a user before it started',
    });
    if (!result) return undefined;
    await this.ctx.store.appendAudit({
      teamId: principal.teamId,
      actor: `key:${principal.keyId}`,
      action: 'task.cancel',
      target: taskId,
      detail: { state: result.task.state },
      at: now,
    });
    this.ctx.hub.publishTaskUpdate(result.task);
    if (result.task.state === 'cancelled' && result.task.finishedAt === now) this.countFinished(result.task);
    const execution = result.execution;
    if (execution) {
      const session = this.registry.get(execution.teamId, execution.workerId);
      session?.send({
        type: 'cancel',
        execution_id: execution.id,
        epoch: execution.epoch,
        reason: 'cancelled by a user',
        grace_ms: this.ctx.settings.cancelGraceMs,
      });
    }
    return result.task;
  }

  async sendMessage(principal: Principal, taskId: string, text: string): Promise<{ id: string; delivered: boolean } | undefined> {
    const task = await this.ctx.store.getTask(principal.teamId, taskId);
    if (!task) return undefined;
    const id = newId('msg');
    await this.ctx.store.insertMessage({ id, taskId, text, createdAt: this.ctx.clock.now() });
    const executions = await this.ctx.store.listExecutions(taskId);
    const active = executions.find((e) => e.state === 'claimed' || e.state === 'running');
    const session = active ? this.registry.get(active.teamId, active.workerId) : undefined;
    if (!active || !session) return { id, delivered: false };
    session.send({ type: 'message', execution_id: active.id, message_id: id, text });
    return { id, delivered: true };
  }
}
