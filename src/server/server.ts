/**
 * Assembles the control plane: store, auth, dispatcher, worker sockets and the HTTP API on one
 * fastify instance, and tears it all down in the reverse order. `airlock server` and `airlock up`
 * call `startServer`; tests do too, on an ephemeral port.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { systemClock, type Clock } from '../lib/clock.js';
import { createAuthenticator, loadOrCreateServerSecret } from './auth/keys.js';
import type { ServerContext, ServerSettings } from './context.js';
import { Dispatcher } from './dispatch/dispatcher.js';
import { buildHttpApp } from './http/app.js';
import { resolveLlmGatewayConfig, type LlmGatewayConfig } from './llm/config.js';
import { attachLlmGateway } from './llm/gateway.js';
import { LlmTokenAuthority } from './llm/tokens.js';
import { LlmUsageBuffer } from './llm/usage-buffer.js';
import { createModelRouter } from '../llm/router.js';
import { createServerMetrics } from './metrics.js';
import { openSqliteStore } from './store/sqlite/index.js';
import type { Store } from './store/store.js';
import { MemoryTranscriptHub } from './transcripts/hub.js';
import { WorkerRegistry } from './ws/registry.js';
import { attachWorkerSockets } from './ws/worker-socket.js';

export interface ServerOptions {
  /** 0 picks a free port (tests). */
  port: number;
  host: string;
  dataDir: string;
  settings?: Partial<ServerSettings>;
  log?: Logger;
  clock?: Clock;
  /** Use this store instead of SQLite in dataDir (PostgreSQL, or a test's own). */
  store?: Store;
  /** The LLM gateway's providers and token lifetime (the server config file); none: no providers. */
  llm?: LlmGatewayConfig;
  /** Where provider API keys are read (`api_key_env`); the process environment by default. */
  env?: NodeJS.ProcessEnv;
}

/** Defaults: a lost worker is noticed within 30 s; an offer is re-queued after 10 s without a claim. */
export const DEFAULT_SERVER_SETTINGS: ServerSettings = {
  claimTimeoutMs: 10_000,
  leaseTtlMs: 30_000,
  cancelGraceMs: 10_000,
};

export interface RunningServer {
  url: string;
  port: number;
  context: ServerContext;
  close(): Promise<void>;
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const log = options.log ?? pino({ level: 'info' });
  const clock = options.clock ?? systemClock;
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const store = options.store ?? (await openSqliteStore({ path: join(options.dataDir, 'airlock.db') }));
  await store.migrate();
  await store.markAllWorkersDisconnected(clock.now());
  const secret = loadOrCreateServerSecret(options.dataDir);
  const settings: ServerSettings = { ...DEFAULT_SERVER_SETTINGS, ...options.settings };
  const metrics = createServerMetrics();
  const hub = new MemoryTranscriptHub();
  const registry = new WorkerRegistry();
  const authenticate = createAuthenticator(store, secret);
  const llm = options.llm ?? resolveLlmGatewayConfig();
  const llmTokens = new LlmTokenAuthority(secret, llm.tokenTtlMs);
  const llmUsage = new LlmUsageBuffer(store, log);
  const base = { store, clock, log, metrics, settings, hub, authenticate, llmTokens, llmUsage };
  const dispatcher = new Dispatcher(base, registry);
  const context: ServerContext = {
    ...base,
    dispatch: dispatcher,
    workers: {
      async list(teamId) {
        const records = await store.listWorkers(teamId);
        return records.map((w) => ({ ...w, connected: registry.get(teamId, w.workerId) !== undefined }));
      },
    },
  };
  const app = await buildHttpApp(context);
  const env = options.env ?? process.env;
  attachLlmGateway(app, base, { config: llm, tokens: llmTokens, createRouter: (models) => createModelRouter(models, { env }) });
  const sockets = attachWorkerSockets(app, base, registry, dispatcher);
  await app.listen({ port: options.port, host: options.host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  dispatcher.start();
  log.info({ port, dataDir: options.dataDir, store: store.kind }, 'server:started');

  let closing: Promise<void> | undefined;
  return {
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`,
    port,
    context,
    close() {
      closing ??= (async () => {
        sockets.close();
        await dispatcher.stop();
        await app.close();
        await llmUsage.flush();
        await store.close();
        log.info('server:stopped');
      })();
      return closing;
    },
  };
}
