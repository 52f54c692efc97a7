/**
 * Runs executions on a backend: prepare the task environment, serve its task gateway, start the
 * agent, pass its events through the redactor into the outbox, enforce the timeout, stop it on
 * cancellation, and report exactly one outcome.
 *
 * Invariants:
 * - Every event leaves through `ingest`: redacted here, on the worker (trusted), before it is
 *   written to the outbox; the agent inside the sandbox is never trusted to redact.
 * - Sequence numbers are assigned here, per execution, and persisted with the report that
 *   carries them, so a restarted worker never reuses or skips one.
 * - An execution whose lease was lost is stopped and reports nothing more.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '../lib/clock.js';
import { newId } from '../lib/ids.js';
import { describeError } from '../protocol/errors.js';
import type { AgentEvent, AgentResult } from '../protocol/gateway.js';
import type { FailureReason, Outcome } from '../protocol/lifecycle.js';
import type { Artifacts, ExecutionSpec, TranscriptEvent, Usage } from '../protocol/task.js';
import { MAX_EVENTS_PER_BATCH } from '../protocol/task.js';
import type { LlmToken, ReportMessage } from '../protocol/worker-messages.js';
import type { Backend, ExitStatus, Reattached } from './backends/backend.js';
import { specWithHarness, type HarnessTemplate } from './harness-templates.js';
import { ExecutionModelRoute, controlPlaneProvider, type ModelHandler } from './llm/index.js';
import { artifactsFrom, openPullRequests, type ForgeRule } from './forge/index.js';
import { answerGitCredential, type GitCredentialRule } from './git-credentials.js';
import type { LocalExecution, Outbox } from './outbox/outbox.js';
import { Redactor } from './redact/index.js';
import { selectTaskEnv } from './task-env.js';
import { TaskGateway } from './taskgateway/index.js';

/** Largest report we build: well under the server's 4 MiB frame limit even after JSON escaping doubles it. */
const MAX_REPORT_BYTES = 1024 * 1024;
/**
 * Output held back by the stream redactor (to catch a secret split across chunks) is released
 * after this much quiet, so a prompt that prints one line and then sleeps still shows its line.
 */
const REDACT_IDLE_FLUSH_MS = 50;

export interface RunnerOptions {
  backend: Backend;
  /** Where full diffs are kept (`<state-dir>/diffs/`); without it, the gateway refuses them. */
  stateDir?: string;
  outbox: Outbox;
  workerId: string;
  /** Variables every task receives (the operator's -e); their values are also redacted. */
  taskEnv: Record<string, string>;
  /** Tokens for the tasks' https repositories (answered at the task gateway); redacted like -e values. */
  gitCredentials?: readonly GitCredentialRule[];
  /** Forges for pull/merge requests, opened here after the agent's result (tokens never enter a task). */
  forges?: readonly ForgeRule[];
  log: Logger;
  clock: Clock;
  /** Called whenever the outbox has new reports to send. */
  notify: () => void;
  /** Command templates for `command:<name>` harnesses (the worker's `harnesses:`). */
  harnesses?: Record<string, HarnessTemplate>;
  /** Model routing: the BYOLLM router (`models:`), or null to relay to the server's LLM gateway. */
  models?: { byollm: ModelHandler | null; serverUrl: string };
}

interface Execution {
  spec: ExecutionSpec;
  nextSeq: number;
  log: Logger;
  gateway?: TaskGateway;
  result?: AgentResult;
  cancelReason?: string;
  timedOut?: boolean;
  abandoned?: boolean;
  stopGraceMs?: number;
  timeoutTimer?: NodeJS.Timeout;
  streams: Map<string, { push(chunk: string): string; flush(): string }>;
  flushTimer?: NodeJS.Timeout;
  /** Serialises ingest calls so seqs follow arrival order. */
  chain: Promise<void>;
  done: Promise<void>;
  /** The execution's current token for the control plane's LLM gateway (claimed, then heartbeat renewals). */
  llmToken: string | null;
  modelRoute?: ExecutionModelRoute;
  /** Set by `detachAll`: the worker stops serving it, and its environment runs on for the next worker process. */
  detached?: boolean;
  /** Resolves once `detachAll` detached it. */
  detachSignal: Promise<undefined>;
  detach: () => void;
}

export class ExecutionRunner {
  private readonly executions = new Map<string, Execution>();
  private readonly redactor: Redactor;

  constructor(private readonly options: RunnerOptions) {
    this.redactor = new Redactor({
      secrets: [
        ...Object.entries(options.taskEnv).map(([name, value]) => ({ name, value })),
        ...(options.gitCredentials ?? []).map((rule) => ({ name: rule.passwordEnv, value: rule.password })),
        ...(options.forges ?? []).map((forge) => ({ name: forge.tokenEnv, value: forge.token })),
      ],
      onWarning: (message: string) => options.log.warn(message),
    });
  }

  get running(): number {
    return this.executions.size;
  }

  /** Executions this process runs, for the hello inventory and heartbeats. */
  leases(): Array<{ execution_id: string; epoch: number }> {
    return [...this.executions.values()].map((e) => ({ execution_id: e.spec.execution_id, epoch: e.spec.epoch }));
  }

  has(executionId: string): boolean {
    return this.executions.has(executionId);
  }

  /** Renewed LLM gateway tokens from a heartbeat ack. */
  setLlmTokens(tokens: readonly LlmToken[]): void {
    for (const token of tokens) {
      const execution = this.executions.get(token.execution_id);
      if (!execution) continue;
      execution.llmToken = token.token;
      this.options.outbox.saveExecutionState(token.execution_id, { llmToken: token.token });
    }
  }

  /** Start an execution the server confirmed we claimed. Resolves when it has fully ended. */
  start(spec: ExecutionSpec, llmToken: LlmToken | null = null): Promise<void> {
    const existing = this.executions.get(spec.execution_id);
    if (existing) return existing.done;
    const local = this.options.outbox.rememberExecution(spec, this.options.clock.now());
    return this.launch({ ...local, llmToken: llmToken?.token ?? null });
  }

  /**
   * Take over an execution a previous run of this worker started, whose task environment is
   * still there (a container kept running while the worker restarted): serve its task gateway
   * again with the same token, resume its events after the last one stored, and finish it as if
   * nothing happened. Resolves when it has fully ended.
   */
  resume(local: LocalExecution, reattached: Reattached): Promise<void> {
    return this.executions.get(local.executionId)?.done ?? this.launch(local, { local, reattached });
  }

  /** Track an execution from what the outbox holds of it, and run it to its end. */
  private launch(local: LocalExecution, resume?: { local: LocalExecution; reattached: Reattached }): Promise<void> {
    const { spec } = local;
    const execution: Execution = {
      spec,
      nextSeq: local.nextSeq,
      log: this.options.log.child({ execution: spec.execution_id, task: spec.task_id }),
      streams: new Map(),
      chain: Promise.resolve(),
      done: Promise.resolve(),
      llmToken: local.llmToken,
      ...(local.result ? { result: local.result as AgentResult } : {}),
      ...detachable(),
    };
    this.executions.set(spec.execution_id, execution);
    execution.done = this.run(execution, resume).catch((err: unknown) => {
      execution.log.error({ err }, 'execution runner failed');
    });
    return execution.done;
  }

  private async run(execution: Execution, resume?: { local: LocalExecution; reattached: Reattached }): Promise<void> {
    const { backend } = this.options;
    const { spec } = execution;
    let status: ExitStatus | undefined;
    let failure: { reason: FailureReason; message: string } | undefined;
    try {
      status = resume ? await this.reattach(execution, resume.local, resume.reattached) : await this.startAndWait(execution);
    } catch (err) {
      const reason = (err as { reason?: FailureReason }).reason ?? 'backend';
      failure = { reason, message: describeError(err) };
      execution.log.error({ err: failure.message }, 'task:execution:failed-to-start');
      await backend.stop(spec.execution_id, 0).catch(() => undefined);
    } finally {
      clearTimeout(execution.timeoutTimer);
    }
    await execution.chain;
    this.flushStreams(execution);
    // Model calls still running belong to an agent that is gone: stop them (and their provider calls).
    execution.modelRoute?.close();
    await execution.gateway?.close().catch(() => undefined);
    if (execution.detached) {
      // Left running for the next worker process, which reattaches: nothing is reported or removed.
      execution.log.info('task:execution:detached');
      this.executions.delete(spec.execution_id);
      return;
    }
    const usage = execution.modelRoute ? await execution.modelRoute.finalUsage() : null;
    if (!execution.abandoned) {
      const artifacts = await this.artifacts(execution);
      const outcome = this.outcome(execution, status, failure);
      // The agent's own `result` event says what the harness concluded; this one says what the
      // worker recorded (it may differ: a timeout, a cancel, a crash).
      this.emit(execution, 'lifecycle', {
        phase: 'finished',
        outcome: outcome.outcome,
        exit_code: outcome.exitCode,
        failure_reason: outcome.failureReason,
        message: outcome.message,
      });
      this.report(execution, {
        type: 'execution.finished',
        id: newId('msg'),
        execution_id: spec.execution_id,
        epoch: spec.epoch,
        outcome: outcome.outcome,
        exit_code: outcome.exitCode,
        failure_reason: outcome.failureReason,
        message: outcome.message,
        ...(usage ? { usage } : {}),
        ...(artifacts ? { artifacts } : {}),
      });
      execution.log.info({ outcome: outcome.outcome, reason: outcome.failureReason, exitCode: outcome.exitCode }, 'task:execution:finished');
    }
    await backend.cleanup(spec.execution_id).catch((err: unknown) => execution.log.warn({ err: describeError(err) }, 'cleanup failed'));
    this.options.outbox.forgetExecution(spec.execution_id);
    this.executions.delete(spec.execution_id);
  }

  /** Prepare the task environment, serve its gateway, start the agent, and wait for it to exit. */
  private async startAndWait(execution: Execution): Promise<ExitStatus | undefined> {
    const { backend, workerId } = this.options;
    const { spec } = execution;
    execution.log.info('task:execution:starting');
    // A command-template task gets its template in the spec the gateway serves; one this
    // worker does not have fails here, before any environment is prepared.
    const served = specWithHarness(spec, this.options.harnesses ?? {});
    const variables = selectTaskEnv(this.options.taskEnv, spec);
    if (!variables.ok) throw Object.assign(new Error(variables.message), { reason: 'rejected' as const });
    const prepared = await backend.prepare({ spec, workerId }).catch((err: unknown) => {
      throw Object.assign(new Error(`the task environment could not be prepared: ${describeError(err)}`), { reason: 'workspace' as const });
    });
    const token = randomBytes(32).toString('base64url');
    execution.modelRoute = this.modelRoute(execution);
    // Kept with the execution: a restarted worker serves a reattached agent with the same token.
    this.options.outbox.saveExecutionState(spec.execution_id, { taskToken: token, ...(execution.llmToken ? { llmToken: execution.llmToken } : {}) });
    const gateway = this.gatewayFor(execution, prepared.gatewaySocketPath, token, served.spec);
    execution.gateway = gateway;
    await gateway.start();
    if (execution.cancelReason) gateway.cancel(execution.cancelReason);
    this.report(execution, { type: 'execution.started', id: newId('msg'), execution_id: spec.execution_id, epoch: spec.epoch });
    this.emit(execution, 'lifecycle', { phase: 'starting', backend: backend.name, worker_id: workerId });
    if (spec.timeout_seconds) {
      execution.timeoutTimer = setTimeout(() => {
        execution.timedOut = true;
        void this.stopExecution(execution, `timed out after ${spec.timeout_seconds} s`, this.graceFor(execution));
      }, spec.timeout_seconds * 1000);
    }
    const running = await backend
      .start({
        prepared,
        spec,
        env: {
          ...variables.env,
          ...served.env,
          AIRLOCK_GATEWAY: `unix:${prepared.gatewaySocketPath}`,
          AIRLOCK_TASK_TOKEN: token,
          AIRLOCK_EXECUTION_ID: spec.execution_id,
          AIRLOCK_WORKDIR: prepared.workdir,
        },
        onOutput: (stream, text) => this.emit(execution, 'output', { stream, text }),
      })
      .catch((err: unknown) => {
        throw Object.assign(new Error(`the ${backend.name} backend could not start the task: ${describeError(err)}`), { reason: 'backend' as const });
      });
    // A cancel that arrived while we were starting: stop now that there is something to stop.
    if (execution.cancelReason || execution.abandoned) void backend.stop(spec.execution_id, execution.stopGraceMs ?? 0);
    return await Promise.race([running.exited, execution.detachSignal]);
  }

  /** Serve a reattached execution's gateway again and wait for its agent to exit. */
  private async reattach(execution: Execution, local: LocalExecution, reattached: Reattached): Promise<ExitStatus | undefined> {
    const { spec } = execution;
    if (!local.taskToken) throw Object.assign(new Error('the worker kept no task token for this execution, so its agent cannot be served again'), { reason: 'backend' as const });
    const served = specWithHarness(spec, this.options.harnesses ?? {});
    execution.modelRoute = this.modelRoute(execution, local.usage);
    const gateway = this.gatewayFor(execution, reattached.prepared.gatewaySocketPath, local.taskToken, served.spec, {
      lastSeq: local.agentSeq,
      ...(execution.result ? { result: execution.result } : {}),
    });
    execution.gateway = gateway;
    await gateway.start();
    if (execution.cancelReason) gateway.cancel(execution.cancelReason);
    this.emit(execution, 'lifecycle', { phase: 'reattached', backend: this.options.backend.name, worker_id: this.options.workerId, detail: reattached.detail });
    execution.log.info({ detail: reattached.detail }, 'task:execution:reattached');
    if (spec.timeout_seconds) {
      const left = Math.max(0, local.createdAt + spec.timeout_seconds * 1000 - this.options.clock.now());
      execution.timeoutTimer = setTimeout(() => {
        execution.timedOut = true;
        void this.stopExecution(execution, `timed out after ${spec.timeout_seconds} s`, this.graceFor(execution));
      }, left);
    }
    if (execution.cancelReason || execution.abandoned) void this.options.backend.stop(spec.execution_id, execution.stopGraceMs ?? 0);
    return await Promise.race([reattached.running.exited, execution.detachSignal]);
  }

  private gatewayFor(execution: Execution, socketPath: string, token: string, served: ExecutionSpec, resume?: { lastSeq: number; result?: AgentResult }): TaskGateway {
    const { spec } = execution;
    return new TaskGateway({
      socketPath,
      token,
      spec: served,
      onEvents: (events: AgentEvent[]) => this.ingest(execution, events),
      onResult: (result: AgentResult) => {
        execution.result = result;
        this.options.outbox.saveExecutionState(spec.execution_id, { result });
      },
      ...(execution.modelRoute ? { llm: execution.modelRoute.handle } : {}),
      onDiff: (index, diff) => this.keepDiff(execution, index, diff),
      gitCredential: async (query) => answerGitCredential(this.options.gitCredentials ?? [], spec.repositories ?? [], query),
      ...(resume ? { resume } : {}),
      log: execution.log,
    });
  }

  /** The execution's model route: BYOLLM when the worker has `models:`, the control plane otherwise. */
  private modelRoute(execution: Execution, initial?: Usage): ExecutionModelRoute | undefined {
    const models = this.options.models;
    if (!models) return undefined;
    const redact = <T>(body: T): T => this.redactor.redactValue(body);
    // Totals are kept with the execution, so a restarted worker that reattaches reports them whole.
    const id = execution.spec.execution_id;
    const persistence = { ...(initial ? { initial } : {}), onChange: (usage: Usage) => this.options.outbox.saveExecutionState(id, { usage }) };
    if (models.byollm) return new ExecutionModelRoute(models.byollm, 'byollm', redact, persistence);
    return new ExecutionModelRoute(controlPlaneProvider(models.serverUrl, () => execution.llmToken), 'control-plane', redact, persistence);
  }

  private outcome(
    execution: Execution,
    status: ExitStatus | undefined,
    failure: { reason: FailureReason; message: string } | undefined,
  ): { outcome: Outcome; exitCode: number | null; failureReason: FailureReason | null; message: string | null } {
    const exitCode = status?.exitCode ?? null;
    if (execution.cancelReason) {
      return { outcome: 'cancelled', exitCode, failureReason: null, message: `cancelled: ${execution.cancelReason}` };
    }
    if (execution.timedOut) {
      return {
        outcome: 'failed',
        exitCode,
        failureReason: 'timeout',
        message: `the task ran longer than its timeout of ${execution.spec.timeout_seconds} s and was stopped — raise timeout_seconds or make the task faster`,
      };
    }
    if (failure) return { outcome: 'failed', exitCode, failureReason: failure.reason, message: failure.message };
    if (status?.failure) return { outcome: 'failed', exitCode, failureReason: status.failure.reason, message: status.failure.message };
    const result = execution.result;
    if (result) {
      if (result.outcome === 'succeeded') return { outcome: 'succeeded', exitCode: result.exit_code ?? exitCode, failureReason: null, message: withPushErrors(result) };
      // The agent detected it before its harness ran (a clone or a setup command failed): its words.
      if (result.failure_reason) return { outcome: 'failed', exitCode: result.exit_code ?? exitCode, failureReason: result.failure_reason, message: result.summary };
      const code = result.exit_code ?? exitCode;
      return {
        outcome: 'failed',
        exitCode: code,
        failureReason: 'exit_code',
        message: `the task's ${execution.spec.harness} harness exited with status ${code ?? 'unknown'} — see the transcript for its output`,
      };
    }
    if (exitCode === 0) return { outcome: 'succeeded', exitCode, failureReason: null, message: null };
    // The agent's last words are raw output of the task environment: redacted like everything else.
    const diagnostics = status?.diagnostics ? `; its last output: ${this.redactor.redactText(status.diagnostics.slice(-1000))}` : '';
    return {
      outcome: 'failed',
      exitCode,
      failureReason: 'agent',
      message: `the agent runtime exited with status ${exitCode ?? 'unknown'}${status?.signal ? ` (${status.signal})` : ''} before reporting a result${diagnostics} — see the transcript and the worker's log`,
    };
  }

  /**
   * The execution's artifacts (agent/workspace results plus the pull requests opened here), redacted
   * like every event: a diff may hold a secret the task wrote into a file.
   */
  private async artifacts(execution: Execution): Promise<Artifacts | undefined> {
    const result = execution.result;
    if (!result || (!result.repositories?.length && result.summary === null && !result.stop_reason)) return undefined;
    const repositories = await openPullRequests(execution.spec, result, this.options.forges ?? []).catch((err: unknown) => {
      execution.log.warn({ err: describeError(err) }, 'opening pull requests failed');
      return result.repositories ?? [];
    });
    return this.redactor.redactValue(artifactsFrom(result, repositories));
  }

  private graceFor(execution: Execution): number {
    return execution.stopGraceMs ?? 10_000;
  }

  private async stopExecution(execution: Execution, why: string, graceMs: number): Promise<void> {
    execution.log.info({ why, graceMs }, 'task:execution:stopping');
    execution.gateway?.cancel(why);
    await this.options.backend.stop(execution.spec.execution_id, graceMs).catch((err: unknown) => {
      execution.log.error({ err: describeError(err) }, 'stopping the task environment failed');
    });
  }

  /** The user cancelled: graceful signal, grace period, hard kill; reports `cancelled`. */
  cancel(executionId: string, reason: string, graceMs: number): void {
    const execution = this.executions.get(executionId);
    if (!execution || execution.cancelReason) return;
    execution.cancelReason = reason;
    execution.stopGraceMs = graceMs;
    void this.stopExecution(execution, reason, graceMs);
  }

  /** The server no longer assigns this execution to us: stop it and report nothing more. */
  abandon(executionId: string, why: string): void {
    this.options.outbox.dropExecution(executionId);
    const execution = this.executions.get(executionId);
    if (!execution || execution.abandoned) return;
    execution.abandoned = true;
    void this.stopExecution(execution, why, 0);
  }

  deliverMessage(executionId: string, id: string, text: string): void {
    const execution = this.executions.get(executionId);
    execution?.gateway?.deliverMessage({ id, text });
  }

  /** Stop everything now (second SIGTERM, or drain timeout). Each reports its outcome. */
  async stopAll(reason: string, graceMs: number): Promise<void> {
    for (const execution of this.executions.values()) {
      if (!execution.cancelReason) {
        execution.cancelReason = reason;
        execution.stopGraceMs = graceMs;
      }
      void this.stopExecution(execution, reason, graceMs);
    }
    await Promise.all([...this.executions.values()].map((e) => e.done));
  }

  /**
   * Stop serving every execution but leave its task environment running (backends that can
   * reattach: a worker being restarted). Their state stays in the outbox for the next run.
   */
  async detachAll(): Promise<void> {
    for (const execution of this.executions.values()) {
      execution.detached = true;
      execution.detach();
    }
    await Promise.all([...this.executions.values()].map((e) => e.done));
  }

  async idle(): Promise<void> {
    await Promise.all([...this.executions.values()].map((e) => e.done));
  }

  /** Agent events from the gateway: redact, number, and store durably before answering. */
  private ingest(execution: Execution, events: AgentEvent[]): Promise<void> {
    const next = execution.chain.then(() => {
      const redacted: Array<Omit<TranscriptEvent, 'seq'>> = [];
      for (const event of events) {
        const prepared = this.redact(execution, event.kind, event.data, event.ts);
        if (prepared) redacted.push(prepared);
      }
      this.append(execution, redacted, events.at(-1)?.seq);
    });
    execution.chain = next.catch(() => undefined);
    return next;
  }

  /** Append one event to the transcript (through the redactor). */
  private emit(execution: Execution, kind: TranscriptEvent['kind'], data: Record<string, unknown>): void {
    const prepared = this.redact(execution, kind, data, this.options.clock.now());
    if (prepared) this.append(execution, [prepared]);
  }

  /**
   * Redact one event. Output goes through a per-stream redactor that may hold back a tail (a
   * secret split across chunks); the held text is released by the next chunk or an idle flush.
   */
  private redact(execution: Execution, kind: TranscriptEvent['kind'], data: Record<string, unknown>, ts: number): Omit<TranscriptEvent, 'seq'> | undefined {
    if (kind === 'output' && typeof data.text === 'string') {
      const stream = typeof data.stream === 'string' ? data.stream : 'stdout';
      let redactor = execution.streams.get(stream);
      if (!redactor) {
        redactor = this.redactor.streamRedactor();
        execution.streams.set(stream, redactor);
      }
      const text = redactor.push(data.text);
      this.scheduleStreamFlush(execution);
      return text.length === 0 ? undefined : { kind, data: { stream, text }, ts };
    }
    return { kind, data: this.redactor.redactValue(data), ts };
  }

  private scheduleStreamFlush(execution: Execution): void {
    clearTimeout(execution.flushTimer);
    execution.flushTimer = setTimeout(() => this.flushStreams(execution), REDACT_IDLE_FLUSH_MS);
  }

  private flushStreams(execution: Execution): void {
    clearTimeout(execution.flushTimer);
    for (const [stream, redactor] of execution.streams) {
      const text = redactor.flush();
      if (text.length > 0) this.append(execution, [{ kind: 'output', data: { stream, text }, ts: this.options.clock.now() }]);
    }
  }

  /**
   * Number events and store them in the outbox, in reports of at most MAX_EVENTS_PER_BATCH events
   * and MAX_REPORT_BYTES, all in one transaction together with the agent's seq they came with.
   */
  private append(execution: Execution, events: Array<Omit<TranscriptEvent, 'seq'>>, agentSeq?: number): void {
    if (execution.abandoned) return;
    if (events.length === 0) {
      if (agentSeq !== undefined) this.options.outbox.enqueueEvents(execution.spec.execution_id, [], execution.nextSeq, agentSeq);
      return;
    }
    const reports: Array<ReportMessage & { type: 'execution.events' }> = [];
    let batch: TranscriptEvent[] = [];
    let bytes = 0;
    const cut = () => {
      if (batch.length === 0) return;
      reports.push({ type: 'execution.events', id: newId('msg'), execution_id: execution.spec.execution_id, epoch: execution.spec.epoch, events: batch });
      batch = [];
      bytes = 0;
    };
    for (const event of events) {
      const size = JSON.stringify(event.data).length;
      if (batch.length >= MAX_EVENTS_PER_BATCH || (bytes + size > MAX_REPORT_BYTES && batch.length > 0)) cut();
      batch.push({ seq: execution.nextSeq++, ts: event.ts, kind: event.kind, data: event.data });
      bytes += size;
    }
    cut();
    this.options.outbox.enqueueEvents(execution.spec.execution_id, reports, execution.nextSeq, agentSeq);
    this.options.notify();
  }

  /**
   * Keep a repository's full diff (its reported one was cut) under the state directory, where it
   * stays in the data plane: `<state-dir>/diffs/<execution id>/<index>.diff`, readable by the
   * worker's user only. The transcript says where it is; its content never leaves.
   */
  private async keepDiff(execution: Execution, index: number, diff: Buffer): Promise<void> {
    if (!this.options.stateDir) throw new Error('this worker has no state directory to keep diffs in');
    const dir = path.join(this.options.stateDir, 'diffs', execution.spec.execution_id);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const file = path.join(dir, `${index}.diff`);
    await writeFile(file, diff, { mode: 0o600 });
    const url = execution.spec.repositories?.[index]?.url ?? `repository ${index}`;
    this.emit(execution, 'status', { message: `the full diff of ${url} (${diff.length} bytes) is kept on worker ${this.options.workerId} at ${file}` });
  }

  private report(execution: Execution, message: Parameters<Outbox['enqueue']>[0]): void {
    if (execution.abandoned) return;
    this.options.outbox.enqueue(message);
    this.options.notify();
  }
}

/** The success message: the harness's summary, and any push that failed (the work is committed locally). */
function withPushErrors(result: AgentResult): string | null {
  const errors = (result.repositories ?? []).map((r) => r.push_error).filter((e): e is string => Boolean(e));
  if (errors.length === 0) return result.summary;
  const text = [result.summary, ...errors].filter(Boolean).join('; ');
  return text.length > 4000 ? `${text.slice(0, 3990)} …` : text;
}

function detachable(): Pick<Execution, 'detachSignal' | 'detach'> {
  let detach!: () => void;
  const detachSignal = new Promise<undefined>((resolve) => (detach = () => resolve(undefined)));
  return { detachSignal, detach };
}
