/**
 * The direct backend: runs each execution as host processes in its own workspace directory, with
 * its own HOME, TMPDIR and git config and a minimal environment (see workspace.ts). It shares the
 * host kernel, user and network with the worker: it isolates tasks from the host user's settings
 * and from the worker's credentials, not from a hostile program — use docker or kubernetes for
 * that.
 *
 * Lifecycle of one execution: prepare (workspace) → start: [setup command] → agent → [teardown
 * command] → everything the execution started is killed → `exited` resolves → cleanup.
 *
 * Invariants:
 * - Nothing a task starts outlives it: when the agent exits, its process group and every process
 *   carrying the execution's mark are killed (processes.ts); `exited` resolves only after that.
 * - meta.json always names the process group running now (pid + start time), so a restarted
 *   worker can find and stop it — and never kills a pid that was recycled.
 * - `stop` and `cleanup` are idempotent and safe to call at any point, also for unknown ids.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { constants } from 'node:os';
import { silentLog, type Log } from '../../../lib/log.js';
import { processStartTime } from '../../../lib/procfs.js';
import { describeError } from '../../../protocol/errors.js';
import { AGENT_ENV } from '../../../protocol/gateway.js';
import { ExecutionId } from '../../../protocol/task.js';
import { assertSocketPathFits } from '../../taskgateway/socket.js';
import type { Backend, ExitStatus, Leftover, PrepareRequest, PreparedEnvironment, RunningExecution, StartRequest } from '../backend.js';
import { checkAgentCommand } from '../agent-command.js';
import { ExecutionProcesses } from './processes.js';
import { WorkspaceMeta, gitconfigText, longestSocketPath, taskEnvironment, workspaceLayout, type WorkspaceLayout } from './workspace.js';

/** Keep this much of the agent runtime's own stderr for `ExitStatus.diagnostics`. */
const DIAGNOSTICS_BYTES = 4 * 1024;
/** PATH for tasks when the operator sets none: the standard system directories. */
const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin';
/** Grace for a setup/teardown command that ran past its timeout, before SIGKILL. */
const COMMAND_TIMEOUT_GRACE_MS = 2_000;

export interface DirectBackendOptions {
  /** Where per-execution workspaces are created (made 0700). Keep it short: socket paths have a 107-byte limit. */
  workspaceRoot: string;
  /** The command that starts the agent runtime (see agent-command.ts). */
  agentCommand: string[];
  /** Keep workspaces after executions end (for debugging). */
  noCleanup: boolean;
  /** Run with `bash -c` in the workspace before the agent; a failure fails the execution. */
  setupCommand?: string | undefined;
  /** Run with `bash -c` in the workspace after the agent; a failure is reported, not fatal. */
  teardownCommand?: string | undefined;
  setupTimeoutMs: number;
  teardownTimeoutMs: number;
  /** PATH for task processes (default: the worker's PATH, else the system directories). */
  path?: string | undefined;
  log?: Log;
}

interface Tracked {
  executionId: string;
  layout: WorkspaceLayout;
  meta: WorkspaceMeta;
  processes: ExecutionProcesses;
  /** The process the backend spawned last (setup, agent or teardown) and whether it has exited. */
  child?: { process: ChildProcess; exited: boolean; phase: 'setup' | 'agent' | 'teardown' };
  stopRequested: boolean;
  /** The grace of the stop in progress (a later stop with a shorter grace shortens it). */
  stopping?: Promise<void>;
  exited?: Promise<ExitStatus>;
}

interface CommandRun {
  exitCode: number;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  startError?: string;
}

function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal ? (constants.signals[signal] ?? 0) : 0);
}

export class DirectBackend implements Backend {
  readonly name = 'direct' as const;
  private readonly root: string;
  private readonly log: Log;
  private readonly executions = new Map<string, Tracked>();

  constructor(private readonly options: DirectBackendOptions) {
    this.root = path.resolve(options.workspaceRoot);
    this.log = options.log ?? silentLog;
  }

  async init(): Promise<void> {
    assertSocketPathFits(
      longestSocketPath(this.root),
      `the direct backend puts each task's gateway socket at <workspace root>/<execution id>/gateway.sock, which does not fit under ${this.root}; choose a shorter --workspace-root (for example /var/lib/airlock/ws)`,
    );
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    await chmod(this.root, 0o700);
    await checkAgentCommand(this.options.agentCommand);
  }

  async prepare(request: PrepareRequest): Promise<PreparedEnvironment> {
    const { spec, workerId } = request;
    const layout = workspaceLayout(this.root, spec.execution_id);
    for (const dir of [layout.dir, layout.home, layout.tmp, layout.work, path.join(layout.home, '.config'), path.join(layout.home, '.cache')]) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    }
    await writeFile(layout.gitconfig, gitconfigText(), { mode: 0o600 });
    const meta: WorkspaceMeta = {
      version: 1,
      worker_id: workerId,
      execution_id: spec.execution_id,
      epoch: spec.epoch,
      created_at: new Date().toISOString(),
      phase: 'prepared',
      pid: null,
      pid_start_time: null,
    };
    await writeMeta(layout, meta);
    if (!this.executions.has(spec.execution_id)) {
      this.executions.set(spec.execution_id, {
        executionId: spec.execution_id,
        layout,
        meta,
        processes: new ExecutionProcesses(spec.execution_id),
        stopRequested: false,
      });
    }
    return { executionId: spec.execution_id, gatewaySocketPath: layout.socket, workdir: layout.work };
  }

  async start(request: StartRequest): Promise<RunningExecution> {
    const executionId = request.prepared.executionId;
    const tracked = this.executions.get(executionId);
    if (!tracked) throw new Error(`execution ${executionId} was not prepared by this direct backend — call prepare() first`);
    if (tracked.exited) return { executionId, exited: tracked.exited };
    const env = taskEnvironment(tracked.layout, {
      executionId,
      path: this.options.path ?? process.env.PATH ?? DEFAULT_PATH,
      requestEnv: request.env,
    });
    tracked.exited = this.lifecycle(tracked, env, request.onOutput);
    return { executionId, exited: tracked.exited };
  }

  async stop(executionId: string, graceMs: number): Promise<void> {
    const tracked = this.executions.get(executionId);
    if (!tracked) return;
    tracked.stopRequested = true;
    if (!tracked.exited) return; // prepared but never started: nothing runs
    const stopping = tracked.processes.terminate(Math.max(0, graceMs), () => tracked.child?.exited ?? true).then((left) => {
      if (left.length > 0) this.log.error({ execution: executionId, pids: left.map((p) => p.pid) }, 'direct backend: processes survived SIGKILL (stuck in the kernel?)');
    });
    tracked.stopping = stopping;
    await stopping;
    await tracked.exited;
  }

  async cleanup(executionId: string): Promise<void> {
    const tracked = this.executions.get(executionId);
    if (tracked?.exited) {
      // Never remove a workspace something still runs in.
      await this.stop(executionId, 0);
    }
    this.executions.delete(executionId);
    const parsed = ExecutionId.safeParse(executionId);
    if (!parsed.success) return;
    const layout = tracked?.layout ?? workspaceLayout(this.root, executionId);
    if (this.options.noCleanup) {
      await markKept(layout).catch((err: unknown) => this.log.warn({ execution: executionId, err: describeError(err) }, 'direct backend: could not mark the kept workspace'));
      return;
    }
    await removeTree(layout.dir);
  }

  async recover(workerId: string): Promise<Leftover[]> {
    let names: string[];
    try {
      names = await readdir(this.root);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const leftovers: Leftover[] = [];
    for (const name of names.sort()) {
      if (!ExecutionId.safeParse(name).success || this.executions.has(name)) continue;
      const layout = workspaceLayout(this.root, name);
      const meta = await readMeta(layout);
      if (!meta) {
        this.log.warn({ dir: layout.dir }, 'direct backend: a workspace without a readable meta.json was left alone (whose is it?) — remove it by hand if it is stale');
        continue;
      }
      if (meta.worker_id !== workerId || meta.kept_at) continue;
      leftovers.push(await this.recoverOne(layout, meta));
    }
    return leftovers;
  }

  async close(): Promise<void> {
    // Nothing of our own to release. Running executions are not stopped here: the worker stops
    // or drains them, and a restarted worker's recover() finds any that are left.
  }

  private async recoverOne(layout: WorkspaceLayout, meta: WorkspaceMeta): Promise<Leftover> {
    const details: string[] = [];
    const processes = new ExecutionProcesses(meta.execution_id);
    if (meta.pid !== null) {
      const started = await processStartTime(meta.pid);
      if (started !== undefined && started === meta.pid_start_time) {
        processes.addGroup(meta.pid, started);
        details.push(`process group ${meta.pid} (${meta.phase}) was still running`);
      } else if (started !== undefined) {
        details.push(`pid ${meta.pid} now belongs to another process (different start time); it was left alone`);
      }
    }
    const scan = await processes.scan();
    const others = scan.processes.filter((p) => !scan.groups.includes(p.pgid));
    if (others.length > 0) details.push(`${others.length} other process(es) of this execution were running (pids ${others.map((p) => p.pid).join(', ')})`);
    const wasRunning = scan.processes.length > 0;
    if (wasRunning) {
      const left = await processes.kill();
      details.push(left.length === 0 ? 'sent SIGKILL; all gone' : `sent SIGKILL; still alive: ${left.map((p) => p.pid).join(', ')}`);
    } else {
      details.push(`nothing was running (last phase: ${meta.phase})`);
    }
    if (this.options.noCleanup) {
      await markKept(layout);
      details.push(`workspace ${layout.dir} kept (--no-cleanup)`);
    } else {
      await removeTree(layout.dir);
      details.push(`workspace ${layout.dir} removed`);
    }
    return { executionId: meta.execution_id, epoch: meta.epoch, wasRunning, detail: details.join('; ') };
  }

  private async lifecycle(tracked: Tracked, env: Record<string, string>, onOutput: StartRequest['onOutput']): Promise<ExitStatus> {
    let status: ExitStatus;
    try {
      status = await this.setupAndAgent(tracked, env, onOutput);
    } catch (err) {
      status = { exitCode: 1, signal: null, failure: { reason: 'backend', message: `the direct backend failed to run the task: ${describeError(err)}` } };
    }
    // A stop in progress finishes first: its SIGKILL sweep must not catch the teardown command.
    await tracked.stopping;
    if (this.options.teardownCommand) {
      try {
        await this.teardown(tracked, env, onOutput);
      } catch (err) {
        this.log.warn({ execution: tracked.executionId, err: describeError(err) }, 'direct backend: teardown command could not run');
      }
    }
    // Whatever is left — setup's daemons, escaped background jobs — goes with the execution.
    const left = await tracked.processes.kill();
    if (left.length > 0) this.log.error({ execution: tracked.executionId, pids: left.map((p) => p.pid) }, 'direct backend: processes survived SIGKILL');
    await tracked.stopping;
    await this.updateMeta(tracked, { phase: 'exited', pid: null, pid_start_time: null, exit_code: status.exitCode });
    return status;
  }

  private async setupAndAgent(tracked: Tracked, env: Record<string, string>, onOutput: StartRequest['onOutput']): Promise<ExitStatus> {
    const setup = this.options.setupCommand;
    if (setup && !tracked.stopRequested) {
      const run = await this.runCommand(tracked, 'setup', setup, env, this.options.setupTimeoutMs, (text) => onOutput('setup', text));
      if (tracked.stopRequested) return { exitCode: run.exitCode, signal: run.signal };
      if (run.startError || run.timedOut || run.exitCode !== 0) {
        return { exitCode: run.exitCode, signal: run.signal, failure: { reason: 'setup_command', message: commandFailure('setup', setup, run, this.options.setupTimeoutMs) } };
      }
    }
    if (tracked.stopRequested) return { exitCode: 128 + constants.signals.SIGTERM, signal: 'SIGTERM' };
    return this.runAgent(tracked, env);
  }

  private async teardown(tracked: Tracked, env: Record<string, string>, onOutput: StartRequest['onOutput']): Promise<void> {
    const command = this.options.teardownCommand!;
    const run = await this.runCommand(tracked, 'teardown', command, env, this.options.teardownTimeoutMs, (text) => onOutput('teardown', text));
    if (run.startError || run.timedOut || run.exitCode !== 0) {
      const message = commandFailure('teardown', command, run, this.options.teardownTimeoutMs);
      onOutput('teardown', `${message}\n`);
      this.log.warn({ execution: tracked.executionId }, message);
    }
  }

  private async runAgent(tracked: Tracked, env: Record<string, string>): Promise<ExitStatus> {
    const [program, ...args] = this.options.agentCommand;
    // The task token goes to the agent on stdin, never in an environment: the task's processes
    // run as the same user and could read the agent's /proc/<pid>/environ.
    const token = env[AGENT_ENV.token];
    const agentEnv = withoutToken(env);
    if (token !== undefined) agentEnv[AGENT_ENV.tokenOnStdin] = '1';
    const child = spawn(program!, args, { cwd: tracked.layout.work, env: agentEnv, detached: true, stdio: [token === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    if (token !== undefined && child.stdin) {
      child.stdin.on('error', () => undefined); // an agent that died at once: its exit says so
      child.stdin.end(`${token}\n`);
    }
    const diagnostics: string[] = [];
    let diagnosticsBytes = 0;
    const keep = (text: string) => {
      diagnostics.push(text);
      diagnosticsBytes += text.length;
      while (diagnosticsBytes > DIAGNOSTICS_BYTES && diagnostics.length > 1) diagnosticsBytes -= diagnostics.shift()!.length;
    };
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue; // always piped; the type cannot tell
      stream.setEncoding('utf8');
      stream.on('data', (text: string) => {
        keep(text);
        this.log.info({ execution: tracked.executionId, text: text.trimEnd() }, 'agent runtime output');
      });
    }
    const exit = await this.track(tracked, child, 'agent');
    if (exit.startError) {
      return { exitCode: 127, signal: null, failure: { reason: 'backend', message: `the agent runtime could not be started (${program}): ${exit.startError} — check the agent command` } };
    }
    // The agent is done: its process group and everything else of the execution goes with it.
    await tracked.processes.kill();
    const status: ExitStatus = { exitCode: exitCodeOf(exit.code, exit.signal), signal: exit.signal };
    const text = diagnostics.join('').trim();
    if (text) status.diagnostics = text.slice(-DIAGNOSTICS_BYTES);
    return status;
  }

  /** Run `bash -c command` in the workspace with the task's environment and a timeout. */
  private async runCommand(
    tracked: Tracked,
    phase: 'setup' | 'teardown',
    command: string,
    env: Record<string, string>,
    timeoutMs: number,
    output: (text: string) => void,
  ): Promise<CommandRun> {
    const child = spawn('bash', ['-c', command], { cwd: tracked.layout.work, env: withoutToken(env), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [child.stdout, child.stderr]) {
      stream.setEncoding('utf8');
      stream.on('data', output);
    }
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      void tracked.processes.terminate(COMMAND_TIMEOUT_GRACE_MS, () => tracked.child?.exited ?? true);
    }, timeoutMs);
    try {
      const exit = await this.track(tracked, child, phase);
      if (exit.startError) return { exitCode: 127, signal: null, timedOut: false, startError: exit.startError };
      return { exitCode: exitCodeOf(exit.code, exit.signal), signal: exit.signal, timedOut };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Record `child` as the execution's running process group, and wait for it to exit and its output to end. */
  private async track(
    tracked: Tracked,
    child: ChildProcess,
    phase: 'setup' | 'agent' | 'teardown',
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null; startError?: string }> {
    const entry: NonNullable<Tracked['child']> = { process: child, exited: false, phase };
    tracked.child = entry;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; startError?: string }>((resolve) => {
      child.once('error', (err) => {
        if (child.pid === undefined) resolve({ code: null, signal: null, startError: err.message });
      });
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    if (child.pid !== undefined) {
      const startTime = await processStartTime(child.pid);
      tracked.processes.addGroup(child.pid, startTime);
      await this.updateMeta(tracked, { phase, pid: child.pid, pid_start_time: startTime ?? null });
      // A stop that came while this was starting applies to it too.
      if (tracked.stopRequested && !tracked.stopping) void this.stop(tracked.executionId, 0);
    }
    const result = await exited;
    entry.exited = true;
    return result;
  }

  private async updateMeta(tracked: Tracked, changes: Partial<WorkspaceMeta>): Promise<void> {
    tracked.meta = { ...tracked.meta, ...changes };
    // Another instance (a restarted worker's recover) may have taken the workspace over: its word stands.
    const onDisk = await readMeta(tracked.layout);
    if (onDisk?.kept_at) return;
    await writeMeta(tracked.layout, tracked.meta).catch((err: unknown) => {
      this.log.warn({ execution: tracked.executionId, err: describeError(err) }, 'direct backend: could not update meta.json');
    });
  }
}

function commandFailure(phase: 'setup' | 'teardown', command: string, run: CommandRun, timeoutMs: number): string {
  const quoted = `\`${command.length > 200 ? `${command.slice(0, 200)}…` : command}\``;
  if (run.startError) return `the ${phase} command ${quoted} could not be started: ${run.startError} — the worker's host needs bash on PATH`;
  if (run.timedOut) {
    return `the ${phase} command ${quoted} did not finish within ${Math.round(timeoutMs / 1000)} s and was stopped — make it faster, or raise ${phase}_timeout in the worker's configuration`;
  }
  const how = run.signal ? `was killed by ${run.signal}` : `exited with status ${run.exitCode}`;
  return `the ${phase} command ${quoted} ${how} — fix the command (its output is in the transcript), or remove it from the worker's configuration`;
}

async function writeMeta(layout: WorkspaceLayout, meta: WorkspaceMeta): Promise<void> {
  // Write-then-rename: a crash mid-write never leaves a torn meta.json for recovery to trip on.
  const temporary = `${layout.meta}.tmp`;
  await writeFile(temporary, `${JSON.stringify(meta, null, 2)}\n`, { mode: 0o600 });
  await rename(temporary, layout.meta);
}

async function readMeta(layout: WorkspaceLayout): Promise<WorkspaceMeta | undefined> {
  try {
    const parsed = WorkspaceMeta.safeParse(JSON.parse(await readFile(layout.meta, 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

async function markKept(layout: WorkspaceLayout): Promise<void> {
  const meta = await readMeta(layout);
  if (!meta || meta.kept_at) return;
  await writeMeta(layout, { ...meta, kept_at: new Date().toISOString() });
}

/**
 * `rm -rf` that also removes what a task made read-only (Go's module cache, `chmod -w` trees):
 * on EACCES/EPERM, make every directory writable and try again.
 */
async function removeTree(dir: string): Promise<void> {
  try {
    await rm(dir, { recursive: true, force: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM' && code !== 'ENOTEMPTY') throw err;
    await makeWritable(dir);
    await rm(dir, { recursive: true, force: true });
  }
}

async function makeWritable(dir: string): Promise<void> {
  await chmod(dir, 0o700).catch(() => undefined);
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    if (entry.isDirectory()) await makeWritable(path.join(dir, entry.name));
  }
}

/** The environment without the task token (setup/teardown commands never need it). */
function withoutToken(env: Record<string, string>): Record<string, string> {
  const copy = { ...env };
  delete copy[AGENT_ENV.token];
  return copy;
}
