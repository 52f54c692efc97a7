/**
 * The harness port: the agent program that does the task's work inside the task environment.
 * `shell` (the prompt is a shell script) exists now; the built-in coding agent (`builtin`) and
 * third-party CLI agents plug in here. A harness talks to the world only through its context:
 * transcript events out, follow-up messages and cancellation in.
 */
import type { ExecutionSpec } from '../../protocol/task.js';
import type { EventKind } from '../../protocol/task.js';

export interface FollowUpMessage {
  id: string;
  text: string;
}

export interface HarnessContext {
  spec: ExecutionSpec;
  /** The working directory the harness operates in. */
  workdir: string;
  /** Environment for processes the harness starts (already minimal: the backend chose it). */
  env: NodeJS.ProcessEnv;
  /** Append one transcript event (buffered and uploaded by the agent's reporter). */
  emit(kind: EventKind, data: Record<string, unknown>): void;
  /** Aborted when the task is cancelled or times out; the harness must stop promptly. */
  signal: AbortSignal;
  /** Follow-up messages the user sent while the task runs, delivered in order. */
  messages(): AsyncIterable<FollowUpMessage>;
}

export interface HarnessResult {
  outcome: 'succeeded' | 'failed' | 'cancelled';
  exitCode: number | null;
  summary: string | null;
}

export interface HarnessDefinition {
  readonly name: string;
  run(context: HarnessContext): Promise<HarnessResult>;
}
