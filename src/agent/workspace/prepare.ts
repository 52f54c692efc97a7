/**
 * Workspace preparation, run by `airlock agent run` before the harness: clone the execution's
 * repositories, check out the working branch, run the setup commands.
 *
 * Layout: one repository is cloned into the working directory itself (the harness works in the
 * repository); several are cloned into one subdirectory each, named after the repository
 * (`github.com/org/api.git` → `api/`, a second `api` → `api-2/`), and the harness works in the
 * directory above them. Each clone is at the repository's `ref` (branch, tag or commit) or else
 * at the remote's HEAD, with the working branch (`airlock/<short task id>`) created there.
 *
 * Invariants:
 * - Repository addresses are checked again here (`repositoryUrlProblem`) before git sees them,
 *   and always passed after `--`.
 * - Credentials are reachable only while the clones run (credentials.ts), never during setup.
 * - A failure throws a WorkspaceError with the execution's failure reason (`repo_clone` or
 *   `setup_command`) and a message that says what failed and what to do.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { GitRef, repositoryUrlProblem } from '../../protocol/environment.js';
import { workingBranch, type EventKind, type ExecutionSpec } from '../../protocol/task.js';
import { runProcess } from '../harness/process.js';
import { CredentialBridge, type GitCredentials } from './credentials.js';
import { GitError, git, gitEnvironment, lastLines } from './git.js';

/** Setup installs dependencies: half an hour unless the environment says otherwise. */
export const DEFAULT_SETUP_TIMEOUT_SECONDS = 1800;
/** Git's id of the empty tree: the base to diff against in a repository that had no commits. */
export const EMPTY_TREE = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';

export class WorkspaceError extends Error {
  constructor(
    readonly reason: 'repo_clone' | 'setup_command',
    message: string,
  ) {
    super(message);
    this.name = 'WorkspaceError';
  }
}

/** Preparation stopped because the execution was cancelled. */
export class WorkspaceCancelled extends Error {
  constructor() {
    super('cancelled while preparing the workspace');
    this.name = 'WorkspaceCancelled';
  }
}

export interface WorkspaceContext {
  /** The working directory: the clone (one repository) or the parent of the clones. */
  workdir: string;
  /** The agent's environment without the task token. */
  env: NodeJS.ProcessEnv;
  emit(kind: EventKind, data: Record<string, unknown>): void;
  signal: AbortSignal;
  /** Where git credentials come from (the task gateway), and the helper git asks. */
  credentials: GitCredentials;
}

export interface PreparedRepository {
  url: string;
  ref: string | undefined;
  /** Relative to the working directory ("." for a single repository). */
  path: string;
  /** Absolute directory of the clone. */
  dir: string;
  branch: string;
  /** The commit the working branch started at; null for a repository without commits. */
  baseCommit: string | null;
}

/** Directory names for the clones: "." for one, else the repository's name, made unique. */
export function cloneDirectories(urls: string[]): string[] {
  if (urls.length === 1) return ['.'];
  const used = new Set<string>();
  return urls.map((url) => {
    const base =
      url
        .replace(/\/+$/, '')
        .split(/[/:]/)
        .pop()!
        .replace(/\.git$/, '')
        .replace(/[^A-Za-z0-9._-]/g, '-')
        .replace(/^[.-]+/, '') || 'repo';
    let name = base;
    for (let n = 2; used.has(name); n++) name = `${base}-${n}`;
    used.add(name);
    return name;
  });
}

/** Clone every repository of `spec` and run its setup commands. Returns the clones, in spec order. */
export async function prepareWorkspace(spec: ExecutionSpec, context: WorkspaceContext): Promise<PreparedRepository[]> {
  const repositories = spec.repositories ?? [];
  const branch = spec.branch ?? workingBranch(spec.task_id);
  if (!GitRef.safeParse(branch).success) {
    throw new WorkspaceError('repo_clone', `refusing to create the working branch ${JSON.stringify(branch)}: not a valid branch name — this is a bug in the server's offer`);
  }
  const prepared: PreparedRepository[] = [];
  if (repositories.length > 0) {
    for (const repository of repositories) {
      const problem = repositoryUrlProblem(repository.url);
      if (problem) throw new WorkspaceError('repo_clone', `refusing to clone ${JSON.stringify(repository.url)}: the address ${problem}`);
    }
    if (repositories.length === 1 && (await readdir(context.workdir).catch(() => [])).length > 0) {
      throw new WorkspaceError(
        'repo_clone',
        `could not clone ${repositories[0]!.url}: the working directory ${context.workdir} is not empty — the repository is cloned into it; make the worker's setup command leave it empty`,
      );
    }
    const directories = cloneDirectories(repositories.map((r) => r.url));
    const bridge = await CredentialBridge.open(context.credentials, context.env.TMPDIR || undefined);
    try {
      for (const [i, repository] of repositories.entries()) {
        if (context.signal.aborted) throw new WorkspaceCancelled();
        const relative = directories[i]!;
        context.emit('status', { message: `cloning ${repository.url}${repository.ref ? ` at ${repository.ref}` : ''} into ${relative}` });
        const baseCommit = await cloneOne(repository.url, repository.ref, path.join(context.workdir, relative), branch, context, bridge);
        prepared.push({ url: repository.url, ref: repository.ref, path: relative, dir: path.resolve(context.workdir, relative), branch, baseCommit });
        context.emit('lifecycle', { phase: 'repository_ready', url: repository.url, path: relative, branch, base_commit: baseCommit });
      }
    } finally {
      await bridge.close();
    }
  }
  await runSetupCommands(spec, prepared.length === 1 ? prepared[0]!.dir : context.workdir, context);
  return prepared;
}

async function cloneOne(
  url: string,
  ref: string | undefined,
  dir: string,
  branch: string,
  context: WorkspaceContext,
  bridge: CredentialBridge,
): Promise<string | null> {
  const env = { ...gitEnvironment(context.env, bridge.gitSettings()), ...bridge.env() };
  const run = (args: string[], cwd: string) => git(args, { cwd, env, signal: context.signal });
  try {
    await run(['clone', '--no-checkout', '--quiet', '--', url, dir], context.workdir);
  } catch (err) {
    if (context.signal.aborted) throw new WorkspaceCancelled();
    throw new WorkspaceError('repo_clone', `could not clone ${url}: ${cloneProblem(err, bridge)}`);
  }
  try {
    const commit = ref ? await resolveRef(ref, dir, run) : await revParse('HEAD', dir, run);
    if (ref && !commit) {
      throw new WorkspaceError('repo_clone', `could not check out ${url} at ${ref}: no branch, tag or commit of that name — check the repository's ref`);
    }
    if (commit) await run(['checkout', '--quiet', '--no-track', '-B', branch, commit], dir);
    else await run(['symbolic-ref', 'HEAD', `refs/heads/${branch}`], dir); // an empty repository
    return commit;
  } catch (err) {
    if (err instanceof WorkspaceError) throw err;
    if (context.signal.aborted) throw new WorkspaceCancelled();
    throw new WorkspaceError('repo_clone', `could not check out ${url}${ref ? ` at ${ref}` : ''}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

type Run = (args: string[], cwd: string) => Promise<{ stdout: string }>;

async function revParse(what: string, dir: string, run: Run): Promise<string | null> {
  try {
    return (await run(['rev-parse', '--verify', '--quiet', `${what}^{commit}`], dir)).stdout.trim() || null;
  } catch {
    return null;
  }
}

/** A branch of the remote, a tag, a commit the clone has, or a commit fetched by id. */
async function resolveRef(ref: string, dir: string, run: Run): Promise<string | null> {
  for (const candidate of [`refs/remotes/origin/${ref}`, `refs/tags/${ref}`, ref]) {
    const commit = await revParse(candidate, dir, run);
    if (commit) return commit;
  }
  if (/^[0-9a-f]{7,64}$/i.test(ref)) {
    // A commit no branch or tag leads to: servers that allow it fetch it by id.
    const fetched = await run(['fetch', '--quiet', 'origin', '--', ref], dir).then(
      () => true,
      () => false,
    );
    if (fetched) return revParse('FETCH_HEAD', dir, run);
  }
  return null;
}

/** What went wrong with a clone, and what to do, from git's stderr. */
function cloneProblem(err: unknown, bridge: CredentialBridge): string {
  const stderr = err instanceof GitError ? err.stderr : '';
  const said = lastLines(stderr) || (err instanceof Error ? err.message : String(err));
  const refused = bridge.record.refused.length > 0 ? ` (this worker has no git_credentials for ${bridge.record.refused[0]})` : '';
  const gatewayError = bridge.record.errors.length > 0 ? ` (asking the worker for credentials failed: ${bridge.record.errors[0]})` : '';
  if (/could not read (Username|Password)|terminal prompts disabled|Authentication failed|HTTP Basic: Access denied|401|403/i.test(stderr)) {
    return `authentication failed${refused}${gatewayError} — give the worker git_credentials for this URL (url_prefix, username, password_env) [git: ${said}]`;
  }
  if (/repository .* not found|not found|does not appear to be a git repository|does not exist/i.test(stderr)) {
    return `repository not found${refused} — check the URL and the worker's git_credentials [git: ${said}]`;
  }
  if (/Could not resolve host|Name or service not known|Connection refused|Connection timed out|Network is unreachable|Failed to connect/i.test(stderr)) {
    return `the remote could not be reached — check the URL and the task environment's network [git: ${said}]`;
  }
  if (/Host key verification failed/i.test(stderr)) {
    return `the ssh host key is not known — add the host to known_hosts in the task environment (HOME/.ssh/known_hosts) [git: ${said}]`;
  }
  if (/Permission denied \(publickey/i.test(stderr)) {
    return `the ssh key was refused — give the task environment a key the remote accepts (e.g. SSH_AUTH_SOCK, or GIT_SSH_COMMAND with -i) [git: ${said}]`;
  }
  return `${said}${refused}${gatewayError}`;
}

async function runSetupCommands(spec: ExecutionSpec, cwd: string, context: WorkspaceContext): Promise<void> {
  const commands = spec.setup_commands ?? [];
  if (commands.length === 0) return;
  const timeoutSeconds = spec.setup_timeout_seconds ?? DEFAULT_SETUP_TIMEOUT_SECONDS;
  const limit = new AbortController();
  const timer = setTimeout(() => limit.abort(new Error('setup timeout')), timeoutSeconds * 1000);
  const signal = AbortSignal.any([context.signal, limit.signal]);
  try {
    for (const [i, command] of commands.entries()) {
      if (context.signal.aborted) throw new WorkspaceCancelled();
      const shown = command.length > 200 ? `${command.slice(0, 200)}…` : command;
      context.emit('lifecycle', { phase: 'setup_command', index: i + 1, of: commands.length, command: shown });
      const outcome = await runProcess({ command: 'bash', args: ['-c', command], cwd, env: context.env }, { emit: (kind, data) => context.emit(kind, data), signal });
      if (context.signal.aborted) throw new WorkspaceCancelled();
      const which = `setup command ${i + 1} of ${commands.length} (\`${shown}\`)`;
      if (outcome.startError) throw new WorkspaceError('setup_command', `${which} could not start: ${outcome.startError} — the task environment needs bash on PATH`);
      if (limit.signal.aborted) {
        throw new WorkspaceError('setup_command', `${which} was stopped: the setup commands ran past setup_timeout_seconds (${timeoutSeconds} s) — make them faster or raise setup_timeout_seconds`);
      }
      if (outcome.exitCode !== 0) {
        const how = outcome.signal ? `was killed by ${outcome.signal}` : `exited with status ${outcome.exitCode}`;
        throw new WorkspaceError('setup_command', `${which} ${how} — its output is in the transcript; fix the command in the environment's setup_commands`);
      }
    }
  } finally {
    clearTimeout(timer);
  }
}
