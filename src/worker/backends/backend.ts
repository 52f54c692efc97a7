/**
 * The port every backend implements (docker, kubernetes, direct, command). A backend builds one
 * task environment per execution, starts the agent runtime in it, and can find its own leftovers
 * after a worker restart. It knows nothing about the server: the worker's execution runner
 * drives it, and one conformance suite (test/unit/backend-conformance.ts) runs against every
 * implementation.
 *
 * Lifecycle of one execution: prepare → (worker starts the task gateway at
 * `prepared.gatewaySocketPath`) → start → wait … → stop (on cancel/timeout) → cleanup.
 */
import type { ExecutionSpec } from '../../protocol/task.js';

export interface PrepareRequest {
  spec: ExecutionSpec;
  /** Worker id, recorded with the environment so a restarted worker finds only its own leftovers. */
  workerId: string;
}

export interface PreparedEnvironment {
  executionId: string;
  /** Host path where the worker must serve this execution's task gateway (a Unix socket). */
  gatewaySocketPath: string;
  /** Where the task's files live (on the host for direct; informational for others). */
  workdir: string;
}

export interface StartRequest {
  prepared: PreparedEnvironment;
  spec: ExecutionSpec;
  /**
   * Variables for the agent process beyond the backend's minimal base (HOME, TMPDIR, PATH):
   * the AIRLOCK_* gateway variables and the operator's `-e` variables. Never the worker's API key.
   * The backend itself sets AIRLOCK_GATEWAY, AIRLOCK_WORKDIR and AIRLOCK_EXECUTION_ID to the
   * values valid inside its task environment (only it knows those paths), overriding any given.
   */
  env: Record<string, string>;
  /** Output the backend itself produces (setup/teardown commands): becomes transcript events. */
  onOutput: (stream: 'setup' | 'teardown', text: string) => void;
}

export interface ExitStatus {
  /** The agent's exit code; for a signal, 128 + signal number (the shell convention). */
  exitCode: number;
  signal: NodeJS.Signals | null;
  /** Set when the backend, not the task, decided the outcome (setup failed, OOM, …). */
  failure?: { reason: 'setup_command' | 'workspace' | 'backend' | 'container_oom' | 'image_pull' | 'rejected'; message: string };
  /**
   * The last lines the agent runtime itself wrote to stdout/stderr (not the task's output, which
   * travels as events): why it exited when it reported no result. Raw text from the task
   * environment — redact it before it leaves the worker.
   */
  diagnostics?: string;
}

export interface RunningExecution {
  executionId: string;
  /** Resolves once the agent (and everything it started) has exited. Never rejects. */
  readonly exited: Promise<ExitStatus>;
}

export interface Leftover {
  executionId: string;
  epoch: number;
  /** True when something was still running and the backend stopped it. */
  wasRunning: boolean;
  /** What was found and done, for people: "process group 1234 was running; sent SIGKILL". */
  detail: string;
}

/** A task environment a previous run of this worker left running, taken over by this run. */
export interface Reattached {
  executionId: string;
  epoch: number;
  prepared: PreparedEnvironment;
  running: RunningExecution;
  /** What was found, for people: "container 3f2a… running for 4 min". */
  detail: string;
}

export interface Backend {
  readonly name: 'direct' | 'docker' | 'kubernetes' | 'command';
  /** Check prerequisites once at worker start; throw an error that says what to fix. */
  init(): Promise<void>;
  prepare(request: PrepareRequest): Promise<PreparedEnvironment>;
  start(request: StartRequest): Promise<RunningExecution>;
  /**
   * Two-phase stop: SIGTERM to everything the execution started, then SIGKILL after `graceMs`.
   * Resolves when it has exited. Safe to call twice or after exit.
   */
  stop(executionId: string, graceMs: number): Promise<void>;
  /** Remove the task environment (unless the worker runs with --no-cleanup). Idempotent. */
  cleanup(executionId: string): Promise<void>;
  /**
   * Find environments a previous run of this worker left behind, stop what still runs, and say
   * what was found. Called once at start, before the worker takes work.
   */
  recover(workerId: string): Promise<Leftover[]>;
  /**
   * Backends whose task environments survive a worker restart (docker): find those of `known`
   * executions (the ones this worker's outbox still holds) and take them over, running or
   * exited. Called at start before `recover`, which then handles everything not taken over.
   */
  reattach?(workerId: string, known: ReadonlyArray<{ executionId: string; epoch: number }>): Promise<Reattached[]>;
  /** Release resources held by the backend itself (not task environments). */
  close(): Promise<void>;
}
