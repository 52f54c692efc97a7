/**
 * The direct backend's workspace for one execution, as plain data and pure functions: where
 * things live, what the task's environment is, what the recorded metadata looks like.
 *
 *   <root>/<execution id>/        0700, the task environment
 *     home/                       HOME (with .gitconfig, .config/, .cache/)
 *     tmp/                        TMPDIR
 *     work/                       the working directory
 *     gateway.sock                the task gateway's socket
 *     meta.json                   who owns it and what runs in it (for recovery after a restart)
 *
 * Invariant: the environment is built from nothing — never from the worker's own environment —
 * so the worker's API key and the host user's settings cannot reach a task.
 */
import path from 'node:path';
import { z } from 'zod';
import { assertValidEnvName, assertValidEnvValue } from '../../../lib/env-name.js';
import { safeJoin } from '../../../lib/safe-path.js';
import { AGENT_ENV } from '../../../protocol/gateway.js';
import { ExecutionId } from '../../../protocol/task.js';

export const META_FILE = 'meta.json';
export const SOCKET_FILE = 'gateway.sock';
/** Longest execution id (exe_ + 20 characters): used to check socket path lengths up front. */
export const EXECUTION_ID_LENGTH = 'exe_'.length + 20;

export interface WorkspaceLayout {
  dir: string;
  home: string;
  tmp: string;
  work: string;
  socket: string;
  meta: string;
  gitconfig: string;
}

export function workspaceLayout(root: string, executionId: string): WorkspaceLayout {
  const parsed = ExecutionId.safeParse(executionId);
  if (!parsed.success) throw new Error(`refusing to build a workspace for ${JSON.stringify(executionId)}: not an execution id`);
  const dir = safeJoin(root, executionId);
  const home = path.join(dir, 'home');
  return {
    dir,
    home,
    tmp: path.join(dir, 'tmp'),
    work: path.join(dir, 'work'),
    socket: path.join(dir, SOCKET_FILE),
    meta: path.join(dir, META_FILE),
    gitconfig: path.join(home, '.gitconfig'),
  };
}

/** The socket path for an execution id of maximal length under `root` (ids all have one length). */
export function longestSocketPath(root: string): string {
  return path.join(path.resolve(root), 'x'.repeat(EXECUTION_ID_LENGTH), SOCKET_FILE);
}

/**
 * A neutral git identity and settings for the task: commits made by a task are attributed to the
 * task, and nothing of the host user's ~/.gitconfig (credentials helpers, signing keys, aliases)
 * applies.
 */
export function gitconfigText(): string {
  return [
    '# Written by the Airlock direct backend: this execution\'s own git settings.',
    '# The host user\'s ~/.gitconfig and /etc/gitconfig do not apply to tasks.',
    '[user]',
    '\tname = Airlock task',
    '\temail = task@airlock.invalid',
    '[init]',
    '\tdefaultBranch = main',
    '',
  ].join('\n');
}

/** Names a task may not be given: they would break isolation, or carry the worker's credential. */
const RESERVED_NAMES = new Set(['HOME', 'TMPDIR', 'GIT_CONFIG_NOSYSTEM', 'GIT_CONFIG_GLOBAL', 'XDG_CONFIG_HOME', 'XDG_CACHE_HOME']);
/** The worker's own credential: never passed to a task, even if configured as a task variable by mistake. */
export const WORKER_API_KEY_ENV = 'AIRLOCK_API_KEY';

/**
 * The complete environment of every process the backend starts for an execution: a minimal
 * base, then the request's variables (which may override PATH and LANG), then the isolation
 * variables and the gateway variables this backend alone knows.
 */
export function taskEnvironment(
  layout: WorkspaceLayout,
  options: { executionId: string; path: string; requestEnv: Record<string, string> },
): Record<string, string> {
  const env: Record<string, string> = { PATH: options.path, LANG: 'C.UTF-8' };
  for (const [name, value] of Object.entries(options.requestEnv)) {
    assertValidEnvName(name, 'task environment');
    assertValidEnvValue(name, value, 'task environment');
    if (name === WORKER_API_KEY_ENV) {
      throw new Error(`refusing to pass ${WORKER_API_KEY_ENV} to a task: it is the worker's credential and must never enter a task environment — remove it from the task variables`);
    }
    if (RESERVED_NAMES.has(name)) continue; // isolation wins; see below
    env[name] = value;
  }
  Object.assign(env, {
    HOME: layout.home,
    TMPDIR: layout.tmp,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: layout.gitconfig,
    XDG_CONFIG_HOME: path.join(layout.home, '.config'),
    XDG_CACHE_HOME: path.join(layout.home, '.cache'),
    [AGENT_ENV.gateway]: `unix:${layout.socket}`,
    [AGENT_ENV.workdir]: layout.work,
    // Also the mark by which the backend finds every process of this execution (see processes.ts).
    [AGENT_ENV.executionId]: options.executionId,
  });
  return env;
}

/** What meta.json records. `pid`/`pid_start_time` identify the process group running now. */
export const WorkspaceMeta = z.object({
  version: z.literal(1),
  worker_id: z.string(),
  execution_id: z.string(),
  epoch: z.number().int(),
  created_at: z.string(),
  phase: z.enum(['prepared', 'setup', 'agent', 'teardown', 'exited']),
  pid: z.number().int().nullable(),
  /** Start time of `pid` in clock ticks since boot (/proc/<pid>/stat field 22): a recycled pid has another. */
  pid_start_time: z.number().int().nullable(),
  exit_code: z.number().int().nullable().optional(),
  /** Set when the workspace was kept on purpose (--no-cleanup): recovery leaves it alone. */
  kept_at: z.string().optional(),
});
export type WorkspaceMeta = z.infer<typeof WorkspaceMeta>;
