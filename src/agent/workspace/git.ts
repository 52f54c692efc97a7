/**
 * Running git for the agent runtime's own workspace steps (clone, commit, diff, push) — never
 * for the harness. Every call gets an argv (no shell), a hardened environment and a timeout, and
 * either returns its output or throws a `GitError` carrying git's own last words.
 *
 * Invariants:
 * - Git never prompts: GIT_TERMINAL_PROMPT=0, no askpass programs, ssh in BatchMode (unless the
 *   operator gave the task its own GIT_SSH_COMMAND/GIT_SSH, which is then used as is).
 * - Only the https, ssh and local transports are allowed (GIT_ALLOW_PROTOCOL): an `ext::` or
 *   `fd::` address smuggled in through config (url.*.insteadOf) cannot run a command.
 * - Repository hooks and fsmonitor never run for these steps (core.hooksPath=/dev/null), so a
 *   hook the task wrote cannot run with the agent's credentials in reach.
 */
import { spawn } from 'node:child_process';

/** A git step that runs longer than this is stuck (a hung remote), not slow. */
export const GIT_TIMEOUT_MS = 10 * 60_000;
/** Keep at most this much of git's stderr for error messages. */
const MAX_STDERR_CHARS = 8 * 1024;

export class GitError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'GitError';
  }
}

/** `GIT_CONFIG_COUNT`-style settings: command-line scope, so they beat every config file. */
export function configEnv(settings: Array<[string, string]>): Record<string, string> {
  const env: Record<string, string> = { GIT_CONFIG_COUNT: String(settings.length) };
  settings.forEach(([key, value], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = key;
    env[`GIT_CONFIG_VALUE_${i}`] = value;
  });
  return env;
}

/**
 * The environment for the agent's git steps: `base` (the agent's environment without the task
 * token) made non-interactive and restricted, plus `settings` as command-line config.
 */
export function gitEnvironment(base: NodeJS.ProcessEnv, settings: Array<[string, string]> = []): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  for (const name of Object.keys(env)) {
    if (/^GIT_CONFIG_(COUNT|KEY_\d+|VALUE_\d+|PARAMETERS)$/.test(name)) delete env[name];
  }
  delete env.GIT_ASKPASS;
  delete env.SSH_ASKPASS;
  env.GIT_TERMINAL_PROMPT = '0';
  env.GIT_ALLOW_PROTOCOL = 'https:ssh:file';
  if (!env.GIT_SSH_COMMAND && !env.GIT_SSH) env.GIT_SSH_COMMAND = 'ssh -o BatchMode=yes';
  return {
    ...env,
    ...configEnv([
      ['core.hooksPath', '/dev/null'],
      ['core.fsmonitor', 'false'],
      ['advice.detachedHead', 'false'],
      ...settings,
    ]),
  };
}

export interface GitRun {
  stdout: string;
  stderr: string;
}

export interface GitOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  signal?: AbortSignal | undefined;
  timeoutMs?: number;
  /** Receives stdout as it arrives instead of collecting it (for diffs of any size). */
  onStdout?: (chunk: Buffer) => void;
}

/** Run `git args…`; resolves with its output on exit status 0, else throws a GitError. */
export function git(args: string[], options: GitOptions): Promise<GitRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'], signal: options.signal });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (options.onStdout ? options.onStdout(chunk) : out.push(chunk)));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text: string) => {
      stderr = (stderr + text).slice(-MAX_STDERR_CHARS);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? GIT_TIMEOUT_MS);
    let failed: Error | undefined;
    child.on('error', (err) => {
      failed = err;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      if (code === 0) return resolve({ stdout, stderr });
      const why = failed && child.pid === undefined ? `could not start git: ${failed.message} — the task environment needs git on PATH` : lastLines(stderr) || `exited with ${signal ?? `status ${code}`}`;
      reject(new GitError(`git ${args[0]} failed: ${why}`, code, stderr));
    });
  });
}

/** The last few meaningful lines of git's stderr, on one line. */
export function lastLines(stderr: string, count = 3): string {
  return stderr
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith('hint:'))
    .slice(-count)
    .join(' / ');
}
