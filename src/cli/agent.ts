/**
 * `airlock agent run`: the runtime a backend starts inside the task environment (or a user runs
 * unmanaged). The work happens in agent/run.ts; this file only maps flags.
 */
import type { Command } from 'commander';
// The agent runtime is loaded on use: it is what every task environment starts, so it loads only what it needs.

export function registerAgentCommands(program: Command): void {
  const agent = program.command('agent').description('The agent runtime that runs inside a task environment');
  agent
    .command('run')
    .description('Run the execution served by the task gateway named in AIRLOCK_GATEWAY')
    .action(async () => {
      const { runAgent } = await import('../agent/run.js');
      process.exitCode = await runAgent({ env: process.env });
    });
}
