/**
 * Task and execution lifecycles: string-literal unions, one allowed-transition table each, and
 * one transition function that every state change goes through (a property test walks the
 * tables). Terminal states have no way out: a finished task is never resurrected; a retry or a
 * follow-up is a new execution.
 */
import { ConflictError } from './errors.js';

export const TASK_STATES = ['queued', 'assigned', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type TaskState = (typeof TASK_STATES)[number];

export const TERMINAL_TASK_STATES: ReadonlySet<TaskState> = new Set(['succeeded', 'failed', 'cancelled']);

/**
 * queued → assigned: offered to a worker (an execution exists in `offered`).
 * assigned → queued: the offer was not claimed in time, or the worker hung up before claiming.
 * assigned → running: the worker claimed it and its task environment started.
 * assigned → failed: claimed, but the task environment could not be built (workspace, setup…).
 * any live state → cancelled: a user cancelled it.
 * running → failed: the harness failed, timed out, or the worker was lost.
 */
export const TASK_TRANSITIONS: Readonly<Record<TaskState, readonly TaskState[]>> = {
  queued: ['assigned', 'cancelled', 'failed'],
  assigned: ['queued', 'running', 'succeeded', 'failed', 'cancelled'],
  running: ['succeeded', 'failed', 'cancelled'],
  succeeded: [],
  failed: [],
  cancelled: [],
};

export const EXECUTION_STATES = ['offered', 'claimed', 'running', 'succeeded', 'failed', 'cancelled', 'expired'] as const;
export type ExecutionState = (typeof EXECUTION_STATES)[number];

export const ACTIVE_EXECUTION_STATES: readonly ExecutionState[] = ['offered', 'claimed', 'running'];
export const TERMINAL_EXECUTION_STATES: ReadonlySet<ExecutionState> = new Set(['succeeded', 'failed', 'cancelled', 'expired']);

/** `expired`: an offer nobody claimed before its deadline (the task went back to the queue). */
export const EXECUTION_TRANSITIONS: Readonly<Record<ExecutionState, readonly ExecutionState[]>> = {
  offered: ['claimed', 'expired', 'cancelled'],
  claimed: ['running', 'succeeded', 'failed', 'cancelled'],
  running: ['succeeded', 'failed', 'cancelled'],
  succeeded: [],
  failed: [],
  cancelled: [],
  expired: [],
};

export function canTransitionTask(from: TaskState, to: TaskState): boolean {
  return TASK_TRANSITIONS[from].includes(to);
}

export function canTransitionExecution(from: ExecutionState, to: ExecutionState): boolean {
  return EXECUTION_TRANSITIONS[from].includes(to);
}

/** The one place a task changes state: returns `to`, or throws a ConflictError naming both. */
export function transitionTask(from: TaskState, to: TaskState): TaskState {
  if (!canTransitionTask(from, to)) {
    throw new ConflictError(`a task cannot go from "${from}" to "${to}"`);
  }
  return to;
}

export function transitionExecution(from: ExecutionState, to: ExecutionState): ExecutionState {
  if (!canTransitionExecution(from, to)) {
    throw new ConflictError(`an execution cannot go from "${from}" to "${to}"`);
  }
  return to;
}

/**
 * Machine-readable reasons a task or execution failed. Each has a human message written where
 * the failure is detected, naming the cause and what to do.
 */
export const FAILURE_REASONS = [
  'worker_lost', // the worker stopped renewing the lease (crashed, killed, network gone)
  'timeout', // the task ran past its timeout
  'exit_code', // the harness exited with a non-zero status
  'workspace', // the task environment could not be prepared
  'setup_command', // the worker's setup command failed
  'backend', // the backend failed to start or watch the task environment
  'agent', // the agent runtime failed (not the task's own code)
  'orphaned', // found still running after a worker restart, and stopped
  'rejected', // the worker refused the execution (unsupported harness, bad definition)
  'repo_clone', // a repository could not be cloned
  'image_pull', // the task's image could not be pulled
  'container_oom', // the task environment ran out of memory
] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

export const TERMINAL_OUTCOMES = ['succeeded', 'failed', 'cancelled'] as const;
export type Outcome = (typeof TERMINAL_OUTCOMES)[number];
