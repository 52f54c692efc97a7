import type { Command } from 'commander';
import { workerListCommand } from './worker-list.js';

/** `airlock worker` runs the worker daemon; `airlock worker list` lists a team's workers. */
export function registerWorkerCommands(program: Command): void {
  const worker = program.command('worker').description('Run a worker, or list workers');
  worker.addCommand(workerListCommand());
}
