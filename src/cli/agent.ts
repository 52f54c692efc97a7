/**
 * `airlock agent run`: the runtime a backend starts inside the task environment (or a user runs
 * unmanaged). The work happens in agent/ (commands.ts, run.ts); this file only maps flags.
 * bin/airlock.js runs both commands without the CLI framework; these are the same commands as
 * commander sees them (help, and any spelling bin/airlock.js leaves to it).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
// The agent runtime is loaded on use: it is what every task environment starts, so it loads only what it needs.

/**
 * This package's own agent runtime command (the agent's `selfCommand`): this Node binary and
 * `bin/airlock.js agent`. This file is <root>/{src,dist}/cli/ — never bundled, unlike agent/.
 */
export function packageSelfCommand(): string[] {
  const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'airlock.js');
  return [process.execPath, bin, 'agent'];
}

export function registerAgentCommands(program: Command): void {
  const agent = program.command('agent').description('The agent runtime that runs inside a task environment');
  agent
    .command('run')
    .description('Run the execution served by the task gateway named in AIRLOCK_GATEWAY')
    .action(async () => {
      const { runAgentCommand } = await import('../agent/commands.js');
      process.exitCode = await runAgentCommand({ name: 'run' }, packageSelfCommand());
    });
  // git's credential helper for the agent's own clone and push (agent/workspace/credentials.ts).
  agent
    .command('git-credential [action]', { hidden: true })
    .description('git credential helper used by the agent runtime (internal)')
    .action(async (action: string | undefined) => {
      const { runAgentCommand } = await import('../agent/commands.js');
      process.exitCode = await runAgentCommand({ name: 'git-credential', action }, packageSelfCommand());
    });
}
