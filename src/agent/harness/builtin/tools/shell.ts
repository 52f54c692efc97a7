/**
 * The `shell` tool: `bash -c <command>` in the working directory, in its own process group, with
 * stdout and stderr interleaved into one bounded buffer (head and tail kept).
 *
 * Invariants:
 * - Memory is bounded by the output limit, whatever the command prints.
 * - The call always returns: on the command's timeout, on silence, or on abort the whole group gets
 *   SIGTERM, then SIGKILL after `killGraceMs`; pipes held open by an escaped process are abandoned
 *   after PIPE_DRAIN_MS.
 * - When the command exits, what it left running in its group is killed (as in process.ts).
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import * as z from 'zod';
import { HeadTail } from './output.js';
import { fail, type Tool, type ToolContext, type ToolResult } from './types.js';

/** After exit (or a kill), how long to keep reading pipes something outside the group holds. */
const PIPE_DRAIN_MS = 1_000;
const SHELL = 'bash';

const input = z.object({
  command: z.string().min(1).describe('The bash command line to run, e.g. "npm test 2>&1 | tail -50".'),
  timeout_seconds: z.number().int().positive().optional().describe('Wall-clock limit for this command (default 120).'),
  silence_timeout_seconds: z
    .number()
    .int()
    .positive()
    .optional()
    .describe('Stop the command after this many seconds without output (default 30). Raise it for commands known to be quiet.'),
});
type ShellInput = z.infer<typeof input>;

type StopReason = 'timeout' | 'silence' | 'cancelled';

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is already gone
  }
}

export const shellTool: Tool<ShellInput> = {
  name: 'shell',
  description: [
    'Run a bash command in the working directory and get its combined stdout and stderr and its exit code.',
    'Use it to build, test, run git, install dependencies and inspect the system.',
    'The command has no stdin (it must not wait for input: pass flags like --yes).',
    'It is stopped after timeout_seconds (default 120) or after silence_timeout_seconds without output (default 30); you then get the output so far.',
    'Long output is cut in the middle: pipe through head, tail or grep to see what matters.',
    'Processes left in the background are stopped when the command ends.',
    'Prefer read_file, edit_file, list_files and grep over cat, sed and find for files.',
  ].join(' '),
  inputSchema: input,
  run: runShell,
};

async function runShell(args: ShellInput, context: ToolContext): Promise<ToolResult> {
  const { limits, signal } = context;
  if (signal.aborted) return fail('The command was not started: the task is being cancelled.', { cancelled: true });
  const timeoutMs = Math.min(args.timeout_seconds !== undefined ? args.timeout_seconds * 1000 : limits.commandTimeoutMs, limits.maxCommandTimeoutMs);
  const silenceMs = Math.min(args.silence_timeout_seconds !== undefined ? args.silence_timeout_seconds * 1000 : limits.silenceTimeoutMs, timeoutMs);
  const started = Date.now();
  const output = new HeadTail(limits.maxOutputChars);

  const outcome = await new Promise<{ exitCode: number | null; signal: NodeJS.Signals | null; stopped?: StopReason; startError?: string }>(
    (resolve) => {
      const child = spawn(SHELL, ['-c', args.command], {
        cwd: context.workdir,
        env: context.env,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stopped: StopReason | undefined;
      let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
      let openStreams = 2;
      let settled = false;
      let drainTimer: NodeJS.Timeout | undefined;
      let silenceTimer: NodeJS.Timeout | undefined;
      const timeoutTimer = setTimeout(() => stop('timeout'), timeoutMs);

      const armSilence = () => {
        clearTimeout(silenceTimer);
        silenceTimer = setTimeout(() => stop('silence'), silenceMs);
      };
      const stop = (reason: StopReason) => {
        if (stopped || exit || child.pid === undefined) return;
        stopped = reason;
        clearTimeout(silenceTimer);
        clearTimeout(timeoutTimer);
        const pid = child.pid;
        signalGroup(pid, 'SIGTERM');
        // Not cleared on finish: what is left of a stopped group still gets its SIGKILL.
        setTimeout(() => signalGroup(pid, 'SIGKILL'), limits.killGraceMs);
        // Whatever still holds the pipes after the grace period is not worth waiting for.
        drainTimer = setTimeout(abandonPipes, limits.killGraceMs + PIPE_DRAIN_MS);
      };
      const abandonPipes = () => {
        child.stdout.destroy();
        child.stderr.destroy();
        openStreams = 0;
        finishIfDone();
      };
      const finish = (result: { exitCode: number | null; signal: NodeJS.Signals | null; stopped?: StopReason; startError?: string }) => {
        if (settled) return;
        settled = true;
        clearTimeout(timeoutTimer);
        clearTimeout(silenceTimer);
        clearTimeout(drainTimer);
        signal.removeEventListener('abort', onAbort);
        resolve(result);
      };
      const finishIfDone = () => {
        if (!exit || openStreams > 0) return;
        const code = exit.code ?? 128 + (exit.signal ? (constants.signals[exit.signal] ?? 0) : 0);
        finish({ exitCode: code, signal: exit.signal, ...(stopped ? { stopped } : {}) });
      };
      const onAbort = () => stop('cancelled');

      for (const stream of [child.stdout, child.stderr]) {
        stream.setEncoding('utf8');
        stream.on('data', (text: string) => {
          output.push(text);
          if (!stopped && !exit) armSilence();
        });
        stream.on('close', () => {
          openStreams--;
          finishIfDone();
        });
      }
      child.on('error', (err) => {
        if (child.pid === undefined) finish({ exitCode: null, signal: null, startError: err.message });
      });
      child.on('exit', (code, exitSignal) => {
        exit = { code, signal: exitSignal };
        clearTimeout(silenceTimer);
        clearTimeout(timeoutTimer);
        if (child.pid !== undefined && !stopped) signalGroup(child.pid, 'SIGKILL');
        if (!stopped) drainTimer = setTimeout(abandonPipes, PIPE_DRAIN_MS);
        finishIfDone();
      });
      signal.addEventListener('abort', onAbort, { once: true });
      armSilence();
    },
  );

  const durationMs = Date.now() - started;
  const meta = {
    exitCode: outcome.exitCode,
    signal: outcome.signal,
    stopped: outcome.stopped ?? null,
    durationMs,
    outputChars: output.totalChars,
  };
  if (outcome.startError) {
    return fail(`Could not start ${SHELL}: ${outcome.startError} — the task environment needs bash on PATH.`, meta);
  }
  const text = output.text();
  const body = text.length > 0 ? text.replace(/\n?$/, '\n') : '(no output)\n';
  let status: string;
  switch (outcome.stopped) {
    case 'timeout':
      status = `[stopped: the command was still running after ${timeoutMs / 1000} s — run long jobs with a larger timeout_seconds, or make them faster]`;
      break;
    case 'silence':
      status = `[stopped: the command printed nothing for ${silenceMs / 1000} s (waiting for input, or quiet) — if it needs more time, rerun with a larger silence_timeout_seconds; if it waited for input, pass it non-interactive flags]`;
      break;
    case 'cancelled':
      status = '[stopped: the task is being cancelled]';
      break;
    default:
      status = `[exit code ${outcome.exitCode}]`;
  }
  const result: ToolResult = { ok: outcome.stopped === undefined && outcome.exitCode === 0, output: body + status, meta };
  if (output.truncated) result.truncated = true;
  return result;
}
