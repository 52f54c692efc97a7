// Shared helpers for benchmarks: a real server from dist/ on loopback, keys, statistics.
// Benchmarks measure; they never assert. Each figure is printed next to its floor (or ceiling)
// measured in the same run on the same machine.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import pino from 'pino';
import { startServer } from '../dist/server/server.js';
import { openSqliteStore } from '../dist/server/store/sqlite/index.js';
import { loadOrCreateServerSecret, mintApiKey } from '../dist/server/auth/keys.js';
import { newId } from '../dist/lib/ids.js';

const CLI = resolve(import.meta.dirname, '..', 'bin', 'airlock.js');

/**
 * A real `airlock server` in its own process (as deployed), so the load generators in this
 * process do not compete with it for its event loop. Keys come from the admin CLI.
 */
/** The URL a child process prints as "listening on http://…" on `stream`; rejects if it exits first. */
export function listeningUrl(child, stream, what) {
  return new Promise((resolveUrl, reject) => {
    let out = '';
    stream.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolveUrl(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`${what} exited with ${code}: ${out}`)));
  });
}

export async function serverProcess(extraArgs = []) {
  const dataDir = mkdtempSync(join(tmpdir(), 'al-bench-'));
  const admin = (...args) => JSON.parse(execFileSync(process.execPath, [CLI, 'admin', ...args, '--data-dir', dataDir, '--json'], { encoding: 'utf8' }));
  admin('create-team', 'bench');
  const userKey = admin('create-api-key', '--team', 'bench', '--role', 'member').key;
  const workerKey = admin('create-api-key', '--team', 'bench', '--role', 'worker').key;
  const nodeArgs = process.env.BENCH_SERVER_NODE_ARGS ? process.env.BENCH_SERVER_NODE_ARGS.split(' ') : [];
  const child = spawn(process.execPath, [...nodeArgs, CLI, 'server', '--port', '0', '--data-dir', dataDir, '--log-level', 'warn', ...extraArgs], {
    // BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR" profiles the server under load.
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const url = await listeningUrl(child, child.stderr, 'server');
  return {
    url,
    dataDir,
    userKey,
    workerKey,
    pid: child.pid,
    /** A second connection to the server's store, for counting (read-only use). */
    async openStore() {
      return openSqliteStore({ path: join(dataDir, 'airlock.db') });
    },
    async close() {
      child.kill('SIGTERM');
      await new Promise((r) => child.on('exit', r));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function benchServer(settings = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'al-bench-'));
  const server = await startServer({ port: 0, host: '127.0.0.1', dataDir, log: pino({ level: 'silent' }), settings });
  const store = server.context.store;
  const secret = loadOrCreateServerSecret(dataDir);
  const team = await store.createTeam({ id: newId('team'), name: 'bench', now: Date.now() });
  const userKey = (await mintApiKey(store, secret, { teamId: team.id, role: 'member', now: Date.now() })).key;
  const workerKey = (await mintApiKey(store, secret, { teamId: team.id, role: 'worker', now: Date.now() })).key;
  return {
    server,
    store,
    dataDir,
    teamId: team.id,
    userKey,
    workerKey,
    async close() {
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * The server-sent events of a response body, in order, each with when it arrived (wall clock
 * for comparing with event timestamps, monotonic for durations). Comment blocks are skipped.
 */
export async function* sseEvents(body) {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of body) {
    const receivedAt = Date.now();
    const receivedMono = performance.now();
    buffer += decoder.decode(chunk, { stream: true });
    let i;
    while ((i = buffer.indexOf('\n\n')) !== -1) {
      const block = buffer.slice(0, i);
      buffer = buffer.slice(i + 2);
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (data === undefined) continue;
      yield { event: /^event: (.*)$/m.exec(block)?.[1] ?? 'message', data: JSON.parse(data), receivedAt, receivedMono };
    }
  }
}

export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export function ms(value) {
  return `${value.toFixed(1)} ms`;
}

export function report(rows) {
  const width = Math.max(...rows.map((r) => r[0].length));
  for (const [name, value, floor] of rows) {
    process.stdout.write(`  ${name.padEnd(width)}  ${String(value).padStart(14)}${floor ? `   (${floor})` : ''}\n`);
  }
}

export async function createTasks(base, key, count, concurrency, body) {
  let next = 0;
  const ids = [];
  const createdAt = new Map();
  async function lane() {
    while (next < count) {
      const i = next++;
      const started = performance.now();
      const response = await fetch(`${base}/api/v1/tasks`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify(typeof body === 'function' ? body(i) : body),
      });
      const task = await response.json();
      if (response.status !== 201) throw new Error(`create failed: ${JSON.stringify(task)}`);
      ids.push(task.id);
      createdAt.set(task.id, started);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane));
  return { ids, createdAt };
}
