/**
 * The agent runtime as one file: the entry of dist/agent-runtime/agent.mjs, which
 * scripts/bundle-agent.js builds with everything it imports inlined (zod included). A backend
 * mounts it read-only, next to a Node binary, into any image — no Airlock, no node_modules there.
 *
 *   <node> agent.mjs run                      the same as `airlock agent run`
 *   <node> agent.mjs git-credential [action]  the same as `airlock agent git-credential` (git runs it)
 *
 * No CLI framework: this starts in every task environment. Its own command — this Node binary
 * and this file, wherever it is mounted — is what git runs as the credential helper.
 * Exit status: the command's; 2, with a one-line usage, for any other arguments; 70 when the
 * command throws.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
// Nothing here imports run.ts: commands.ts loads it for `run` only, and esbuild then initializes
// it (and the protocol schemas it builds) on use: git's helper calls skip that (docs/performance.md).
import { parseAgentCommand, runAgentCommand } from './commands.js';
import { EXIT_INTERNAL, EXIT_USAGE } from './exit-status.js';

// Bundled, import.meta.url is the bundle's own URL: exactly the file to run again.
const self = [process.execPath, fileURLToPath(import.meta.url)];
const command = parseAgentCommand(process.argv.slice(2));

if (command) {
  runAgentCommand(command, self).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`airlock agent runtime: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = EXIT_INTERNAL;
    },
  );
} else {
  const name = path.basename(self[1]!);
  const args = process.argv.slice(2);
  const got = args.length > 0 ? `got ${JSON.stringify(args.join(' '))}` : 'got no command';
  process.stderr.write(`usage: ${name} run | ${name} git-credential [get|store|erase] (${got}) — Airlock's agent runtime; the worker starts it inside a task environment\n`);
  process.exitCode = EXIT_USAGE;
}
