/**
 * What every third-party CLI agent harness (claude-code, codex, command:<name>) shares: start the
 * model proxy, give the CLI an environment in which its model base URL is that proxy and every
 * provider credential is a dummy, run it with `runProcess`, turn its JSON-lines output into
 * transcript events, and map its exit into a result.
 *
 * Invariants:
 * - The CLI never sees the task token or a real provider key: its environment is the agent's
 *   (already without the token) with provider credentials replaced by a dummy; the proxy adds
 *   the token on its way to the gateway.
 * - Every stdout line is accounted for: a line the adapter understands becomes structured events,
 *   anything else (and all of stderr) is kept as `output`.
 * - The proxy and any prompt file are gone when the harness returns.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { EventKind } from '../../protocol/task.js';
import type { HarnessContext, HarnessResult } from './harness.js';
import { startModelProxy, type ModelProxy } from './model-proxy.js';
import { runProcess } from './process.js';

/**
 * The value CLIs get as their API key: they insist on having one, and the proxy drops it. It is
 * deliberately not secret-looking, so no one mistakes it for a credential.
 */
export const DUMMY_API_KEY = 'airlock-model-proxy-no-key-needed';

/**
 * Provider credentials a CLI might pick up from the environment and send somewhere else; an
 * operator may have passed them to tasks. They are replaced (by the dummy) or removed.
 */
export const PROVIDER_CREDENTIAL_ENV = [
  'ANTHROPIC_API_KEY',
  'ANTHROPIC_AUTH_TOKEN',
  'CLAUDE_CODE_OAUTH_TOKEN',
  'OPENAI_API_KEY',
  'CODEX_API_KEY',
  'AZURE_OPENAI_API_KEY',
  'AWS_BEARER_TOKEN_BEDROCK',
  'GEMINI_API_KEY',
  'GOOGLE_API_KEY',
];

/**
 * Largest prompt passed as an argv element. Linux caps one argument at 128 KiB (MAX_ARG_STRLEN);
 * prompts may be 256 KiB, so longer ones go to a file the CLI is told to read.
 */
const MAX_ARGV_PROMPT_BYTES = 96 * 1024;
/** Longest text kept in one structured event field; the gateway caps a whole event at 64 KiB. */
export const MAX_EVENT_TEXT_CHARS = 16 * 1024;
/** How much of the CLI's stderr a failure summary quotes (its last words usually say why). */
const STDERR_TAIL_CHARS = 1000;
/** Exit code for a harness that could not be set up (as for the agent's own usage errors). */
const EXIT_CONFIG = 2;

export interface CliInvocation {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Directories the CLI needs to exist before it starts (e.g. its config home). */
  dirs?: string[];
}

export interface CliAgentAdapter {
  /** The harness name, for messages. */
  name: string;
  /** What to install in the task image when the command is missing. */
  installHint: string;
  /** The command to run; may throw (a configuration problem), which fails the run with its message. */
  build(setup: CliSetup): CliInvocation;
  /** One stdout line; returns false when it is not the CLI's JSON (it is then kept as output). */
  onLine?(line: string, emit: HarnessContext['emit']): boolean;
  /** The final summary the CLI reported, if any (called after it exited). */
  summary?(): string | null;
  /** A failure the CLI reported in its output even though it exited 0 (e.g. an API error). */
  reportedError?(): string | null;
  usage?(): { input_tokens: number; output_tokens: number } | null;
}

export interface CliSetup {
  proxy: ModelProxy;
  /** The prompt to pass (the original, or a pointer to `promptFile` when it is too long for argv). */
  prompt: string;
  /** A file holding the whole prompt. */
  promptFile: string;
  /** The agent's environment with provider credentials removed and HOME guaranteed. */
  env: NodeJS.ProcessEnv;
  context: HarnessContext;
}

/** Run a CLI agent adapter in `context`. */
export async function runCliAgent(context: HarnessContext, adapter: CliAgentAdapter): Promise<HarnessResult> {
  const tmp = context.env.TMPDIR || os.tmpdir();
  const promptFile = path.join(tmp, `airlock-prompt-${randomBytes(6).toString('hex')}.md`);
  await writeFile(promptFile, context.spec.prompt, { mode: 0o600 });
  const prompt =
    Buffer.byteLength(context.spec.prompt, 'utf8') <= MAX_ARGV_PROMPT_BYTES
      ? context.spec.prompt
      : `The task is too long to pass on the command line; it is in the file ${promptFile}. Read that file and carry out the task it describes.`;

  let proxy: ModelProxy | undefined;
  let running = true;
  const recordMessages = (async () => {
    for await (const message of context.messages()) {
      if (!running) break; // a non-interactive CLI cannot take them; keep them in the transcript
      context.emit('message', { id: message.id, text: message.text, delivered: false });
    }
  })();
  try {
    proxy = await startModelProxy(context.gateway, { model: context.spec.model ?? null });
    const env = cliBaseEnv(context.env, tmp);
    await mkdir(env.HOME!, { recursive: true });
    let invocation: CliInvocation;
    try {
      invocation = adapter.build({ proxy, prompt, promptFile, env, context });
    } catch (err) {
      // A configuration problem (e.g. a template placeholder without a value): run nothing.
      const summary = `${adapter.name}: ${(err as Error).message}`;
      context.emit('error', { message: summary });
      return { outcome: 'failed', exitCode: EXIT_CONFIG, summary };
    }
    for (const needed of invocation.dirs ?? []) await mkdir(needed, { recursive: true });
    context.emit('lifecycle', { phase: 'cli_started', harness: adapter.name, command: invocation.command, model: context.spec.model ?? null });

    let pending = '';
    const onStdout = (text: string) => {
      pending += text;
      let newline = pending.indexOf('\n');
      while (newline !== -1) {
        handleLine(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
        newline = pending.indexOf('\n');
      }
    };
    const handleLine = (line: string) => {
      if (line.trim() === '') return;
      let understood = false;
      try {
        understood = adapter.onLine?.(line, (kind, data) => context.emit(kind, data)) ?? false;
      } catch {
        understood = false;
      }
      if (!understood) context.emit('output', { stream: 'stdout', text: `${line}\n` });
    };
    let stderrTail = '';
    const emit = (kind: EventKind, data: Record<string, unknown>) => {
      if (kind === 'output' && data.stream === 'stdout' && typeof data.text === 'string') onStdout(data.text);
      else {
        if (kind === 'output' && typeof data.text === 'string') stderrTail = (stderrTail + data.text).slice(-STDERR_TAIL_CHARS);
        context.emit(kind, data);
      }
    };

    const outcome = await runProcess({ command: invocation.command, args: invocation.args, cwd: context.workdir, env: invocation.env }, { emit, signal: context.signal });
    if (pending !== '') handleLine(pending);
    const usage = adapter.usage?.() ?? null;
    const base = usage ? { usage: { ...usage, requests: proxy.forwarded } } : { usage: { input_tokens: 0, output_tokens: 0, requests: proxy.forwarded } };

    if (outcome.startError) {
      return {
        outcome: 'failed',
        exitCode: 127,
        summary: `could not start ${invocation.command}: ${outcome.startError} — the task environment needs ${adapter.installHint}`,
      };
    }
    if (outcome.cancelled) {
      const reason = context.signal.reason instanceof Error ? context.signal.reason.message : 'cancelled';
      return { outcome: 'cancelled', exitCode: outcome.exitCode, summary: reason, stopReason: 'cancelled', ...base };
    }
    const reported = adapter.reportedError?.() ?? null;
    const summary = adapter.summary?.() ?? null;
    if (outcome.exitCode === 0 && reported === null) return { outcome: 'succeeded', exitCode: 0, summary, ...base };
    const how = outcome.signal ? `was killed by ${outcome.signal}` : `exited with status ${outcome.exitCode}`;
    return {
      outcome: 'failed',
      exitCode: outcome.exitCode === 0 ? 1 : outcome.exitCode,
      summary: reported
        ? `${adapter.name}: ${reported}`
        : `${adapter.name} ${how}${summary ? `: ${summary}` : stderrTail.trim() ? `; its last output: ${stderrTail.trim()}` : ''}`,
      ...base,
    };
  } finally {
    running = false;
    await proxy?.close();
    await rm(promptFile, { force: true });
    void recordMessages.catch(() => undefined);
  }
}

/** The agent's environment for a CLI: no provider credentials, and a HOME inside the task environment. */
function cliBaseEnv(env: NodeJS.ProcessEnv, tmp: string): NodeJS.ProcessEnv {
  const copy = { ...env };
  for (const name of PROVIDER_CREDENTIAL_ENV) delete copy[name];
  // The backend always sets HOME to the execution's own home; never fall back to the host user's.
  if (!copy.HOME) copy.HOME = path.join(tmp, 'home');
  return copy;
}

/** Cut `text` to `max` characters, saying how much was left out. */
export function clip(text: string, max = MAX_EVENT_TEXT_CHARS): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length - max} more characters)`;
}

/** A JSON value as text no longer than `max` (tool inputs can be whole files). */
export function clipJson(value: unknown, max = MAX_EVENT_TEXT_CHARS): unknown {
  const text = JSON.stringify(value) ?? 'null';
  return text.length <= max ? value : clip(text, max);
}
