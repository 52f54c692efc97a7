/**
 * A real Airlock stack for multi-process tests: a server in this process (real SQLite file, real
 * HTTP and WebSocket on an ephemeral loopback port) and workers as real child processes of the
 * built CLI (so a test can kill -9 them). Every helper registers its cleanup; `stopAll` proves
 * nothing is left running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pino from 'pino';
import { newId } from '../../src/lib/ids.js';
import { loadOrCreateServerSecret, mintApiKey } from '../../src/server/auth/keys.js';
import type { ServerSettings } from '../../src/server/context.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import type { Role } from '../../src/server/store/store.js';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const CLI = join(ROOT, 'bin', 'airlock.js');

export function requireBuild(): void {
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) {
    throw new Error('dist/ is missing: run `npm run build` first (npm test does it for you)');
  }
}

export function tempDir(prefix: string): string {
  // Short paths: Unix socket paths inside workspaces must stay under 107 bytes.
  return mkdtempSync(join(tmpdir(), `al-${prefix}-`));
}

export interface TestServer {
  server: RunningServer;
  url: string;
  dataDir: string;
  teamId: string;
  key(role: Role, teamId?: string): Promise<string>;
  newTeam(name: string): Promise<string>;
  api(path: string, init?: { method?: string; body?: unknown; key?: string }): Promise<{ status: number; body: any }>;
  userKey: string;
  workerKey: string;
  restart(): Promise<void>;
  close(): Promise<void>;
}

/**
 * One API request as a test makes it: POST when there is a body (JSON unless a string), the
 * caller's key or `defaultKey`; the answer's status and body (parsed JSON, else text).
 */
export async function apiCall(
  baseUrl: string,
  path: string,
  init: { body?: unknown; key?: string; method?: string },
  defaultKey: string,
): Promise<{ status: number; body: any }> {
  const response = await fetch(`${baseUrl}${path}`, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: {
      authorization: `Bearer ${init.key ?? defaultKey}`,
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: init.body === undefined ? undefined : typeof init.body === 'string' ? init.body : JSON.stringify(init.body),
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* leave as text */
  }
  return { status: response.status, body };
}

export async function startTestServer(options: { settings?: Partial<ServerSettings>; dataDir?: string; port?: number } = {}): Promise<TestServer> {
  const dataDir = options.dataDir ?? tempDir('srv');
  const log = pino({ level: process.env.AIRLOCK_TEST_LOG ?? 'silent' });
  let server = await startServer({ port: options.port ?? 0, host: '127.0.0.1', dataDir, log, settings: options.settings });
  const port = server.port;
  const store = () => server.context.store;
  const secret = loadOrCreateServerSecret(dataDir);
  const newTeam = async (name: string) => (await store().createTeam({ id: newId('team'), name, now: Date.now() })).id;
  const teamId = await newTeam(`team-${Math.random().toString(36).slice(2, 8)}`);
  const key = async (role: Role, team = teamId) => (await mintApiKey(store(), secret, { teamId: team, role, now: Date.now() })).key;
  const userKey = await key('member');
  const workerKey = await key('worker');
  const test: TestServer = {
    get server() {
      return server;
    },
    url: server.url,
    dataDir,
    teamId,
    key,
    newTeam,
    userKey,
    workerKey,
    api: (path, init = {}) => apiCall(server.url, path, init, userKey),
    /** Stop and start the server on the same port and data dir (a server restart). */
    async restart() {
      await server.close();
      server = await startServer({ port, host: '127.0.0.1', dataDir, log, settings: options.settings });
    },
    async close() {
      await server.close();
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return test;
}

export interface TestWorker {
  process: ChildProcess;
  stateDir: string;
  workspaceRoot: string;
  output(): string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  kill(signal?: NodeJS.Signals): void;
}

export function startWorker(
  server: { url: string; workerKey: string },
  options: { workerId?: string; args?: string[]; env?: Record<string, string>; stateDir?: string; workspaceRoot?: string } = {},
): TestWorker {
  requireBuild();
  const stateDir = options.stateDir ?? tempDir('st');
  const workspaceRoot = options.workspaceRoot ?? join(stateDir, 'ws');
  const child = spawn(
    process.execPath,
    [
      CLI,
      'worker',
      '--server',
      server.url,
      '--worker-id',
      options.workerId ?? 'w1',
      '--backend',
      'direct',
      '--state-dir',
      stateDir,
      '--workspace-root',
      workspaceRoot,
      '--log-level',
      'debug',
      ...(options.args ?? []),
    ],
    { env: { ...process.env, AIRLOCK_API_KEY: server.workerKey, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const waiters: Array<() => void> = [];
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    for (const w of waiters.splice(0)) w();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise<number | null>((resolveExit) => child.on('exit', (code) => resolveExit(code)));
  return {
    process: child,
    stateDir,
    workspaceRoot,
    output: () => output,
    exited,
    kill: (signal = 'SIGTERM') => child.kill(signal),
    waitForLog(pattern, timeoutMs = 15_000) {
      return new Promise((resolveWait, reject) => {
        const deadline = setTimeout(() => reject(new Error(`worker log never matched ${pattern}; output:\n${output.slice(-4000)}`)), timeoutMs);
        const check = () => {
          const match = pattern.exec(output);
          if (match) {
            clearTimeout(deadline);
            resolveWait(match[0]);
          } else {
            waiters.push(check);
          }
        };
        check();
      });
    },
  };
}

/** Poll `fn` until it returns a truthy value (or throw after timeoutMs). */
export async function eventually<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function waitForTask(server: TestServer, id: string, states: string[], timeoutMs = 20_000): Promise<any> {
  return eventually(
    async () => {
      const { body } = await server.api(`/api/v1/tasks/${id}`);
      return states.includes(body.state) ? body : undefined;
    },
    timeoutMs,
    `task ${id} to reach ${states.join('/')}`,
  );
}

export async function stopWorker(worker: TestWorker): Promise<void> {
  if (worker.process.exitCode !== null || worker.process.signalCode !== null) return;
  worker.kill('SIGTERM');
  const timer = setTimeout(() => worker.kill('SIGKILL'), 15_000);
  await worker.exited;
  clearTimeout(timer);
}

/** True if a process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
