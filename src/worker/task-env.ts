/**
 * Which of the worker's task variables (`-e`, `env:` — the operator's pool) one execution
 * receives. A task whose recipe names no variables gets the whole pool, as before recipes
 * existed; a task that names some (`secret_names`, `env_names`) gets exactly those, and a name
 * the pool lacks fails the execution before anything runs, saying which worker setting is missing.
 *
 * Invariant: names select only from the operator's pool — never from the worker's own process
 * environment, so no recipe can ask for the worker's API key or anything else the operator did not
 * hand to tasks. Every value in the pool is a redaction secret either way.
 */
import type { ExecutionSpec } from '../protocol/task.js';

export type TaskEnvSelection = { ok: true; env: Record<string, string> } | { ok: false; message: string };

export function selectTaskEnv(pool: Readonly<Record<string, string>>, spec: Pick<ExecutionSpec, 'secret_names' | 'env_names'>): TaskEnvSelection {
  const names = [...(spec.secret_names ?? []), ...(spec.env_names ?? [])];
  if (names.length === 0) return { ok: true, env: { ...pool } };
  const missing = names.filter((name) => !Object.hasOwn(pool, name));
  if (missing.length > 0) {
    const list = missing.join(', ');
    return {
      ok: false,
      message:
        `this worker has no task variable${missing.length > 1 ? 's' : ''} ${list}, which the task's environment asks for — ` +
        `give the worker ${missing.map((name) => `-e ${name}`).join(' ')} (or list ${missing.length > 1 ? 'them' : 'it'} under env: in its config), or route the task to a worker that has ${missing.length > 1 ? 'them' : 'it'}`,
    };
  }
  return { ok: true, env: Object.fromEntries(names.map((name) => [name, pool[name]!])) };
}
