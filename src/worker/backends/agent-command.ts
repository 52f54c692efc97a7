/**
 * The command a backend runs to start the agent runtime in a task environment. By default it is
 * this very installation: the Node binary running the worker, and this package's `bin/airlock.js
 * agent run` — found from this file's own location, so it works from a checkout, a global npm
 * install, or a container image alike.
 *
 * Invariant: the default command needs the compiled runtime (dist/); `checkAgentCommand` says
 * so, with the fix, instead of letting every task fail with "module not found".
 */
import { access, constants } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** This file lives at <package root>/{src,dist}/worker/backends/. */
export function packageRoot(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
}

export function defaultAgentCommand(): string[] {
  return [process.execPath, path.join(packageRoot(), 'bin', 'airlock.js'), 'agent', 'run'];
}

/** Throw an error naming what is missing when `command` cannot start the agent runtime. */
export async function checkAgentCommand(command: readonly string[]): Promise<void> {
  const [program, script] = command;
  if (!program) throw new Error('the agent command is empty — configure the command that runs `airlock agent run`');
  if (path.isAbsolute(program)) {
    await access(program, constants.X_OK).catch(() => {
      throw new Error(`the agent command's program ${program} does not exist or is not executable — check the agent command`);
    });
  }
  if (script && script.endsWith(path.join('bin', 'airlock.js'))) {
    const compiled = path.join(path.dirname(path.dirname(script)), 'dist', 'cli', 'main.js');
    await access(compiled, constants.R_OK).catch(() => {
      throw new Error(`the agent runtime is not built: ${compiled} is missing — run \`npm run build\` in ${path.dirname(path.dirname(script))}`);
    });
  }
}
