/**
 * `airlock up`: everything on one machine for a first look — a server on SQLite in ./.airlock/
 * and a local worker on the direct backend, in this process. Prints the URL and a ready-to-use
 * API key, stays in the foreground, and shuts both down cleanly on Ctrl-C.
 *
 * The keys it mints are kept in ./.airlock/credentials.json (mode 0600) and reused on the next
 * `up`, so restarting does not pile up keys.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { newId } from '../lib/ids.js';
import type { Store } from '../server/store/store.js';
import { loadLlmConfig, onShutdownSignals, parsePort } from './server.js';

const TEAM = 'default';

interface Credentials {
  userKey: string;
  workerKey: string;
}

async function ensureCredentials(store: Store, dataDir: string, file: string, authenticate: (key: string) => Promise<unknown>): Promise<Credentials> {
  if (existsSync(file)) {
    const saved = JSON.parse(readFileSync(file, 'utf8')) as Credentials;
    if ((await authenticate(saved.userKey)) && (await authenticate(saved.workerKey))) return saved;
  }
  const now = Date.now();
  const team = (await store.getTeamByName(TEAM)) ?? (await store.createTeam({ id: newId('team'), name: TEAM, now }));
  const { loadOrCreateServerSecret, mintApiKey } = await import('../server/auth/keys.js');
  const secret = loadOrCreateServerSecret(dataDir);
  const user = await mintApiKey(store, secret, { teamId: team.id, role: 'admin', name: 'airlock up', now });
  const worker = await mintApiKey(store, secret, { teamId: team.id, role: 'worker', name: 'airlock up worker', now });
  const credentials = { userKey: user.key, workerKey: worker.key };
  writeFileSync(file, JSON.stringify(credentials, null, 2), { mode: 0o600 });
  return credentials;
}

export function registerUpCommand(program: Command): void {
  program
    .command('up')
    .description('Start a server and a local worker in ./.airlock/ — the quickest way to try Airlock')
    .option('--port <port>', 'port for the server', '7070')
    .option('--dir <dir>', 'where to keep state', './.airlock')
    .option('--concurrency <n>', 'tasks the local worker runs at once', '2')
    .option('--log-level <level>', 'log level for both', 'warn')
    .option('--config <file>', 'server config file (YAML): the LLM gateway\'s models (team "default" in overrides)')
    .action(async (opts: { port: string; dir: string; concurrency: string; logLevel: string; config?: string }) => {
      // Loaded on use, so other commands (and the agent runtime) start fast.
      const { default: pino } = await import('pino');
      const { startServer } = await import('../server/server.js');
      const { resolveWorkerConfig } = await import('../worker/config.js');
      const { Worker } = await import('../worker/worker.js');
      const dir = resolve(opts.dir);
      const log = pino({ level: opts.logLevel });
      const dataDir = resolve(dir, 'server');
      const llm = await loadLlmConfig(opts.config);
      const server = await startServer({ port: parsePort(opts.port), host: '127.0.0.1', dataDir, log, llm });
      const { store, authenticate } = server.context;
      const credentials = await ensureCredentials(store, dataDir, resolve(dir, 'credentials.json'), authenticate);
      const config = resolveWorkerConfig(
        {
          server: server.url,
          apiKey: credentials.workerKey,
          workerId: 'local',
          backend: 'direct',
          concurrency: opts.concurrency,
          stateDir: resolve(dir, 'worker'),
          workspaceRoot: resolve(dir, 'ws'),
          logLevel: opts.logLevel,
        },
        {},
      );
      const worker = new Worker({ config, log });
      await worker.start();
      writeFileSync(resolve(dir, 'env'), `export AIRLOCK_SERVER=${server.url}\nexport AIRLOCK_API_KEY=${credentials.userKey}\n`, { mode: 0o600 });
      process.stdout.write(
        [
          'Airlock is up.',
          `  server   ${server.url}   (data in ${dataDir})`,
          `  worker   "local", direct backend, ${config.concurrency} at a time (workspaces in ${config.workspaceRoot})`,
          `  API key  ${credentials.userKey}`,
          '',
          'In another terminal:',
          `  source ${resolve(dir, 'env')}`,
          "  airlock task create --harness shell --wait 'echo hello from a task; uname -a'",
          '',
          'Ctrl-C stops both.',
          '',
        ].join('\n'),
      );
      await new Promise<void>((done) => {
        onShutdownSignals((_signal, count) => {
          if (count > 1) process.exit(130);
          process.stdout.write('\nstopping: letting running tasks finish (Ctrl-C again to stop them now)…\n');
          void worker
            .drain()
            .then(() => server.close())
            .then(done);
        });
      });
    });
}
