/**
 * Running a harness's program: a child process in its own process group, its output streamed as
 * `output` events, stopped as a group when the task is cancelled. The shell harness uses it, and
 * so will adapters for third-party CLI agents (each is "build a command line, then run it").
 *
 * Invariants:
 * - The child leads its own process group, so a cancel reaches everything it started (SIGTERM to
 *   the group, SIGKILL after KILL_GRACE_MS) without signalling the agent itself.
 * - When the program exits, whatever it left running in its group is killed: a task's background
 *   jobs do not outlive it (and cannot hold its output pipes open). After a cancel the group keeps
 *   its full grace period, even once the program itself has exited.
 * - Output events carry whole characters and fit the gateway's per-event limit.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { MAX_EVENT_DATA_BYTES } from '../../protocol/task.js';
import { splitForEvents } from '../report/split.js';
import type { HarnessContext } from './harness.js';

/** Time a cancelled program gets to clean up after SIGTERM before SIGKILL. */
export const KILL_GRACE_MS = 5_000;
/**
 * After the program exits, how long its output pipes may stay open (held by something that left
 * the process group) before we stop reading: the last output has arrived by then.
 */
const PIPE_DRAIN_MS = 2_000;
/** Room in an output event for the JSON around the text: {"stream":"stdout","text":"…"}. */
const OUTPUT_EVENT_OVERHEAD_BYTES = 64;

export interface ProcessSpec {
  command: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
}

export interface ProcessOutcome {
  /** Exit code, or 128 + signal number when killed by a signal; null when it never started. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** True when the run ended because the context's signal was aborted. */
  cancelled: boolean;
  /** Why it could not start (e.g. the command does not exist). */
  startError?: string;
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is already gone
  }
}

/** Run `spec` for the harness in `context`, streaming stdout/stderr as `output` events. */
export function runProcess(spec: ProcessSpec, context: Pick<HarnessContext, 'emit' | 'signal'>): Promise<ProcessOutcome> {
  const { emit, signal } = context;
  if (signal.aborted) return Promise.resolve({ exitCode: null, signal: null, cancelled: true });
  return new Promise((resolve) => {
    const child = spawn(spec.command, spec.args, { cwd: spec.cwd, env: spec.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let killTimer: NodeJS.Timeout | undefined;
    let drainTimer: NodeJS.Timeout | undefined;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let openStreams = 2;
    let settled = false;

    const finish = (outcome: ProcessOutcome) => {
      if (settled) return;
      settled = true;
      // A pending kill timer stays: what is left of a cancelled group still gets its SIGKILL.
      clearTimeout(drainTimer);
      signal.removeEventListener('abort', onAbort);
      resolve(outcome);
    };
    const finishIfDone = () => {
      if (!exit || openStreams > 0) return;
      const code = exit.code ?? 128 + (exit.signal ? (constants.signals[exit.signal] ?? 0) : 0);
      finish({ exitCode: code, signal: exit.signal, cancelled: signal.aborted });
    };
    const onAbort = () => {
      if (child.pid === undefined || exit) return;
      signalGroup(child.pid, 'SIGTERM');
      killTimer = setTimeout(() => signalGroup(child.pid!, 'SIGKILL'), KILL_GRACE_MS);
    };

    for (const [name, stream] of [
      ['stdout', child.stdout],
      ['stderr', child.stderr],
    ] as const) {
      stream.setEncoding('utf8');
      stream.on('data', (text: string) => {
        for (const piece of splitForEvents(text, MAX_EVENT_DATA_BYTES - OUTPUT_EVENT_OVERHEAD_BYTES)) emit('output', { stream: name, text: piece });
      });
      stream.on('close', () => {
        openStreams--;
        finishIfDone();
      });
    }
    child.on('error', (err) => {
      if (child.pid === undefined) finish({ exitCode: null, signal: null, cancelled: false, startError: err.message });
    });
    child.on('exit', (code, exitSignal) => {
      exit = { code, signal: exitSignal };
      // Killed by a signal: someone is stopping the task (our cancel, or the backend's SIGTERM,
      // which may reach the program before the agent's own handler runs).
      const cancelling = killTimer !== undefined || signal.aborted || exitSignal !== null;
      // The program is done: nothing it started in its group may outlive it. When it is being
      // stopped, the rest of the group keeps its grace period, then gets SIGKILL.
      if (child.pid !== undefined) {
        const pid = child.pid;
        if (!cancelling) signalGroup(pid, 'SIGKILL');
        else killTimer ??= setTimeout(() => signalGroup(pid, 'SIGKILL'), KILL_GRACE_MS);
      }
      drainTimer = setTimeout(
        () => {
          child.stdout.destroy();
          child.stderr.destroy();
          openStreams = 0;
          finishIfDone();
        },
        cancelling ? KILL_GRACE_MS + PIPE_DRAIN_MS : PIPE_DRAIN_MS,
      );
      finishIfDone();
    });
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
