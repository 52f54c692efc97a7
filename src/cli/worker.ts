/**
 * `airlock worker` runs the worker daemon; `airlock worker list` lists a team's workers.
 * SIGTERM/SIGINT once: drain (finish running tasks, then exit). Twice: stop tasks now.
 */
import { Command } from 'commander';
import type { WorkerConfig, WorkerFlags } from '../worker/config.js';
import { onShutdownSignals } from './server.js';
import { workerListCommand } from './worker-list.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function registerWorkerCommands(program: Command): void {
  const worker = program
    .command('worker')
    .description('Run a worker that dials out to the server and runs tasks (or: worker list)')
    .option('--config <file>', 'YAML config file (flags override it)')
    .option('--server <url>', 'control plane URL (or AIRLOCK_SERVER)')
    .option('--api-key <key>', 'a worker API key (prefer the AIRLOCK_API_KEY environment variable)')
    .option('--worker-id <id>', 'this worker\'s id within the team (default: host name)')
    .option('--backend <name>', 'how task environments are built: direct (host processes) or docker (one hardened container per task)')
    .option('--concurrency <n>', 'tasks run at once')
    .option('-e, --env <KEY[=VALUE]>', 'pass a variable to every task (value from this environment when omitted); repeatable', collect)
    .option('--label <key=value>', 'a label other tasks can route on; repeatable', collect)
    .option('--no-cleanup', 'keep task environments after they finish (for debugging)')
    .option('--state-dir <dir>', 'where the worker keeps its outbox and state')
    .option('--workspace-root <dir>', 'where per-execution workspaces (direct) or gateway sockets (docker) are created')
    .option('--setup-command <cmd>', 'direct backend: run before each task, in its workspace')
    .option('--teardown-command <cmd>', 'direct backend: run after each task, in its workspace')
    .option('--default-image <image>', 'docker backend: image for tasks whose environment names none')
    .option('--pull-policy <policy>', 'docker backend: if-not-present (default), always or never')
    .option('-v, --volume <HOST:CONTAINER[:ro|rw]>', 'docker backend: mount a host directory into every task container; repeatable', collect)
    .option('--drain-timeout <duration>', 'on SIGTERM, how long to let running tasks finish')
    .option('--log-level <level>', 'trace, debug, info, warn or error')
    .action(async (flags: WorkerFlags) => {
      // Loaded on use, so other commands (and the agent runtime) start fast.
      const { resolveWorkerConfig } = await import('../worker/config.js');
      await runWorker(resolveWorkerConfig(flags, process.env));
    });
  worker.addCommand(workerListCommand());
}

async function runWorker(config: WorkerConfig): Promise<void> {
  const { default: pino } = await import('pino');
  const { Worker } = await import('../worker/worker.js');
  const log = pino({ level: config.logLevel });
  let fatal: string | undefined;
  const daemon = new Worker({ config, log, onFatal: (message) => (fatal = message) });
  await daemon.start();
  onShutdownSignals((_signal, count) => void (count === 1 ? daemon.drain() : daemon.stop()));
  await daemon.finished;
  if (fatal) {
    process.stderr.write(`airlock worker: ${fatal}\n`);
    process.exitCode = 1;
  }
}
