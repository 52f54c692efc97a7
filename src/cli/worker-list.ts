import { Command } from 'commander';

/** Placeholder: `airlock worker list`. */
export function workerListCommand(): Command {
  return new Command('list').description('List the team\'s workers');
}
