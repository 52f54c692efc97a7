/**
 * Results, collected by `airlock agent run` after the harness ended — whatever its outcome, budget
 * stops included: work is never thrown away. In each repository: commit everything the run
 * changed on the working branch, measure it against the base commit (diffstat, unified diff
 * capped at MAX_REPORTED_DIFF_BYTES), and push the branch when the task asked for it.
 *
 * A push that fails (rejected as non-fast-forward, remote unreachable, no credentials) does not
 * fail the task: the result still reports the local commit, with `pushed: false` and the reason
 * in `push_error` — the work exists and the diff says what it is; the task's `message` names the
 * push problem.
 *
 * Invariants:
 * - Nothing here runs the task's hooks, filters' external diff/textconv programs or fsmonitor.
 * - The push runs from a fresh bare repository that borrows the clone's objects (alternates) and
 *   reads no config file the task could have written (GIT_CONFIG_GLOBAL=/dev/null, no system
 *   config): a task cannot redirect it (insteadOf, proxies, sslVerify) while credentials are in
 *   reach. It never forces.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MAX_KEPT_DIFF_BYTES } from '../../protocol/gateway.js';
import { MAX_REPORTED_DIFF_BYTES, type ExecutionSpec, type RepositoryArtifacts } from '../../protocol/task.js';
import { CredentialBridge, type GitCredentials } from './credentials.js';
import { GitError, git, gitEnvironment, lastLines } from './git.js';
import { EMPTY_TREE, type PreparedRepository } from './prepare.js';

export const DEFAULT_AUTHOR = { name: 'Airlock agent', email: 'agent@airlock.invalid' } as const;
const MAX_SUBJECT_CHARS = 72;
const MAX_MESSAGE_BODY_CHARS = 16 * 1024;

export interface ResultsContext {
  env: NodeJS.ProcessEnv;
  credentials: GitCredentials;
  emit(kind: 'status' | 'lifecycle' | 'error', data: Record<string, unknown>): void;
  /** Hands the worker a repository's full diff when the reported one was cut. */
  keepDiff?: (index: number, diff: Buffer) => Promise<void>;
}

/** The commit message: the task's title (or the prompt's first line), then the harness's summary. */
export function commitMessage(spec: Pick<ExecutionSpec, 'title' | 'prompt'>, summary: string | null): string {
  const firstLine = (spec.title ?? '').trim() || spec.prompt.split('\n').find((line) => line.trim().length > 0)?.trim() || 'Airlock task';
  const subject = firstLine.length > MAX_SUBJECT_CHARS ? `${firstLine.slice(0, MAX_SUBJECT_CHARS - 1)}…` : firstLine;
  const body = (summary ?? '').trim().slice(0, MAX_MESSAGE_BODY_CHARS);
  return body ? `${subject}\n\n${body}\n` : `${subject}\n`;
}

/**
 * The text of `raw` (invalid UTF-8 replaced by U+FFFD) cut to at most `max` bytes as UTF-8,
 * without splitting a character.
 */
export function capUtf8(raw: Buffer, max: number): string {
  const text = raw.toString('utf8');
  const buffer = Buffer.from(text, 'utf8');
  if (buffer.length <= max) return text;
  let end = max;
  // Step back over continuation bytes (10xxxxxx) to the start of the character that was cut.
  while (end > 0 && (buffer[end]! & 0xc0) === 0x80) end--;
  return buffer.subarray(0, end).toString('utf8');
}

export async function collectResults(
  spec: ExecutionSpec,
  repositories: PreparedRepository[],
  summary: string | null,
  context: ResultsContext,
): Promise<RepositoryArtifacts[]> {
  const artifacts: RepositoryArtifacts[] = [];
  for (const [index, repository] of repositories.entries()) {
    artifacts.push(await collectOne(spec, repository, index, summary, context));
  }
  return artifacts;
}

async function collectOne(
  spec: ExecutionSpec,
  repository: PreparedRepository,
  index: number,
  summary: string | null,
  context: ResultsContext,
): Promise<RepositoryArtifacts> {
  const artifact: RepositoryArtifacts = {
    url: repository.url,
    path: repository.path,
    branch: repository.branch,
    base_commit: repository.baseCommit,
    commit: null,
    diffstat: { files_changed: 0, insertions: 0, deletions: 0 },
    diff: '',
    diff_truncated: false,
    diff_bytes: 0,
    pushed: false,
    push_error: null,
    pull_request_url: null,
    pull_request_error: null,
  };
  const env = gitEnvironment(context.env, [
    ['commit.gpgSign', 'false'],
    ['diff.external', ''],
  ]);
  const run = (args: string[]) => git(args, { cwd: repository.dir, env });
  try {
    await run(['add', '--all']);
    const staged = (await run(['diff', '--cached', '--name-only', '-z'])).stdout.length > 0;
    if (staged) {
      const identity = await authorIdentity(context.env, run);
      const dir = await mkdtemp(path.join(context.env.TMPDIR || os.tmpdir(), 'airlock-msg-'));
      try {
        // The message goes through a file, not argv: it may be long, and it is the task's text.
        const file = path.join(dir, 'message');
        await writeFile(file, commitMessage(spec, summary), { mode: 0o600 });
        await git(['commit', '--quiet', '--no-verify', '-F', file], {
          cwd: repository.dir,
          env: { ...env, GIT_AUTHOR_NAME: identity.name, GIT_AUTHOR_EMAIL: identity.email, GIT_COMMITTER_NAME: identity.name, GIT_COMMITTER_EMAIL: identity.email },
        });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
    const head = (await run(['rev-parse', '--verify', '--quiet', 'HEAD^{commit}']).catch(() => ({ stdout: '' }))).stdout.trim() || null;
    artifact.commit = head !== repository.baseCommit ? head : null;
  } catch (err) {
    const message = `could not commit the changes in ${repository.path === '.' ? 'the repository' : repository.path}: ${describe(err)}`;
    context.emit('error', { message });
    artifact.push_error = spec.push ? `not pushed: ${message}` : null;
    return artifact;
  }
  if (!artifact.commit) {
    context.emit('status', { message: `no changes in ${repository.url}` });
    return artifact;
  }
  const base = repository.baseCommit ?? EMPTY_TREE;
  const range = [base, artifact.commit];
  const numstat = (await run(['diff', '--numstat', '--no-ext-diff', '--no-textconv', '--no-renames', ...range, '--'])).stdout;
  for (const line of numstat.split('\n')) {
    const match = /^(\d+|-)\t(\d+|-)\t/.exec(line);
    if (!match) continue;
    artifact.diffstat.files_changed++;
    artifact.diffstat.insertions += match[1] === '-' ? 0 : Number(match[1]);
    artifact.diffstat.deletions += match[2] === '-' ? 0 : Number(match[2]);
  }
  // Everything up to the keeping limit is held: the reported diff is its head, and when that
  // was cut the worker keeps the whole of it in the data plane.
  const kept: Buffer[] = [];
  let keptBytes = 0;
  await git(['diff', '--no-color', '--no-ext-diff', '--no-textconv', '--no-renames', ...range, '--'], {
    cwd: repository.dir,
    env,
    onStdout: (chunk) => {
      artifact.diff_bytes += chunk.length;
      if (keptBytes + chunk.length <= MAX_KEPT_DIFF_BYTES) {
        kept.push(chunk);
        keptBytes += chunk.length;
      }
    },
  });
  const whole = Buffer.concat(kept);
  artifact.diff = capUtf8(whole, MAX_REPORTED_DIFF_BYTES);
  artifact.diff_truncated = artifact.diff_bytes > MAX_REPORTED_DIFF_BYTES;
  if (artifact.diff_truncated && context.keepDiff) {
    if (artifact.diff_bytes > MAX_KEPT_DIFF_BYTES) {
      context.emit('status', { message: `the diff of ${repository.url} is ${artifact.diff_bytes} bytes, over the ${MAX_KEPT_DIFF_BYTES} the worker keeps — the commit holds it` });
    } else {
      await context.keepDiff(index, whole).catch((err: unknown) => {
        context.emit('error', { message: `the worker could not keep the full diff of ${repository.url}: ${err instanceof Error ? err.message : String(err)} — the commit holds it` });
      });
    }
  }
  context.emit('lifecycle', { phase: 'committed', url: repository.url, path: repository.path, branch: repository.branch, commit: artifact.commit, ...artifact.diffstat });
  if (spec.push) {
    const error = await push(repository, artifact.commit, context);
    artifact.pushed = error === null;
    artifact.push_error = error;
    if (error) context.emit('error', { message: error });
    else context.emit('lifecycle', { phase: 'pushed', url: repository.url, branch: repository.branch, commit: artifact.commit });
  }
  return artifact;
}

/** The environment's identity (GIT_AUTHOR_*, else git config user.*), else the Airlock agent's. */
async function authorIdentity(env: NodeJS.ProcessEnv, run: (args: string[]) => Promise<{ stdout: string }>): Promise<{ name: string; email: string }> {
  const config = async (key: string) => (await run(['config', '--get', key]).catch(() => ({ stdout: '' }))).stdout.trim();
  const name = env.GIT_AUTHOR_NAME || (await config('user.name'));
  const email = env.GIT_AUTHOR_EMAIL || (await config('user.email'));
  return name && email ? { name, email } : { ...DEFAULT_AUTHOR };
}

/** Push `commit` to the working branch of the repository's remote; the reason it failed, or null. */
async function push(repository: PreparedRepository, commit: string, context: ResultsContext): Promise<string | null> {
  const tmp = await mkdtemp(path.join(context.env.TMPDIR || os.tmpdir(), 'airlock-push-'));
  const bridge = await CredentialBridge.open(context.credentials, context.env.TMPDIR || undefined);
  try {
    const clean = gitEnvironment({ ...context.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' }, bridge.gitSettings());
    const objects = (await git(['rev-parse', '--path-format=absolute', '--git-path', 'objects'], { cwd: repository.dir, env: gitEnvironment(context.env) })).stdout.trim();
    await git(['init', '--quiet', '--bare', tmp], { cwd: tmp, env: clean });
    await writeFile(path.join(tmp, 'objects', 'info', 'alternates'), `${objects}\n`);
    const ref = `refs/heads/${repository.branch}`;
    await git(['update-ref', ref, commit], { cwd: tmp, env: clean });
    context.emit('status', { message: `pushing ${repository.branch} to ${repository.url}` });
    try {
      await git(['push', '--', repository.url, `${ref}:${ref}`], { cwd: tmp, env: { ...clean, ...bridge.env() } });
      return null;
    } catch (err) {
      return pushProblem(repository, commit, err, bridge);
    }
  } catch (err) {
    return `could not push ${repository.branch} to ${repository.url}: ${describe(err)}`;
  } finally {
    await bridge.close();
    await rm(tmp, { recursive: true, force: true });
  }
}

function pushProblem(repository: PreparedRepository, commit: string, err: unknown, bridge: CredentialBridge): string {
  const output = err instanceof GitError ? err.stderr : '';
  const said = lastLines(output) || describe(err);
  const where = `${repository.branch} to ${repository.url}`;
  const kept = `the work is in the local commit ${commit.slice(0, 12)} (see the diff)`;
  if (/non-fast-forward|fetch first|\[rejected\]|stale info/i.test(output)) {
    return `push of ${where} was rejected: the remote branch has commits this run does not have (non-fast-forward); ${kept} — delete or rename the remote branch, then run the task again`;
  }
  if (/could not read (Username|Password)|terminal prompts disabled|Authentication failed|401|403|denied/i.test(output)) {
    const refused = bridge.record.refused.length > 0 ? ` (this worker has no git_credentials for ${bridge.record.refused[0]})` : '';
    return `push of ${where} was refused: authentication failed${refused}; ${kept} — give the worker git_credentials with write access for this URL [git: ${said}]`;
  }
  return `push of ${where} failed; ${kept} [git: ${said}]`;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
