/**
 * Runs the real `airlock` binary (bin/airlock.js over dist/) as a child process, for CLI tests
 * against a server started in the test process. Builds dist/ first when any source file is newer
 * than the build, so the binary under test is the code under test.
 */
import { tmpdir } from 'node:os';
import { execFile, spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

export const ROOT = new URL('../..', import.meta.url).pathname;
const BIN = join(ROOT, 'bin', 'airlock.js');
const BUILT = join(ROOT, 'dist', 'cli', 'main.js');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(path));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

function builtAt(): number {
  try {
    return statSync(BUILT).mtimeMs;
  } catch {
    return 0;
  }
}

/** `npm run build` when dist/ is missing or older than src/ (a build takes tens of seconds). */
export async function ensureBuilt(): Promise<void> {
  if (builtAt() >= newestMtime(join(ROOT, 'src'))) return;
  try {
    await promisify(execFile)('npm', ['run', 'build', '--silent'], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    const out = err as { stdout?: string; stderr?: string };
    throw new Error(`npm run build failed — the CLI tests need a compiling tree:\n${out.stdout ?? ''}${out.stderr ?? ''}`);
  }
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: Record<string, string | undefined>;
  input?: string;
  timeoutMs?: number;
  /** Working directory; default: the system temp dir, so no developer's ./.airlock is ever found. */
  cwd?: string;
}

/** Run `airlock …args` to completion. */
export function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return runCliStreaming(args, options, () => undefined);
}

/** Like runCli, with the output visible while it runs (for commands that wait: --wait, -f). */
export function startCli(args: string[], options: CliOptions = {}): { done: Promise<CliResult>; stdout: () => string } {
  let stdoutSoFar = '';
  const done = runCliStreaming(args, options, (chunk) => (stdoutSoFar += chunk));
  return { done, stdout: () => stdoutSoFar };
}

/**
 * The environment is minimal and explicit (PATH plus what the test gives), so no developer
 * config or credentials leak into a test.
 */
function runCliStreaming(args: string[], options: CliOptions, onStdout: (chunk: string) => void): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_NO_WARNINGS: '1' };
    for (const [k, v] of Object.entries(options.env ?? {})) if (v !== undefined) env[k] = v;
    const child = spawn(process.execPath, [BIN, ...args], { cwd: options.cwd ?? tmpdir(), env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      onStdout(d.toString());
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`airlock ${args.join(' ')} did not exit within ${options.timeoutMs ?? 20_000} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, options.timeoutMs ?? 20_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}
