/**
 * Model-routing test stack: a real server (in process, real SQLite, real sockets) with the LLM
 * gateway configured against the scripted model server (a TEST DOUBLE for providers), and real
 * `Worker`s in process whose backend runs an *in-process agent* — a test function that talks to
 * the execution's real task gateway over its real Unix socket, like `airlock agent run` would.
 * Only the provider is faked; tokens, claims, heartbeats, the two HTTP hops and usage reports
 * are the real ones. Logs of server and workers are kept in memory so tests can scan them.
 */
import { mkdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import type { AgentResult } from '../../src/protocol/gateway.js';
import type { ExecutionSpec } from '../../src/protocol/task.js';
import type { ModelsConfig } from '../../src/llm/config.js';
import { resolveLlmGatewayConfig, type ServerFileConfig } from '../../src/server/llm/config.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { loadOrCreateServerSecret, mintApiKey } from '../../src/server/auth/keys.js';
import { newId } from '../../src/lib/ids.js';
import type { Backend, PreparedEnvironment, RunningExecution } from '../../src/worker/backends/backend.js';
import { resolveWorkerConfig } from '../../src/worker/config.js';
import { Worker } from '../../src/worker/worker.js';
import type { ServerSettings } from '../../src/server/context.js';
import { apiCall, tempDir } from './stack.js';

/** Lines written to a logger, kept in memory. */
export class LogBuffer {
  text = '';
  readonly stream = new Writable({
    write: (chunk: Buffer, _encoding, done) => {
      this.text += chunk.toString('utf8');
      done();
    },
  });
  logger(level = 'debug'): Logger {
    return pino({ level }, this.stream);
  }
}

export interface GatewayReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** Milliseconds from sending the request to its first body byte. */
  firstByteMs: number;
  json(): any;
}

/** POST a JSON body over a Unix socket (the task gateway) or TCP, with a bearer token. */
export function postJson(
  target: { socketPath: string } | { url: string },
  path: string,
  token: string | null,
  body: unknown,
  headers: Record<string, string> = {},
  signal?: AbortSignal,
): Promise<GatewayReply> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const options: http.RequestOptions = {
      method: 'POST',
      path,
      agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...headers },
    };
    if (signal) options.signal = signal;
    if ('socketPath' in target) options.socketPath = target.socketPath;
    else {
      const url = new URL(target.url);
      options.host = url.hostname;
      options.port = url.port;
    }
    const started = performance.now();
    const req = http.request(options, (res) => {
      let text = '';
      let firstByteMs = -1;
      res.on('data', (chunk: Buffer) => {
        if (firstByteMs < 0) firstByteMs = performance.now() - started;
        text += chunk.toString('utf8');
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text,
          firstByteMs,
          json: () => JSON.parse(text),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** What an in-process agent gets: its spec and a way to call its task gateway. */
export interface AgentContext {
  spec: ExecutionSpec;
  socketPath: string;
  call: (path: string, body: unknown, headers?: Record<string, string>) => Promise<GatewayReply>;
  signal: AbortSignal;
}
export type InProcessAgent = (ctx: AgentContext) => Promise<Partial<AgentResult> | void>;

/**
 * A backend whose "agent" is a test function run in this process against the real task gateway.
 * The task's prompt picks the agent (`agents.get(prompt)`).
 */
export class InProcessAgentBackend implements Backend {
  readonly name = 'direct' as const;
  private readonly running = new Map<string, AbortController>();

  constructor(
    private readonly root: string,
    readonly agents: Map<string, InProcessAgent>,
  ) {}

  async init(): Promise<void> {}

  async prepare({ spec }: { spec: ExecutionSpec }): Promise<PreparedEnvironment> {
    const dir = join(this.root, spec.execution_id.slice(4, 14));
    mkdirSync(dir, { recursive: true });
    return { executionId: spec.execution_id, gatewaySocketPath: join(dir, 'gw.sock'), workdir: dir };
  }

  async start({ prepared, spec, env }: { prepared: PreparedEnvironment; spec: ExecutionSpec; env: Record<string, string> }): Promise<RunningExecution> {
    const abort = new AbortController();
    this.running.set(spec.execution_id, abort);
    const socketPath = prepared.gatewaySocketPath;
    const token = env.AIRLOCK_TASK_TOKEN!;
    const call = (path: string, body: unknown, headers?: Record<string, string>) => postJson({ socketPath }, path, token, body, headers, abort.signal);
    const agent = this.agents.get(spec.prompt);
    const exited = (async () => {
      try {
        if (!agent) throw new Error(`no in-process agent for prompt ${JSON.stringify(spec.prompt)}`);
        const result = await agent({ spec, socketPath, call, signal: abort.signal });
        const reply = await postJson({ socketPath }, '/v1/result', token, { outcome: 'succeeded', exit_code: 0, summary: null, ...result });
        if (reply.status !== 200) throw new Error(`result refused: ${reply.status} ${reply.text}`);
        return { exitCode: 0, signal: null };
      } catch (err) {
        return { exitCode: 1, signal: null, diagnostics: (err as Error).stack ?? String(err) };
      }
    })();
    return { executionId: spec.execution_id, exited };
  }

  async stop(executionId: string): Promise<void> {
    this.running.get(executionId)?.abort();
  }

  async cleanup(executionId: string): Promise<void> {
    this.running.delete(executionId);
    rmSync(join(this.root, executionId.slice(4, 14)), { recursive: true, force: true });
  }

  async recover(): Promise<[]> {
    return [];
  }

  async close(): Promise<void> {}
}

export interface LlmTestServer {
  server: RunningServer;
  url: string;
  dataDir: string;
  log: LogBuffer;
  teamId: string;
  userKey: string;
  workerKey: string;
  api(path: string, init?: { body?: unknown; key?: string }): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

export async function startLlmServer(options: { file?: ServerFileConfig; tokenTtlMs?: number; settings?: Partial<ServerSettings>; env?: NodeJS.ProcessEnv } = {}): Promise<LlmTestServer> {
  const dataDir = tempDir('llm');
  const log = new LogBuffer();
  const llm = resolveLlmGatewayConfig(options.file ?? {});
  if (options.tokenTtlMs !== undefined) llm.tokenTtlMs = options.tokenTtlMs;
  const teamName = `team-${Math.random().toString(36).slice(2, 8)}`;
  // Per-team overrides name teams: a file may use "THIS_TEAM" for the test's own team.
  if (llm.teams.THIS_TEAM) {
    llm.teams[teamName] = llm.teams.THIS_TEAM;
    delete llm.teams.THIS_TEAM;
  }
  const server = await startServer({ port: 0, host: '127.0.0.1', dataDir, log: log.logger(), llm, settings: options.settings, env: options.env ?? {} });
  const store = server.context.store;
  const secret = loadOrCreateServerSecret(dataDir);
  const teamId = (await store.createTeam({ id: newId('team'), name: teamName, now: Date.now() })).id;
  const userKey = (await mintApiKey(store, secret, { teamId, role: 'member', now: Date.now() })).key;
  const workerKey = (await mintApiKey(store, secret, { teamId, role: 'worker', now: Date.now() })).key;
  return {
    server,
    url: server.url,
    dataDir,
    log,
    teamId,
    userKey,
    workerKey,
    api: (path, init = {}) => apiCall(server.url, path, init, userKey),
    async close() {
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface InProcessWorker {
  worker: Worker;
  log: LogBuffer;
  agents: Map<string, InProcessAgent>;
  stop(): Promise<void>;
}

export async function startInProcessWorker(server: { url: string; workerKey: string }, options: { workerId: string; models?: ModelsConfig; env?: string[] }): Promise<InProcessWorker> {
  const stateDir = tempDir('wk');
  const log = new LogBuffer();
  const config = resolveWorkerConfig({ server: server.url, apiKey: server.workerKey, workerId: options.workerId, stateDir, concurrency: '4', logLevel: 'debug', env: options.env }, {});
  config.models = options.models ?? null;
  const agents = new Map<string, InProcessAgent>();
  const backend = new InProcessAgentBackend(join(stateDir, 'ws'), agents);
  const worker = new Worker({ config, log: log.logger(), backend });
  await worker.start();
  // Connected once the welcome was logged.
  const deadline = Date.now() + 10_000;
  while (!log.text.includes('worker:ws:connected')) {
    if (Date.now() > deadline) throw new Error(`worker ${options.workerId} did not connect:\n${log.text.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    worker,
    log,
    agents,
    async stop() {
      await worker.stop();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
