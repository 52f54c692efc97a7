/**
 * The command a backend runs to start the agent runtime in a task environment. By default it is
 * this very installation: the Node binary running the worker, and this package's `bin/airlock.js
 * agent run` — found from this file's own location, so it works from a checkout, a global npm
 * install, or a container image alike.
 *
 * A backend whose task environment is another filesystem (a container) cannot run this package
 * there; it mounts the *bundled* runtime instead — one file with every dependency inlined
 * (`bundledAgentRuntime`, built by scripts/bundle-agent.js) — and runs `<node> <bundle> run`.
 *
 * Invariant: both need the build (dist/); `checkAgentCommand` and `checkBundledAgentRuntime` say
 * so, with the fix, instead of letting every task fail with "module not found".
 */
import { access, constants, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** This file lives at <package root>/{src,dist}/worker/backends/. */
export function packageRoot(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
}

export function defaultAgentCommand(): string[] {
  return [process.execPath, path.join(packageRoot(), 'bin', 'airlock.js'), 'agent', 'run'];
}

/**
 * The agent runtime as one ESM file that needs nothing but Node 20 (no node_modules): what a
 * container backend mounts, read-only, next to the Node binary. Its argv: `[node, file, 'run']`.
 */
export function bundledAgentRuntime(): string {
  return path.join(packageRoot(), 'dist', 'agent-runtime', 'agent.mjs');
}

/** Throw an error naming the fix when the bundled runtime `file` has not been built; else return it. */
export async function checkBundledAgentRuntime(file: string = bundledAgentRuntime()): Promise<string> {
  const found = await stat(file).then(
    (s) => s.isFile(),
    () => false,
  );
  if (!found) {
    const built = bundledAgentRuntime();
    const fix = file === built ? `run \`npm run build\` in ${packageRoot()}` : `check the path (\`npm run build\` writes it to ${built})`;
    throw new Error(`the bundled agent runtime is not built: ${file} is missing — ${fix}`);
  }
  return file;
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
  } else if (script && path.isAbsolute(script)) {
    // Another script, such as the bundled runtime: it must at least be there.
    await access(script, constants.R_OK).catch(() => {
      throw new Error(`the agent command's script ${script} does not exist or is not readable — check the agent command (\`npm run build\` writes the bundled runtime to ${bundledAgentRuntime()})`);
    });
  }
}
