/**
 * The harness port: the agent program that does the task's work inside the task environment.
 * `shell` (the prompt is a shell script) exists now; the built-in coding agent (`builtin`) and
 * third-party CLI agents plug in here. A harness talks to the world only through its context:
 * transcript events out, follow-up messages and cancellation in.
 */
import type { EventKind, ExecutionSpec, StopReason, Usage } from '../../protocol/task.js';
import type { GatewayAddress } from '../report/client.js';

export interface FollowUpMessage {
  id: string;
  text: string;
}

/**
 * How a harness reaches its task gateway's model routes (`/v1/chat/completions`, `/v1/responses`,
 * `/v1/messages`). The token is the task token: it never goes into `env` or to a child process
 * except through a harness-owned proxy.
 */
export interface GatewayAccess {
  address: GatewayAddress;
  token: string;
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
  /** The task gateway, for harnesses that call a model. */
  gateway: GatewayAccess;
}

export interface HarnessResult {
  outcome: 'succeeded' | 'failed' | 'cancelled';
  exitCode: number | null;
  summary: string | null;
  /** Why the run ended, for harnesses that know (budgets, completion); absent for plain programs. */
  stopReason?: StopReason;
  /** Token usage of the harness's own model calls, when it made any. */
  usage?: Usage;
}

export interface HarnessDefinition {
  readonly name: string;
  run(context: HarnessContext): Promise<HarnessResult>;
}
