/**
 * `airlock dev …`: tools for developing with Airlock offline. `dev model-server` starts the
 * scripted model server — a TEST DOUBLE that speaks the OpenAI and Anthropic wire formats and
 * replays scripted turns; it is not a model and never calls one.
 */
import type { Command } from 'commander';
import { onShutdownSignals, parsePort } from './server.js';

export function registerDevCommands(program: Command): void {
  const dev = program.command('dev').description('Tools for developing and demonstrating Airlock offline');
  dev
    .command('model-server')
    .description('Start the scripted model server (a test double speaking the OpenAI and Anthropic APIs)')
    .option('--port <port>', 'port to listen on (0: any free port)', '9999')
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option('--script <file>', 'JSON or YAML list of scripted turns (default: one short text answer to every request)')
    .action(async (opts: { port: string; host: string; script?: string }) => {
      // Loaded on use, so other commands start fast.
      const { runModelServerCommand } = await import('../dev/model-server.js');
      const server = await runModelServerCommand({ port: parsePort(opts.port), host: opts.host, ...(opts.script ? { scriptFile: opts.script } : {}) });
      await new Promise<void>((resolve) => onShutdownSignals(() => void server.close().then(resolve)));
    });
}
