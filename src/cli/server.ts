/**
 * `airlock server`: the control plane. Stops cleanly on SIGTERM/SIGINT (workers see the socket
 * close with "server shutting down" and redial with backoff).
 */
import type { Command } from 'commander';
import { parseDuration } from '../lib/durations.js';
import { ValidationError } from '../protocol/errors.js';

export function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ValidationError(`--port "${value}" must be a whole number from 0 to 65535`);
  return port;
}

export function parseDurationFlag(flag: string) {
  return (value: string): number => {
    const ms = parseDuration(value);
    if (ms === undefined || ms <= 0) throw new ValidationError(`${flag} "${value}" is not a duration; write it like 30s, 5m or 500ms`);
    return ms;
  };
}

export function onShutdownSignals(handler: (signal: NodeJS.Signals, count: number) => void): void {
  let count = 0;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => handler(signal, ++count));
  }
}

/** The LLM gateway's settings from `--config FILE` (none: no providers, default token lifetime). */
export async function loadLlmConfig(file: string | undefined) {
  const { loadServerConfigFile, resolveLlmGatewayConfig } = await import('../server/llm/config.js');
  return resolveLlmGatewayConfig(file === undefined ? {} : loadServerConfigFile(file));
}

export function registerServerCommand(program: Command): void {
  program
    .command('server')
    .description('Run the control plane (REST API, worker connections, transcripts)')
    .option('--port <port>', 'port to listen on', '7070')
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option('--data-dir <dir>', 'where the SQLite store and the server secret live', './.airlock/server')
    .option('--lease-ttl <duration>', 'how long a worker may go silent before its tasks fail as worker_lost', '30s')
    .option('--claim-timeout <duration>', 'how long a worker has to claim an offer', '10s')
    .option('--cancel-grace <duration>', 'time between the graceful stop and the hard kill on cancel', '10s')
    .option('--log-level <level>', 'trace, debug, info, warn or error', 'info')
    .option('--config <file>', 'server config file (YAML): the LLM gateway\'s models, per-team overrides, llm_token_ttl')
    .action(async (opts: { port: string; host: string; dataDir: string; leaseTtl: string; claimTimeout: string; cancelGrace: string; logLevel: string; config?: string }) => {
      const { default: pino } = await import('pino');
      const { startServer } = await import('../server/server.js');
      const llm = await loadLlmConfig(opts.config);
      const log = pino({ level: opts.logLevel });
      const server = await startServer({
        llm,
        port: parsePort(opts.port),
        host: opts.host,
        dataDir: opts.dataDir,
        log,
        settings: {
          leaseTtlMs: parseDurationFlag('--lease-ttl')(opts.leaseTtl),
          claimTimeoutMs: parseDurationFlag('--claim-timeout')(opts.claimTimeout),
          cancelGraceMs: parseDurationFlag('--cancel-grace')(opts.cancelGrace),
        },
      });
      process.stderr.write(`airlock server listening on ${server.url}\n`);
      await new Promise<void>((resolve) => {
        onShutdownSignals((_signal, count) => {
          if (count > 1) process.exit(130);
          void server.close().then(resolve);
        });
      });
    });
}
