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
  // git's credential helper for the agent's own clone and push (agent/workspace/credentials.ts).
  agent
    .command('git-credential [action]', { hidden: true })
    .description('git credential helper used by the agent runtime (internal)')
    .action(async (action: string | undefined) => {
      const { runCredentialHelper } = await import('../agent/workspace/credential-helper.js');
      process.exitCode = await runCredentialHelper({
        action,
        env: process.env,
        stdin: process.stdin,
        stdout: (text) => process.stdout.write(text),
        stderr: (text) => process.stderr.write(text),
      });
    });
}
