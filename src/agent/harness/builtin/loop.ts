/**
 * The built-in coding agent's loop. A turn is one model call followed by its tool calls, run one
 * after the other, their results appended to the conversation; the run ends when the model answers
 * without tool calls (that answer is the summary), when a budget is reached, on cancel, or when
 * the model cannot be reached.
 *
 * Invariants:
 * - Budgets (turns, wall-clock seconds, tokens) end a run with outcome `succeeded`: one wrap-up
 *   model call without tools asks for a summary, and `stopReason` names the budget. The work stays
 *   in the working tree (the workspace step commits it); it is never thrown away. The time budget
 *   also interrupts the model call or command in flight when it runs out.
 * - A cancel aborts the model call in flight and the running command's process group at once;
 *   the outcome is `cancelled`, whatever was happening.
 * - Every tool call gets a result in the conversation (a skipped call says so), so the
 *   conversation stays valid for the next model call; a bad call costs a turn, never the run.
 * - Follow-up messages are delivered as user messages at the next turn boundary; one that arrives
 *   while the model finishes keeps the run going.
 * - The conversation is fitted to the context limit before every call (conversation.ts), and
 *   shrunk and sent once more if the model still refuses its size: a long run never fails for size.
 * - Without a time budget, a task timeout sets one a little earlier (timeoutMargin), so the run
 *   wraps up instead of being killed.
 * - Every model call, assistant text, tool call and tool result is a transcript event.
 */
import { splitForEvents } from '../../report/split.js';
import type { HarnessContext, HarnessResult } from '../harness.js';
import { MAX_EVENT_DATA_BYTES, type StopReason, type Usage } from '../../../protocol/task.js';
import { Conversation } from './conversation.js';
import { ModelCallError, ModelClient, type ChatTool, type ModelClientOptions, type ModelTurn } from './model-client.js';
import { buildSystemPrompt } from './prompt.js';
import { DEFAULT_TOOL_LIMITS, runToolCall, toolDefinitions, type ToolLimits } from './tools/index.js';
import { truncateMiddle } from './tools/output.js';

/** Turns when the task sets no `budget.max_turns`. */
export const DEFAULT_MAX_TURNS = 50;
/** Context window assumed when neither the options nor AIRLOCK_MODEL_CONTEXT_TOKENS say. */
export const DEFAULT_CONTEXT_LIMIT_TOKENS = 128_000;
/** The environment variable (set by the worker for the task environment) that overrides the context limit. */
export const CONTEXT_LIMIT_ENV = 'AIRLOCK_MODEL_CONTEXT_TOKENS';
/** After the model refused the size: shrink to this share of what was sent (or of the limit). */
const OVERFLOW_SHRINK = 0.5;
/** The wrap-up call gets this long, even after the time budget ran out. */
const WRAP_UP_TIMEOUT_MS = 120_000;
/** Tool output shown in a transcript event (the model sees up to the tool's own limit). */
const EVENT_OUTPUT_CHARS = 4_000;
/** Tool arguments shown in a transcript event. */
const EVENT_ARGUMENTS_CHARS = 8_000;

export const WRAP_UP_PROMPTS: Record<Exclude<StopReason, 'completed' | 'cancelled' | 'error'>, string> = {
  max_turns: 'the maximum number of turns',
  max_seconds: 'the time limit',
  max_tokens: 'the token limit',
};

export interface BuiltinLoopOptions {
  /** Context window in tokens (default: AIRLOCK_MODEL_CONTEXT_TOKENS, else 128k). */
  contextLimitTokens?: number;
  toolLimits?: Partial<ToolLimits>;
  /** Model client settings (retries, backoff, idle timeout) for tests and benchmarks. */
  model?: Partial<Pick<ModelClientOptions, 'maxAttempts' | 'backoffBaseMs' | 'backoffCapMs' | 'idleTimeoutMs'>>;
  wrapUpTimeoutMs?: number;
}

interface Budget {
  maxTurns: number;
  maxSeconds: number | null;
  maxTokens: number | null;
}

/** Follow-up messages pumped from the context's iterable into a queue the loop drains at turn boundaries. */
class Inbox {
  readonly pending: Array<{ id: string; text: string }> = [];
  private readonly iterator: AsyncIterator<{ id: string; text: string }>;
  private stopped = false;

  constructor(source: AsyncIterable<{ id: string; text: string }>) {
    this.iterator = source[Symbol.asyncIterator]();
    void this.pump();
  }

  private async pump(): Promise<void> {
    try {
      while (!this.stopped) {
        const next = await this.iterator.next();
        if (next.done || this.stopped) return;
        this.pending.push(next.value);
      }
    } catch {
      // the source failed: no more follow-ups, the run goes on
    }
  }

  take(): Array<{ id: string; text: string }> {
    return this.pending.splice(0);
  }

  stop(): void {
    this.stopped = true;
    void this.iterator.return?.().catch(() => undefined);
  }
}

export async function runBuiltinLoop(context: HarnessContext, options: BuiltinLoopOptions = {}): Promise<HarnessResult> {
  const { spec } = context;
  const started = Date.now();
  const budget: Budget = {
    maxTurns: spec.budget?.max_turns ?? DEFAULT_MAX_TURNS,
    maxSeconds: spec.budget?.max_seconds ?? timeoutMargin(spec.timeout_seconds),
    maxTokens: spec.budget?.max_tokens ?? null,
  };
  const fromEnv = contextLimitFromEnv(context.env);
  if (fromEnv instanceof Error) context.emit('error', { type: 'configuration', message: fromEnv.message });
  const contextLimit = options.contextLimitTokens ?? (fromEnv instanceof Error ? undefined : fromEnv) ?? DEFAULT_CONTEXT_LIMIT_TOKENS;
  const limits: ToolLimits = { ...DEFAULT_TOOL_LIMITS, ...options.toolLimits };
  const definitions = toolDefinitions();
  const tools: ChatTool[] = definitions.map((definition) => ({ type: 'function', function: definition }));
  const usage: Usage = { input_tokens: 0, output_tokens: 0, requests: 0 };
  let turn = 0;

  const client = new ModelClient({
    address: context.gateway.address,
    token: context.gateway.token,
    model: spec.model ?? 'default',
    ...options.model,
    onRetry: ({ attempt, delayMs, error }) =>
      context.emit('status', { type: 'model_retry', turn, attempt, delay_ms: delayMs, error: error.message, text: `model call failed (attempt ${attempt}), retrying in ${delayMs} ms: ${error.message}` }),
  });

  // The time budget: one timer that aborts whatever is in flight when the time is up.
  const timeUp = new AbortController();
  const timer = budget.maxSeconds === null ? undefined : setTimeout(() => timeUp.abort(new Error('the time budget ran out')), budget.maxSeconds * 1000);
  const work = AbortSignal.any([context.signal, timeUp.signal]);
  const inbox = new Inbox(context.messages());

  const finish = (result: Omit<HarnessResult, 'usage'>): HarnessResult => ({ ...result, usage: { ...usage } });
  const cancelled = (): HarnessResult =>
    finish({ outcome: 'cancelled', exitCode: null, summary: reasonOf(context.signal), stopReason: 'cancelled' });

  /** One model call with its accounting and event; throws ModelCallError. */
  const callModel = async (messages: Conversation, extra: { wrapUp: boolean; signal: AbortSignal }): Promise<ModelTurn> => {
    const charsSent = messages.chars();
    const estimatedInput = messages.estimateTokens();
    const callStarted = Date.now();
    const request = extra.wrapUp
      ? { messages: messages.messages, tools, toolChoice: 'none' as const, signal: extra.signal }
      : { messages: messages.messages, tools, signal: extra.signal };
    const answer = await client.complete(request);
    usage.requests += 1;
    const input = answer.usage?.input_tokens ?? estimatedInput;
    const output = answer.usage?.output_tokens ?? Math.ceil((answer.text.length + answer.toolCalls.reduce((n, c) => n + c.arguments.length, 0)) / 4);
    usage.input_tokens += input;
    usage.output_tokens += output;
    if (answer.usage) messages.calibrate(answer.usage.input_tokens, charsSent);
    context.emit('status', {
      type: 'model_call',
      turn,
      ...(extra.wrapUp ? { wrap_up: true } : {}),
      input_tokens: input,
      output_tokens: output,
      usage_reported: answer.usage !== null,
      ms: Date.now() - callStarted,
      attempts: answer.attempts,
      finish_reason: answer.finishReason,
      tool_calls: answer.toolCalls.length,
    });
    if (answer.text !== '') emitText(context, turn, answer.text);
    return answer;
  };

  try {
    const system = await buildSystemPrompt({ workdir: context.workdir, budget, toolNames: definitions.map((d) => d.name) });
    const conversation = new Conversation(system, spec.prompt, JSON.stringify(tools).length);
    context.emit('status', {
      type: 'harness_started',
      model: client.model,
      budget: { max_turns: budget.maxTurns, max_seconds: budget.maxSeconds, max_tokens: budget.maxTokens },
      context_limit_tokens: contextLimit,
      tools: definitions.map((d) => d.name),
      system_prompt_chars: system.length,
      text: `built-in agent: model ${client.model}, at most ${budget.maxTurns} turns`,
    });

    let stop: BudgetStop | 'completed' | undefined;
    let summary: string | null = null;
    for (;;) {
      if (context.signal.aborted) return cancelled();
      for (const message of inbox.take()) {
        conversation.push({ role: 'user', content: `[Follow-up message from the user]\n${message.text}` });
        context.emit('message', { id: message.id, text: message.text, delivered: true, turn: turn + 1 });
      }
      stop = budgetReached(budget, { turn, started, usage, timeUp: timeUp.signal.aborted });
      if (stop) break;

      const fitted = conversation.fit(contextLimit);
      if (fitted) {
        context.emit('status', {
          type: 'context_trimmed',
          turn: turn + 1,
          trimmed_tool_results: fitted.trimmedResults,
          dropped_messages: fitted.droppedMessages,
          tokens_before: fitted.tokensBefore,
          tokens_after: fitted.tokensAfter,
          context_limit_tokens: contextLimit,
        });
      }

      turn++;
      let answer: ModelTurn;
      try {
        answer = await callModel(conversation, { wrapUp: false, signal: work }).catch(async (err: unknown) => {
          // The model refused the size after all (our estimate was off): shrink hard, try once more.
          if (!isContextOverflow(err)) throw err;
          const shrunk = conversation.shrink(Math.min(conversation.estimateTokens(), contextLimit) * OVERFLOW_SHRINK);
          context.emit('status', {
            type: 'context_trimmed',
            turn,
            reason: 'the model refused the request size',
            trimmed_tool_results: shrunk.trimmedResults,
            dropped_messages: shrunk.droppedMessages,
            tokens_before: shrunk.tokensBefore,
            tokens_after: shrunk.tokensAfter,
            context_limit_tokens: contextLimit,
          });
          return callModel(conversation, { wrapUp: false, signal: work });
        });
      } catch (err) {
        if (context.signal.aborted) return cancelled();
        if (timeUp.signal.aborted) {
          stop = 'max_seconds';
          break;
        }
        const message = err instanceof ModelCallError ? err.message : `model call failed: ${String(err)}`;
        context.emit('error', { type: 'model_error', turn, message });
        return finish({ outcome: 'failed', exitCode: 1, summary: `${message}. The work done in ${turn - 1} earlier turn(s) is left in the working tree.`, stopReason: 'error' });
      }
      conversation.push({
        role: 'assistant',
        // Providers refuse an assistant message with neither text nor tool calls.
        content: answer.text !== '' ? answer.text : answer.toolCalls.length > 0 ? null : '(no answer)',
        ...(answer.toolCalls.length > 0
          ? { tool_calls: answer.toolCalls.map((call) => ({ id: call.id, type: 'function' as const, function: { name: call.name, arguments: call.arguments } })) }
          : {}),
      });

      if (answer.toolCalls.length === 0) {
        if (inbox.pending.length > 0) continue; // a follow-up arrived while the model was finishing
        if (answer.finishReason === 'length') {
          conversation.push({ role: 'user', content: 'Your answer was cut off by the output limit. Continue where you stopped; keep answers shorter.' });
          continue;
        }
        stop = 'completed';
        summary = answer.text.trim() === '' ? null : answer.text;
        break;
      }

      for (const call of answer.toolCalls) {
        if (work.aborted) {
          // Answer every call so the conversation stays valid for the wrap-up call.
          conversation.push({ role: 'tool', tool_call_id: call.id, content: 'Not run: the run was stopped before this call.' });
          continue;
        }
        const shownArguments = argumentsForEvent(call.arguments);
        context.emit('status', { type: 'tool_call', turn, id: call.id, name: call.name, arguments: shownArguments, text: describeCall(call.name, shownArguments) });
        const toolStarted = Date.now();
        const result = await runToolCall(call.name, call.arguments, { workdir: context.workdir, env: context.env, signal: work, limits });
        const shown = truncateMiddle(result.output, EVENT_OUTPUT_CHARS);
        context.emit('status', {
          type: 'tool_result',
          turn,
          id: call.id,
          name: call.name,
          ok: result.ok,
          output: shown.text,
          output_chars: result.output.length,
          truncated: result.truncated === true || shown.truncated,
          ms: Date.now() - toolStarted,
          ...(result.meta ? { meta: result.meta } : {}),
        });
        conversation.push({ role: 'tool', tool_call_id: call.id, content: result.output === '' ? '(no output)' : result.output });
      }
      if (context.signal.aborted) return cancelled();
    }

    if (stop !== 'completed') {
      context.emit('status', { type: 'budget_reached', stop_reason: stop, turn, elapsed_ms: Date.now() - started, tokens: usage.input_tokens + usage.output_tokens, text: `budget reached (${stop}): asking for a summary` });
      summary = await wrapUp(conversation, stop, options.wrapUpTimeoutMs ?? WRAP_UP_TIMEOUT_MS);
      if (context.signal.aborted) return cancelled();
    }
    return finish({ outcome: 'succeeded', exitCode: 0, summary, stopReason: stop });
  } finally {
    clearTimeout(timer);
    // Messages that came too late for the model: recorded, so the user sees they were not read.
    for (const message of inbox.take()) context.emit('message', { id: message.id, text: message.text, delivered: false });
    inbox.stop();
    client.close();
  }

  /** The one call after a budget ran out: no tools, a summary of the work so far. */
  async function wrapUp(conversation: Conversation, stop: BudgetStop, timeoutMs: number): Promise<string> {
    const fallback = `Stopped: reached ${WRAP_UP_PROMPTS[stop]} after ${turn} turn(s); the work so far is left in the working tree.`;
    conversation.push({
      role: 'user',
      content:
        `[Airlock] This run has reached ${WRAP_UP_PROMPTS[stop]} and ends now. Do not call any tools. ` +
        'Reply with a short summary of the work so far: what you changed, what you verified, and what remains to be done.',
    });
    conversation.fit(contextLimit);
    turn++;
    try {
      const answer = await callModel(conversation, { wrapUp: true, signal: AbortSignal.any([context.signal, AbortSignal.timeout(timeoutMs)]) });
      return answer.text.trim() === '' ? fallback : answer.text;
    } catch (err) {
      if (!context.signal.aborted) context.emit('error', { type: 'model_error', turn, wrap_up: true, message: (err as Error).message });
      return `${fallback} (The wrap-up call failed: ${(err as Error).message})`;
    }
  }
}

type BudgetStop = keyof typeof WRAP_UP_PROMPTS;

function budgetReached(budget: Budget, state: { turn: number; started: number; usage: Usage; timeUp: boolean }): BudgetStop | undefined {
  if (state.timeUp || (budget.maxSeconds !== null && Date.now() - state.started >= budget.maxSeconds * 1000)) return 'max_seconds';
  if (budget.maxTokens !== null && state.usage.input_tokens + state.usage.output_tokens >= budget.maxTokens) return 'max_tokens';
  if (state.turn >= budget.maxTurns) return 'max_turns';
  return undefined;
}

function contextLimitFromEnv(env: NodeJS.ProcessEnv): number | Error | undefined {
  const raw = env[CONTEXT_LIMIT_ENV];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (Number.isInteger(value) && value >= 1_000) return value;
  return new Error(
    `${CONTEXT_LIMIT_ENV}=${raw} is not usable: it must be the model's context window in tokens, an integer of at least 1000 (e.g. 200000) — using ${DEFAULT_CONTEXT_LIMIT_TOKENS} instead`,
  );
}

/**
 * Without a time budget, a task timeout still ends the run — killed, without a summary. Stop on
 * our own a little earlier (10 %, at most 2 minutes) so there is time to wrap up and commit.
 */
export function timeoutMargin(timeoutSeconds: number | null): number | null {
  if (timeoutSeconds === null) return null;
  return Math.max(1, timeoutSeconds - Math.min(120, Math.ceil(timeoutSeconds * 0.1)));
}

/** A 400/413 that says the request is too long for the model's context window. */
function isContextOverflow(err: unknown): boolean {
  return (
    err instanceof ModelCallError &&
    (err.status === 400 || err.status === 413) &&
    /context[_ ]length|context window|too many tokens|maximum context|prompt is too long|too large/i.test(err.message)
  );
}

function reasonOf(signal: AbortSignal): string {
  return signal.reason instanceof Error ? signal.reason.message : 'cancelled';
}

/** The arguments as JSON when they parse (readable in the transcript), else the raw text; capped. */
function argumentsForEvent(raw: string): unknown {
  if (raw.length <= EVENT_ARGUMENTS_CHARS) {
    try {
      return JSON.parse(raw) as unknown;
    } catch {
      return raw;
    }
  }
  return truncateMiddle(raw, EVENT_ARGUMENTS_CHARS).text;
}

/** One line for people: `$ npm test` for a command, `edit_file src/a.ts` for a file tool. */
function describeCall(name: string, args: unknown): string {
  const record = typeof args === 'object' && args !== null ? (args as Record<string, unknown>) : {};
  let line: string;
  if (name === 'shell' && typeof record.command === 'string') line = `$ ${record.command}`;
  else if (typeof record.path === 'string') line = `${name} ${record.path}`;
  else line = `${name} ${typeof args === 'string' ? args : JSON.stringify(args)}`;
  const firstLine = line.split('\n')[0]!;
  return firstLine.length > 200 || firstLine !== line ? `${firstLine.slice(0, 200)} …` : line;
}

/** Assistant text as `output` events (printed by `airlock task create --follow`), split to fit events. */
function emitText(context: HarnessContext, turn: number, text: string): void {
  const withNewline = text.endsWith('\n') ? text : `${text}\n`;
  for (const piece of splitForEvents(withNewline, MAX_EVENT_DATA_BYTES - 256)) {
    context.emit('output', { type: 'assistant', stream: 'stdout', turn, text: piece });
  }
}
