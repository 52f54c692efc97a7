#!/usr/bin/env node
// The one `airlock` binary: loads the compiled CLI (run `npm run build` first).
import { fileURLToPath } from 'node:url';

const fail = (err) => {
  process.stderr.write(`airlock: ${err?.message ?? err}\n`);
  process.exit(1);
};

// `airlock agent run` starts inside every task environment, and git runs `airlock agent
// git-credential` for every credential the agent's clone or push needs: both skip the CLI
// framework and load only the agent runtime (about a third of the start-up time). The runtime's
// own command is this file: git runs it again as the credential helper (dist/agent/commands.js).
const agent = process.argv[2] === 'agent' ? await import('../dist/agent/commands.js') : undefined;
const agentCommand = agent?.parseAgentCommand(process.argv.slice(3));
if (agent && agentCommand) {
  agent.runAgentCommand(agentCommand, [process.execPath, fileURLToPath(import.meta.url), 'agent']).then((code) => {
    process.exitCode = code;
  }, fail);
} else {
  const { main } = await import('../dist/cli/main.js');
  main(process.argv).catch(fail);
}
