// Workspace preparation and results, end to end: the real agent runtime (in-process) against a
// real TaskGateway on a Unix socket, cloning real git repositories (bare repos in tmp dirs as
// remotes; an HTTPS git server with Basic auth; ssh through a fake ssh program, as git's own
// test suite does), running setup commands and the shell harness, then committing, diffing and
// pushing. The git credential helper is the built CLI (run `npm run build` first).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runAgent } from '../../src/agent/run.js';
import { packageSelfCommand } from '../../src/cli/agent.js';
import { WorkspaceError, cloneDirectories, prepareWorkspace } from '../../src/agent/workspace/prepare.js';
import { capUtf8, commitMessage } from '../../src/agent/workspace/results.js';
import type { AgentEvent, AgentResult, GitCredentialQuery } from '../../src/protocol/gateway.js';
import { MAX_REPORTED_DIFF_BYTES, type ExecutionSpec } from '../../src/protocol/task.js';
import { answerGitCredential, type GitCredentialRule } from '../../src/worker/git-credentials.js';
import { TaskGateway } from '../../src/worker/taskgateway/index.js';
import { startGitHttpServer, type GitHttpServer } from '../support/git-http-server.js';

const TOKEN = 'test-token-0123456789abcdef';
const TASK_ID = 'tsk_abcdefghijklmnopqrst';
const BRANCH = 'airlock/abcdefgh';

let dir: string;
let socketPath: string;
let workdir: string;
let gateway: TaskGateway | undefined;
let events: AgentEvent[];
let results: AgentResult[];
let credentialQueries: GitCredentialQuery[];
let keptDiffs: Array<{ index: number; diff: Buffer }>;
let rules: GitCredentialRule[];
let httpServer: GitHttpServer | undefined;

/** Environment for the test's own git commands (making remotes, inspecting results). */
function gitEnv(): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: dir,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: path.join(dir, 'test-gitconfig'),
    GIT_AUTHOR_NAME: 'Test',
    GIT_AUTHOR_EMAIL: 'test@example.invalid',
    GIT_COMMITTER_NAME: 'Test',
    GIT_COMMITTER_EMAIL: 'test@example.invalid',
  };
}

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, { cwd, env: gitEnv(), encoding: 'utf8' }).trim();
}

/** A bare repository with two commits on main, a `feature` branch and a tag `v1` (on the first commit). */
async function makeRemote(name: string, root = path.join(dir, 'remotes')): Promise<{ path: string; first: string; second: string; feature: string }> {
  const bare = path.join(root, `${name}.git`);
  await mkdir(bare, { recursive: true });
  git(bare, 'init', '--quiet', '--bare', '--initial-branch=main');
  const scratch = await mkdtemp(path.join(dir, 'scratch-'));
  git(scratch, 'init', '--quiet', '--initial-branch=main');
  await writeFile(path.join(scratch, 'README.md'), `# ${name}\n\nline one\n`);
  git(scratch, 'add', '.');
  git(scratch, 'commit', '--quiet', '-m', 'first');
  const first = git(scratch, 'rev-parse', 'HEAD');
  git(scratch, 'tag', 'v1');
  await writeFile(path.join(scratch, 'README.md'), `# ${name}\n\nline one\nline two\n`);
  git(scratch, 'commit', '--quiet', '-am', 'second');
  const second = git(scratch, 'rev-parse', 'HEAD');
  git(scratch, 'checkout', '--quiet', '-b', 'feature', first);
  await writeFile(path.join(scratch, 'feature.txt'), 'feature\n');
  git(scratch, 'add', '.');
  git(scratch, 'commit', '--quiet', '-m', 'feature');
  const feature = git(scratch, 'rev-parse', 'HEAD');
  git(scratch, 'push', '--quiet', bare, 'main', 'feature', 'v1');
  await rm(scratch, { recursive: true, force: true });
  return { path: bare, first, second, feature };
}

function spec(fields: Partial<ExecutionSpec>): ExecutionSpec {
  return {
    execution_id: 'exe_aaaaaaaaaaaaaaaaaaaa',
    task_id: TASK_ID,
    epoch: 1,
    prompt: 'true',
    harness: 'shell',
    timeout_seconds: null,
    title: 'Fix the readme',
    branch: BRANCH,
    ...fields,
  };
}

async function run(execution: ExecutionSpec, extraEnv: Record<string, string> = {}): Promise<{ code: number; result: AgentResult; stderr: string[] }> {
  gateway = new TaskGateway({
    socketPath,
    token: TOKEN,
    spec: execution,
    onEvents: async (batch) => {
      events.push(...batch);
    },
    onResult: (result) => {
      results.push(result);
    },
    onDiff: async (index, diff) => {
      keptDiffs.push({ index, diff });
    },
    gitCredential: async (query) => {
      credentialQueries.push(query);
      return answerGitCredential(rules, execution.repositories ?? [], query);
    },
  });
  await gateway.start();
  const stderr: string[] = [];
  const code = await runAgent({
    env: {
      PATH: process.env.PATH,
      HOME: path.join(dir, 'home'),
      TMPDIR: path.join(dir, 'tmp'),
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: path.join(dir, 'home', '.gitconfig'),
      AIRLOCK_GATEWAY: `unix:${socketPath}`,
      AIRLOCK_TASK_TOKEN: TOKEN,
      AIRLOCK_WORKDIR: workdir,
      ...extraEnv,
    },
    selfCommand: packageSelfCommand(),
    stderr: (line) => stderr.push(line),
    handleSignals: false,
    specDeadlineMs: 500,
  });
  await gateway.close();
  gateway = undefined;
  expect(results).toHaveLength(1);
  return { code, result: results[0]!, stderr };
}

const transcript = () => JSON.stringify(events);
const output = () => events.filter((e) => e.kind === 'output').map((e) => e.data.text as string).join('');

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'al-ws-'));
  socketPath = path.join(dir, 'gw.sock');
  workdir = path.join(dir, 'work');
  await mkdir(workdir);
  await mkdir(path.join(dir, 'home'));
  await mkdir(path.join(dir, 'tmp'));
  await writeFile(path.join(dir, 'test-gitconfig'), '');
  events = [];
  results = [];
  credentialQueries = [];
  keptDiffs = [];
  rules = [];
});

afterEach(async () => {
  await gateway?.close();
  gateway = undefined;
  await httpServer?.close();
  httpServer = undefined;
  await rm(dir, { recursive: true, force: true });
});

describe('workspace preparation', () => {
  it('clones one repository into the working directory at the remote HEAD, on the working branch', async () => {
    const remote = await makeRemote('app');
    const { code, result } = await run(spec({ repositories: [{ url: remote.path }], prompt: 'git rev-parse --abbrev-ref HEAD; cat README.md' }));
    expect(code).toBe(0);
    expect(result.outcome).toBe('succeeded');
    expect(output()).toContain(`${BRANCH}\n# app`);
    expect(output()).toContain('line two');
    expect(git(workdir, 'rev-parse', 'HEAD')).toBe(remote.second);
    expect(result.repositories).toEqual([
      expect.objectContaining({ url: remote.path, path: '.', branch: BRANCH, base_commit: remote.second, commit: null, pushed: false, push_error: null, diff: '' }),
    ]);
    expect(events.some((e) => e.kind === 'lifecycle' && e.data.phase === 'repository_ready')).toBe(true);
  });

  it('checks out a branch, a tag or a commit given as ref', async () => {
    const remote = await makeRemote('app');
    for (const [ref, commit] of [
      ['feature', remote.feature],
      ['v1', remote.first],
      [remote.first, remote.first],
      [remote.feature.slice(0, 12), remote.feature],
    ] as const) {
      await rm(workdir, { recursive: true, force: true });
      await mkdir(workdir);
      results = [];
      const { result } = await run(spec({ repositories: [{ url: remote.path, ref }] }));
      expect(result.outcome, `ref ${ref}: ${result.summary}`).toBe('succeeded');
      expect(git(workdir, 'rev-parse', 'HEAD')).toBe(commit);
      expect(git(workdir, 'symbolic-ref', '--short', 'HEAD')).toBe(BRANCH);
      expect(result.repositories?.[0]?.base_commit).toBe(commit);
    }
  });

  it('fails with repo_clone and words when a ref does not exist', async () => {
    const remote = await makeRemote('app');
    const { code, result } = await run(spec({ repositories: [{ url: remote.path, ref: 'no-such-branch' }], prompt: 'touch ran' }));
    expect(code).not.toBe(0);
    expect(result).toMatchObject({ outcome: 'failed', failure_reason: 'repo_clone' });
    expect(result.summary).toContain('no-such-branch');
    expect(result.summary).toMatch(/no branch, tag or commit of that name/);
    expect(existsSync(path.join(workdir, 'ran'))).toBe(false);
  });

  it('clones several repositories into one subdirectory each, named after the repository', async () => {
    const api = await makeRemote('api');
    const other = await makeRemote('api', path.join(dir, 'elsewhere'));
    const web = await makeRemote('web');
    const { result } = await run(spec({ repositories: [{ url: api.path }, { url: other.path }, { url: `${web.path}/` }], prompt: 'ls' }));
    expect(result.outcome).toBe('succeeded');
    expect((await readdir(workdir)).sort()).toEqual(['api', 'api-2', 'web']);
    expect(result.repositories?.map((r) => r.path)).toEqual(['api', 'api-2', 'web']);
    expect(cloneDirectories(['git@host:org/x.git', 'https://h/a/-x.git', 'https://h/a/..'])).toEqual(['x', 'x-2', 'repo']);
  });

  it('fails with repo_clone when the remote cannot be reached, saying what to do', async () => {
    const { result } = await run(spec({ repositories: [{ url: path.join(dir, 'missing.git') }], prompt: 'touch ran' }));
    expect(result).toMatchObject({ outcome: 'failed', failure_reason: 'repo_clone' });
    expect(result.summary).toMatch(/^could not clone .*missing\.git: repository not found — check the URL and the worker's git_credentials/);
    expect(existsSync(path.join(workdir, 'ran'))).toBe(false);
    await rm(workdir, { recursive: true, force: true });
    await mkdir(workdir);
    results = [];
    const unreachable = (await run(spec({ repositories: [{ url: 'https://127.0.0.1:9/x/y.git' }] }))).result;
    expect(unreachable.failure_reason).toBe('repo_clone');
    expect(unreachable.summary).toMatch(/could not clone https:\/\/127\.0\.0\.1:9\/x\/y\.git: the remote could not be reached/);
  });

  it('refuses hostile repository addresses before git sees them', async () => {
    const marker = path.join(dir, 'pwned');
    const context = {
      workdir,
      env: { PATH: process.env.PATH, HOME: dir, TMPDIR: path.join(dir, 'tmp') },
      emit: () => undefined,
      signal: new AbortController().signal,
      credentials: { source: async () => null, helper: [...packageSelfCommand(), 'git-credential'] },
    };
    for (const url of [`ext::sh -c touch% ${marker}`, `ext::touch ${marker}`, 'file:///etc', '--upload-pack=touch /tmp/x', '-oProxyCommand=x', 'http://example.com/x', 'https://user:pw@example.com/x', '/srv/../etc', 'fd::3']) {
      const error = await prepareWorkspace(spec({ repositories: [{ url }] }), context).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error, url).toBeInstanceOf(WorkspaceError);
      expect((error as WorkspaceError).reason).toBe('repo_clone');
      expect((error as WorkspaceError).message).toMatch(/^refusing to clone/);
    }
    expect(existsSync(marker)).toBe(false);
    expect(await readdir(workdir)).toEqual([]);
    await expect(prepareWorkspace(spec({ repositories: [{ url: '/srv/x' }], branch: '--orphan' }), context)).rejects.toThrow(/refusing to create the working branch "--orphan"/);
  });

  it('runs setup commands in order in the repository, streaming their output, and stops at the first failure', async () => {
    const remote = await makeRemote('app');
    const ok = await run(spec({ repositories: [{ url: remote.path }], setup_commands: ['echo one; head -1 README.md', 'echo two >&2'], prompt: 'echo harness' }));
    expect(ok.result.outcome).toBe('succeeded');
    const text = output();
    expect(text.indexOf('one\n# app')).toBeGreaterThanOrEqual(0);
    expect(text.indexOf('two')).toBeGreaterThan(text.indexOf('one'));
    expect(text.indexOf('harness')).toBeGreaterThan(text.indexOf('two'));
    expect(events.filter((e) => e.kind === 'lifecycle' && e.data.phase === 'setup_command').map((e) => e.data.index)).toEqual([1, 2]);

    await rm(workdir, { recursive: true, force: true });
    await mkdir(workdir);
    events = [];
    results = [];
    const failed = await run(spec({ repositories: [{ url: remote.path }], setup_commands: ['echo before', 'echo broken; exit 3', 'touch third'], prompt: 'touch harness-ran' }));
    expect(failed.result).toMatchObject({ outcome: 'failed', failure_reason: 'setup_command' });
    expect(failed.result.summary).toMatch(/setup command 2 of 3 \(`echo broken; exit 3`\) exited with status 3 — its output is in the transcript/);
    expect(output()).toContain('broken');
    expect(existsSync(path.join(workdir, 'third'))).toBe(false);
    expect(existsSync(path.join(workdir, 'harness-ran'))).toBe(false);
    expect(failed.result.repositories).toBeUndefined();
  });

  it('stops setup commands at setup_timeout_seconds', async () => {
    const started = Date.now();
    const { result } = await run(spec({ setup_commands: ['sleep 30'], setup_timeout_seconds: 1 }));
    expect(result).toMatchObject({ outcome: 'failed', failure_reason: 'setup_command' });
    expect(result.summary).toMatch(/setup_timeout_seconds \(1 s\)/);
    expect(Date.now() - started).toBeLessThan(15_000);
  });
});

describe('results', () => {
  it('commits every change on the working branch and reports base, commit, diffstat and diff', async () => {
    const remote = await makeRemote('app');
    const prompt = 'echo "line three" >> README.md && printf "a\\nb\\n" > new.txt && mkdir -p d && echo x > d/y && git rm -q --cached README.md >/dev/null && git add README.md';
    const { result } = await run(spec({ repositories: [{ url: remote.path }], prompt }));
    expect(result.outcome).toBe('succeeded');
    const artifact = result.repositories![0]!;
    expect(artifact.commit).toBe(git(workdir, 'rev-parse', BRANCH));
    expect(artifact.base_commit).toBe(remote.second);
    expect(artifact.diffstat).toEqual({ files_changed: 3, insertions: 4, deletions: 0 });
    expect(artifact.diff).toBe(git(workdir, 'diff', remote.second, artifact.commit!) + '\n');
    expect(artifact.diff).toContain('+line three');
    expect(artifact).toMatchObject({ diff_truncated: false, diff_bytes: Buffer.byteLength(artifact.diff), pushed: false, push_error: null });
    expect(git(workdir, 'log', '-1', '--format=%an <%ae>%n%s')).toBe('Airlock agent <agent@airlock.invalid>\nFix the readme');
    expect(git(workdir, 'status', '--porcelain')).toBe('');
  });

  it('builds the commit message from the title (or the first prompt line) and the harness summary', () => {
    expect(commitMessage({ title: null, prompt: '\n  Make it faster\nplease' }, 'Done: 2x faster')).toBe('Make it faster\n\nDone: 2x faster\n');
    expect(commitMessage({ title: 'x'.repeat(100), prompt: 'p' }, null)).toBe(`${'x'.repeat(71)}…\n`);
  });

  it('keeps a commit the harness made itself, and reports no commit when nothing changed', async () => {
    const remote = await makeRemote('app');
    const { result } = await run(spec({ repositories: [{ url: remote.path }], prompt: 'echo z > z && git add z && git -c user.name=H -c user.email=h@x commit -qm "by harness"' }));
    const artifact = result.repositories![0]!;
    expect(artifact.commit).not.toBeNull();
    expect(git(workdir, 'log', '-1', '--format=%s')).toBe('by harness');
    expect(artifact.diffstat.files_changed).toBe(1);
  });

  it('caps the reported diff and says so', async () => {
    const remote = await makeRemote('app');
    const { result } = await run(spec({ repositories: [{ url: remote.path }], prompt: `yes 'ééééé € 𝄞' | head -n 20000 > big.txt; printf 'bad \\303\\303 bytes\\n' > z-bad.txt` }));
    const artifact = result.repositories![0]!;
    expect(artifact.diff_truncated).toBe(true);
    expect(artifact.diff_bytes).toBeGreaterThan(MAX_REPORTED_DIFF_BYTES);
    expect(Buffer.byteLength(artifact.diff)).toBeLessThanOrEqual(MAX_REPORTED_DIFF_BYTES);
    expect(artifact.diff).not.toContain('\uFFFD');
    expect(artifact.diffstat).toMatchObject({ files_changed: 2, insertions: 20001 });
    // The whole diff went to the worker (which keeps it in the data plane), byte for byte.
    expect(keptDiffs).toHaveLength(1);
    expect(keptDiffs[0]!.index).toBe(0);
    expect(keptDiffs[0]!.diff.length).toBe(artifact.diff_bytes);
    expect(keptDiffs[0]!.diff.toString('utf8').startsWith(artifact.diff.slice(0, 1000))).toBe(true);
    expect(capUtf8(Buffer.from('aé'), 2)).toBe('a');
    // Invalid UTF-8 is replaced, and the cap holds for the text as sent.
    expect(Buffer.byteLength(capUtf8(Buffer.from([0x61, 0xc3, 0xc3, 0xc3, 0xc3]), 4))).toBeLessThanOrEqual(4);
  });

  it('commits the work of a failed harness too, as the environment\'s identity when it has one', async () => {
    const remote = await makeRemote('app');
    const { result } = await run(spec({ repositories: [{ url: remote.path }], prompt: 'echo partial > p.txt; exit 4' }), { GIT_AUTHOR_NAME: 'Env Bot', GIT_AUTHOR_EMAIL: 'bot@example.invalid' });
    expect(git(workdir, 'log', '-1', '--format=%an <%ae>')).toBe('Env Bot <bot@example.invalid>');
    expect(result).toMatchObject({ outcome: 'failed', exit_code: 4 });
    expect(result.repositories![0]!.commit).not.toBeNull();
    expect(result.repositories![0]!.diff).toContain('+partial');
  });

  it('pushes the working branch when asked, without force', async () => {
    const remote = await makeRemote('app');
    const { result } = await run(spec({ repositories: [{ url: remote.path }], push: true, prompt: 'echo pushed > p.txt' }));
    const artifact = result.repositories![0]!;
    expect(artifact).toMatchObject({ pushed: true, push_error: null });
    expect(git(remote.path, 'rev-parse', BRANCH)).toBe(artifact.commit);
  });

  it('reports a push rejected as non-fast-forward, keeps the local commit, and the task still succeeds', async () => {
    const remote = await makeRemote('app');
    git(remote.path, 'update-ref', `refs/heads/${BRANCH}`, remote.feature);
    const { code, result } = await run(spec({ repositories: [{ url: remote.path }], push: true, prompt: 'echo mine > m.txt' }));
    expect(code).toBe(0);
    const artifact = result.repositories![0]!;
    expect(result.outcome).toBe('succeeded');
    expect(artifact.pushed).toBe(false);
    expect(artifact.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(artifact.push_error).toMatch(/rejected: the remote branch has commits this run does not have \(non-fast-forward\); the work is in the local commit/);
    expect(git(remote.path, 'rev-parse', BRANCH)).toBe(remote.feature);
  });

  it('ignores remote redirects, hooks and helpers the task wrote into its git config when pushing', async () => {
    const remote = await makeRemote('app');
    const decoy = await makeRemote('decoy');
    const marker = path.join(dir, 'hook-ran');
    const prompt = [
      `git config url.${decoy.path}.insteadOf ${remote.path}`,
      `git config remote.origin.url ${decoy.path}`,
      `printf '#!/bin/sh\\ntouch ${marker}\\n' > .git/hooks/pre-push && chmod +x .git/hooks/pre-push`,
      `cp .git/hooks/pre-push .git/hooks/pre-commit`,
      `git config --global url.${decoy.path}.insteadOf ${remote.path}`,
      'echo change > c.txt',
    ].join(' && ');
    const { result } = await run(spec({ repositories: [{ url: remote.path }], push: true, prompt }));
    expect(result.repositories![0]).toMatchObject({ pushed: true });
    expect(git(remote.path, 'rev-parse', BRANCH)).toBe(result.repositories![0]!.commit);
    expect(() => git(decoy.path, 'rev-parse', '--verify', '--quiet', BRANCH)).toThrow();
    expect(existsSync(marker)).toBe(false);
  });

  it('commits the work of a cancelled harness but does not push it', async () => {
    const remote = await makeRemote('app');
    setTimeout(() => gateway?.cancel('user cancelled'), 1500);
    const { result } = await run(spec({ repositories: [{ url: remote.path }], push: true, prompt: 'echo started > s.txt; sleep 30' }));
    expect(result.outcome).toBe('cancelled');
    expect(result.repositories![0]).toMatchObject({ pushed: false, push_error: null });
    expect(result.repositories![0]!.diff).toContain('+started');
    expect(() => git(remote.path, 'rev-parse', '--verify', '--quiet', BRANCH)).toThrow();
  });

  it('does not collect results after a cancel before the harness ran', async () => {
    const remote = await makeRemote('app');
    setTimeout(() => gateway?.cancel('user cancelled'), 300);
    const { result } = await run(spec({ repositories: [{ url: remote.path }], setup_commands: ['sleep 20'] }));
    expect(result.outcome).toBe('cancelled');
    expect(result.repositories).toBeUndefined();
    expect(result.failure_reason).toBeUndefined();
  });
});

describe('credentials', () => {
  it('clones and pushes over https with credentials from the gateway, which never reach the repository or the transcript', async () => {
    const root = path.join(dir, 'served');
    await makeRemote('app', path.join(root, 'org'));
    const password = 'ghs_s3cretTokenValue0123456789abcdefABCD';
    httpServer = await startGitHttpServer(root, dir, 'x-access-token', password);
    const url = `${httpServer.url}/org/app.git`;
    rules = [{ urlPrefix: `${httpServer.url}/org/`, username: 'x-access-token', password, passwordEnv: 'GH_TOKEN' }];
    const prompt = 'echo change > c.txt; env | grep -c AIRLOCK_GIT_CREDENTIAL || true; git config --list --show-origin | grep -i credential || true';
    const { result } = await run(spec({ repositories: [{ url }], push: true, prompt }), { GIT_SSL_CAINFO: httpServer.caFile });
    expect(result.outcome, result.summary ?? '').toBe('succeeded');
    expect(result.repositories![0]).toMatchObject({ pushed: true, push_error: null });
    expect(git(path.join(root, 'org', 'app.git'), 'rev-parse', BRANCH)).toBe(result.repositories![0]!.commit);
    // The helper asked the gateway (clone and push), and git used its answer.
    expect(credentialQueries.length).toBeGreaterThanOrEqual(2);
    expect(credentialQueries[0]).toEqual({ protocol: 'https', host: new URL(httpServer.url).host, path: 'org/app.git' });
    expect(httpServer.seen).toContain(`x-access-token:${password}`);
    // Nowhere to be found afterwards: not in the transcript, the repository, its config, or the harness's view.
    expect(transcript()).not.toContain(password);
    expect(output()).toMatch(/^0\n/);
    expect(output()).not.toContain('airlock');
    expect(await readFile(path.join(workdir, '.git', 'config'), 'utf8')).not.toMatch(/credential|x-access-token|s3cret/);
    const grep = spawnSync('grep', ['-rl', password, workdir, path.join(dir, 'home'), path.join(dir, 'tmp')], { encoding: 'utf8' });
    expect(grep.status, grep.stdout).toBe(1); // 1: no match
  });

  it('fails the clone with words when the worker has no credentials for the repository', async () => {
    const root = path.join(dir, 'served');
    await makeRemote('app', path.join(root, 'org'));
    httpServer = await startGitHttpServer(root, dir, 'x-access-token', 'the-right-token-123456');
    // Credentials exist, but for another prefix: the gateway answers 404, git gets nothing.
    rules = [{ urlPrefix: `${httpServer.url}/other/`, username: 'u', password: 'the-right-token-123456', passwordEnv: 'T' }];
    const { result } = await run(spec({ repositories: [{ url: `${httpServer.url}/org/app.git` }] }), { GIT_SSL_CAINFO: httpServer.caFile });
    expect(result).toMatchObject({ outcome: 'failed', failure_reason: 'repo_clone' });
    expect(result.summary).toMatch(/authentication failed \(this worker has no git_credentials for https:\/\/127\.0\.0\.1:\d+\/org\/app\.git\)/);
    expect(httpServer.seen).toEqual([]);
  });

  it('clones and pushes over ssh through GIT_SSH (git-upload-pack/git-receive-pack run locally, as in git\'s test suite)', async () => {
    const remote = await makeRemote('app');
    const fakeSsh = path.join(dir, 'fake-ssh');
    const log = path.join(dir, 'ssh.log');
    // ssh [options] host command: drop everything up to the host, run the command locally.
    await writeFile(fakeSsh, `#!/bin/sh\nwhile [ $# -gt 2 ]; do shift; done\necho "host=$1 cmd=$2" >> ${log}\nexec sh -c "$2"\n`);
    await chmod(fakeSsh, 0o755);
    const url = `ssh://git@example.invalid${remote.path}`;
    const { result } = await run(spec({ repositories: [{ url }], push: true, prompt: 'echo over-ssh > s.txt' }), { GIT_SSH: fakeSsh });
    expect(result.outcome, result.summary ?? '').toBe('succeeded');
    expect(result.repositories![0]).toMatchObject({ pushed: true });
    expect(git(remote.path, 'rev-parse', BRANCH)).toBe(result.repositories![0]!.commit);
    const calls = await readFile(log, 'utf8');
    expect(calls).toMatch(/host=git@example\.invalid cmd=git-upload-pack '.*app\.git'/);
    expect(calls).toMatch(/cmd=git-receive-pack/);
    expect(credentialQueries).toEqual([]);
  });
});
