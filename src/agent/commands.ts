/**
 * The agent runtime's commands, whichever entry started it: the bundle (agent/main.ts, built into
 * dist/agent-runtime/agent.mjs, which a container backend mounts next to its Node binary) or the
 * package (`airlock agent …`: bin/airlock.js, cli/agent.ts).
 *
 *   run                      run the execution served by the task gateway (run.ts)
 *   git-credential [action]  git's credential helper for the agent's own clone and push
 *
 * Invariant: every entry passes `self`, the command that started it without the subcommand, and
 * git runs `<self> git-credential get` — so it names the entry actually running. agent/ code
 * cannot work it out from import.meta.url: bundled, that is the bundle's URL, not the module's.
 * run.ts loads on use: git starts the helper for every credential, and it needs none of it.
 */
import { HELPER_COMMAND, runCredentialHelper } from './workspace/credential-helper.js';

export type AgentCommand = { name: 'run' } | { name: typeof HELPER_COMMAND; action: string | undefined };

/** The command `args` (the words after the entry) name, or null when they name none. */
export function parseAgentCommand(args: readonly string[]): AgentCommand | null {
  const [name, ...rest] = args;
  if (name === 'run' && rest.length === 0) return { name: 'run' };
  if (name === HELPER_COMMAND && rest.length <= 1) return { name: HELPER_COMMAND, action: rest[0] };
  return null;
}

/** Run `command` in this process, with its standard streams and environment; its exit status. */
export async function runAgentCommand(command: AgentCommand, self: readonly string[]): Promise<number> {
  if (command.name === 'run') {
    const { runAgent } = await import('./run.js');
    return runAgent({ env: process.env, selfCommand: self });
  }
  return runCredentialHelper({
    action: command.action,
    env: process.env,
    stdin: process.stdin,
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
  });
}
