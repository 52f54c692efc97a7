/**
 * The shape every built-in tool shares: a zod input schema (turned into JSON Schema for the
 * model's tool list), a description written for the model, and `run`, which reports every
 * failure as a result the model can act on.
 *
 * Invariant: `run` never throws and never rejects — a bad tool call costs the model one turn, it
 * never ends the run. `runToolCall` (index.ts) enforces it for tools that slip.
 */
import type * as z from 'zod';

export interface ToolResult {
  ok: boolean;
  /** What the model reads: the tool's output, or what went wrong and what to do instead. */
  output: string;
  /** True when `output` was cut to fit a limit. */
  truncated?: boolean;
  /** Facts for the transcript and the loop (exit code, counts); not shown to the model. */
  meta?: Record<string, unknown>;
}

export interface ToolLimits {
  /** Longest tool output the model sees, in characters (head and tail are kept). */
  maxOutputChars: number;
  /** Default wall-clock limit of one shell command. */
  commandTimeoutMs: number;
  /** Longest wall-clock limit a model may ask for. */
  maxCommandTimeoutMs: number;
  /** A shell command silent this long is stopped and control returns to the model. */
  silenceTimeoutMs: number;
  /** Between SIGTERM and SIGKILL when a command's process group is stopped. */
  killGraceMs: number;
  /** Most paths `list_files` shows. */
  maxListEntries: number;
  /** Most matching lines `grep` shows. */
  maxGrepMatches: number;
}

export const DEFAULT_TOOL_LIMITS: ToolLimits = {
  // ~7-8k tokens: enough for a test run's failures, small enough that a few calls fit a context.
  maxOutputChars: 30_000,
  // Builds and test suites take minutes; anything longer should run in the background of a task.
  commandTimeoutMs: 120_000,
  maxCommandTimeoutMs: 600_000,
  // Long enough for a quiet compile step; short enough that a command waiting on stdin or a
  // prompt does not eat the task's time.
  silenceTimeoutMs: 30_000,
  // The harness's own grace is 5 s (process.ts); a tool command gets less: the model is waiting.
  killGraceMs: 2_000,
  maxListEntries: 1_000,
  maxGrepMatches: 200,
};

export interface ToolContext {
  /** The directory every path argument is resolved inside. */
  workdir: string;
  /** Environment for commands the tools start. */
  env: NodeJS.ProcessEnv;
  /** Aborted when the task is cancelled: a running command's process group is stopped. */
  signal: AbortSignal;
  limits: ToolLimits;
}

export interface Tool<Input = unknown> {
  readonly name: string;
  readonly description: string;
  readonly inputSchema: z.ZodType<Input>;
  run(input: Input, context: ToolContext): Promise<ToolResult>;
}

/** A refusal or failure the model should read and correct. */
export function fail(output: string, meta?: Record<string, unknown>): ToolResult {
  return meta ? { ok: false, output, meta } : { ok: false, output };
}
