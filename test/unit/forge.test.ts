// Pull/merge requests, through the real forge client against wire-level fakes of the GitHub and
// GitLab REST APIs; the worker's git_credentials answer; the `git_credentials:`/`forges:`
// config; and the artifacts the runner reports.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentResult } from '../../src/protocol/gateway.js';
import type { ExecutionSpec, RepositoryArtifacts } from '../../src/protocol/task.js';
import { resolveWorkerConfig } from '../../src/worker/config.js';
import { MAX_TOTAL_DIFF_BYTES, artifactsFrom, forgeFor, openPullRequests, repositoryLocation, resolveForges, type ForgeRule } from '../../src/worker/forge/index.js';
import { answerGitCredential, type GitCredentialRule } from '../../src/worker/git-credentials.js';
import { startGitHubFake, startGitLabFake, type ForgeFake } from '../support/forge-fakes.js';

const GH_TOKEN = 'ghp_fakeGithubToken0123456789abcdefABCD';
const GL_TOKEN = 'glpat-fakeGitlabToken012345';
let fakes: ForgeFake[] = [];

afterEach(async () => {
  await Promise.all(fakes.map((f) => f.close()));
  fakes = [];
});

function spec(fields: Partial<ExecutionSpec> = {}): ExecutionSpec {
  return {
    execution_id: 'exe_aaaaaaaaaaaaaaaaaaaa',
    task_id: 'tsk_abcdefghijklmnopqrst',
    epoch: 1,
    prompt: 'Make the tests pass\nand more',
    harness: 'shell',
    timeout_seconds: null,
    title: null,
    branch: 'airlock/abcdefgh',
    push: true,
    pull_request: { draft: false },
    ...fields,
  };
}

function repo(url: string, fields: Partial<RepositoryArtifacts> = {}): RepositoryArtifacts {
  return {
    url,
    path: '.',
    branch: 'airlock/abcdefgh',
    base_commit: 'a'.repeat(40),
    commit: 'b'.repeat(40),
    diffstat: { files_changed: 2, insertions: 5, deletions: 1 },
    diff: 'diff --git a/x b/x\n',
    diff_truncated: false,
    diff_bytes: 19,
    pushed: true,
    push_error: null,
    pull_request_url: null,
    pull_request_error: null,
    ...fields,
  };
}

function result(repositories: RepositoryArtifacts[]): AgentResult {
  return { outcome: 'succeeded', exit_code: 0, summary: 'Fixed the flaky test.', stop_reason: 'completed', repositories };
}

function rules(forges: Parameters<typeof resolveForges>[0], env: NodeJS.ProcessEnv = { GH_TOKEN, GL_TOKEN }): ForgeRule[] {
  return resolveForges(forges, env);
}

describe('pull requests on GitHub', () => {
  it('opens one with title, head, base, body and draft, authenticated with the token', async () => {
    const github = await startGitHubFake({ token: GH_TOKEN, repositories: { 'org/app': { default_branch: 'main' } } });
    fakes.push(github);
    const forges = rules([{ type: 'github', url_prefix: 'https://github.com/org/', api_url: github.apiUrl, token_env: 'GH_TOKEN' }]);
    const [out] = await openPullRequests(spec({ title: 'Fix flaky test', pull_request: { draft: true, base: 'develop' } }), result([repo('https://github.com/org/app.git')]), forges);
    expect(out).toMatchObject({ pull_request_url: 'https://github.example/org/app/pull/1', pull_request_error: null });
    const request = github.requests.at(-1)!;
    expect(request).toMatchObject({ method: 'POST', path: '/repos/org/app/pulls' });
    expect(request.headers['x-github-api-version']).toBe('2022-11-28');
    expect(request.body).toEqual({
      title: 'Fix flaky test',
      head: 'airlock/abcdefgh',
      base: 'develop',
      draft: true,
      body: 'Fixed the flaky test.\n\n2 file(s) changed, 5 insertion(s), 1 deletion(s).\n\nOpened by Airlock for task tsk_abcdefghijklmnopqrst.',
    });
  });

  it('targets the repository ref, or else asks the forge for the default branch', async () => {
    const github = await startGitHubFake({ token: GH_TOKEN, repositories: { 'org/app': { default_branch: 'trunk' }, 'org/lib': { default_branch: 'main' } } });
    fakes.push(github);
    const forges = rules([{ type: 'github', url_prefix: 'https://github.com/org/', api_url: github.apiUrl, token_env: 'GH_TOKEN' }]);
    const execution = spec({ repositories: [{ url: 'git@github.com:org/app.git' }, { url: 'https://github.com/org/lib', ref: 'release-2' }] });
    const out = await openPullRequests(execution, result([repo('git@github.com:org/app.git'), repo('https://github.com/org/lib', { path: 'lib' })]), forges);
    expect(out[0]!.pull_request_url).toMatch(/^https:\/\/github\.example\/org\/app\/pull\/\d$/);
    expect(out[1]!.pull_request_url).toMatch(/^https:\/\/github\.example\/org\/lib\/pull\/\d$/);
    const posts = github.requests.filter((r) => r.method === 'POST');
    expect(posts.map((r) => (r.body as { base: string }).base).sort()).toEqual(['release-2', 'trunk']);
    expect(github.requests.some((r) => r.method === 'GET' && r.path === '/repos/org/app')).toBe(true);
    expect(posts.map((r) => (r.body as { title: string }).title)).toEqual(['Make the tests pass', 'Make the tests pass']);
  });

  it('records the forge\'s refusal in pull_request_error, with what to do and without the token', async () => {
    const github = await startGitHubFake({ token: 'another-token-entirely', repositories: { 'org/app': { default_branch: 'main' } } });
    fakes.push(github);
    const forges = rules([{ type: 'github', url_prefix: 'https://github.com/org/', api_url: github.apiUrl, token_env: 'GH_TOKEN' }]);
    const [out] = await openPullRequests(spec({ pull_request: { draft: false, base: 'main' } }), result([repo('https://github.com/org/app')]), forges);
    expect(out!.pull_request_url).toBeNull();
    expect(out!.pull_request_error).toMatch(/could not open a pull request: github answered POST \/repos\/org\/app\/pulls with 401: Bad credentials — the token in GH_TOKEN is missing the permission/);
    expect(out!.pull_request_error).not.toContain(GH_TOKEN);
  });

  it('says so when a pull request for the branch already exists', async () => {
    const github = await startGitHubFake({ token: GH_TOKEN, repositories: { 'org/app': { default_branch: 'main' } } });
    fakes.push(github);
    const forges = rules([{ type: 'github', url_prefix: 'https://github.com/org/', api_url: github.apiUrl, token_env: 'GH_TOKEN' }]);
    await openPullRequests(spec(), result([repo('https://github.com/org/app')]), forges);
    const [again] = await openPullRequests(spec(), result([repo('https://github.com/org/app')]), forges);
    expect(again!.pull_request_error).toMatch(/422: Validation Failed; A pull request already exists for org:airlock\/abcdefgh/);
  });
});

describe('merge requests on GitLab', () => {
  it('opens one for a nested project, the id encoded as one path segment, Draft: in the title', async () => {
    const gitlab = await startGitLabFake({ token: GL_TOKEN, projects: { 'group/sub/app': { default_branch: 'main' } } });
    fakes.push(gitlab);
    const forges = rules([{ type: 'gitlab', url_prefix: 'https://gitlab.example.com/group/', api_url: gitlab.apiUrl, token_env: 'GL_TOKEN' }]);
    const [out] = await openPullRequests(spec({ pull_request: { draft: true, title: 'Bump deps' } }), result([repo('ssh://git@gitlab.example.com:2222/group/sub/app.git')]), forges);
    expect(out).toMatchObject({ pull_request_url: 'https://gitlab.example/group/sub/app/-/merge_requests/1', pull_request_error: null });
    const post = gitlab.requests.find((r) => r.method === 'POST')!;
    expect(post.path).toBe('/api/v4/projects/group%2Fsub%2Fapp/merge_requests');
    expect(post.headers['private-token']).toBe(GL_TOKEN);
    expect(post.headers.authorization).toBeUndefined();
    expect(post.body).toMatchObject({ source_branch: 'airlock/abcdefgh', target_branch: 'main', title: 'Draft: Bump deps' });
    expect(gitlab.requests.some((r) => r.method === 'GET' && r.path === '/api/v4/projects/group%2Fsub%2Fapp')).toBe(true);
  });

  it('reports a conflicting merge request and an unknown project in words', async () => {
    const gitlab = await startGitLabFake({ token: GL_TOKEN, projects: { 'group/app': { default_branch: 'main' } } });
    fakes.push(gitlab);
    const forges = rules([{ type: 'gitlab', url_prefix: 'https://gitlab.example.com/', api_url: gitlab.apiUrl, token_env: 'GL_TOKEN' }]);
    await openPullRequests(spec(), result([repo('https://gitlab.example.com/group/app.git')]), forges);
    const [again] = await openPullRequests(spec(), result([repo('https://gitlab.example.com/group/app.git')]), forges);
    expect(again!.pull_request_error).toMatch(/could not open a merge request: gitlab answered POST .* with 409: Another open merge request already exists/);
    const [missing] = await openPullRequests(spec(), result([repo('https://gitlab.example.com/group/nope.git')]), forges);
    expect(missing!.pull_request_error).toMatch(/404: 404 Project Not Found — check that the repository exists on this forge/);
  });
});

describe('when no pull request is opened', () => {
  it('explains an unpushed branch and a repository no forge covers; proposes nothing for no change', async () => {
    const forges = rules([{ type: 'github', url_prefix: 'https://github.com/org/', api_url: 'http://127.0.0.1:9', token_env: 'GH_TOKEN' }]);
    const out = await openPullRequests(
      spec(),
      result([
        repo('https://github.com/org/a', { pushed: false, push_error: 'push of airlock/abcdefgh was rejected' }),
        repo('https://github.com/other/b'),
        repo('https://github.com/org/c', { pushed: false, commit: null }),
        repo('https://github.com/org/d'),
      ]),
      forges,
    );
    expect(out[0]!.pull_request_error).toBe('no pull request: the branch airlock/abcdefgh was not pushed (push of airlock/abcdefgh was rejected)');
    expect(out[1]!.pull_request_error).toMatch(/no forge configured for https:\/\/github\.com\/other\/b — add it to the worker's forges/);
    expect(out[2]!.pull_request_error).toBeNull();
    expect(out[3]!.pull_request_error).toMatch(/could not reach http:\/\/127\.0\.0\.1:9/);
    const untouched = await openPullRequests(spec({ pull_request: null }), result([repo('https://github.com/org/a')]), forges);
    expect(untouched[0]!.pull_request_error).toBeNull();
  });

  it('matches forges by host and path whatever the URL form, longest prefix first', () => {
    expect(repositoryLocation('git@github.com:Org/App.git')).toEqual({ host: 'github.com', path: 'Org/App' });
    expect(repositoryLocation('ssh://git@GitHub.com:22/org/app/')).toEqual({ host: 'github.com', path: 'org/app' });
    expect(repositoryLocation('/srv/repos/app')).toBeUndefined();
    const forges = rules([
      { type: 'github', url_prefix: 'https://github.com/', token_env: 'GH_TOKEN' },
      { type: 'gitlab', url_prefix: 'https://github.com/special/', token_env: 'GL_TOKEN' },
    ]);
    expect(forges[0]!.apiUrl).toBe('https://api.github.com');
    expect(forgeFor(forges, 'git@github.com:special/x.git')?.rule.type).toBe('gitlab');
    expect(forgeFor(forges, 'https://github.com/specialist/x')?.rule.type).toBe('github');
    expect(forgeFor(forges, 'https://gitlab.com/x/y')).toBeUndefined();
    expect(rules([{ type: 'gitlab', url_prefix: 'https://git.corp.example/', token_env: 'GL_TOKEN' }])[0]!.apiUrl).toBe('https://git.corp.example/api/v4');
  });
});

describe('artifacts', () => {
  it('mirror the first repository at the top level, with summary and stop reason from the result', () => {
    const first = repo('https://h/a', { pull_request_url: 'https://h/a/pull/1' });
    const artifacts = artifactsFrom(result([first, repo('https://h/b', { path: 'b' })]), [first, repo('https://h/b', { path: 'b' })]);
    expect(artifacts).toMatchObject({
      branch: 'airlock/abcdefgh',
      commit: 'b'.repeat(40),
      diff: first.diff,
      diffstat: first.diffstat,
      summary: 'Fixed the flaky test.',
      stop_reason: 'completed',
      pushed: true,
      pull_request_url: 'https://h/a/pull/1',
    });
    expect(artifacts.repositories).toHaveLength(2);
    expect(artifactsFrom({ outcome: 'failed', exit_code: 1, summary: 'x' }, [])).toMatchObject({ branch: null, commit: null, diff: null, diffstat: null, repositories: [] });
  });

  it('keep all diffs together under the total cap', () => {
    const big = 'd'.repeat(200 * 1024);
    const many = Array.from({ length: 5 }, (_, i) => repo(`https://h/${i}`, { diff: big }));
    const artifacts = artifactsFrom(result(many), many);
    const total = artifacts.repositories.reduce((sum, r) => sum + r.diff.length, 0);
    expect(total).toBeLessThanOrEqual(MAX_TOTAL_DIFF_BYTES);
    expect(artifacts.repositories.map((r) => r.diff_truncated)).toEqual([false, false, true, true, true]);
  });
});

describe('git credentials at the task gateway', () => {
  const credentialRules: GitCredentialRule[] = [
    { urlPrefix: 'https://github.com/org/', username: 'x-access-token', password: 'org-token', passwordEnv: 'ORG' },
    { urlPrefix: 'https://github.com/org/special/', username: 'x-access-token', password: 'special-token', passwordEnv: 'SPECIAL' },
  ];
  const repositories = [{ url: 'https://github.com/org/app.git' }, { url: 'https://GitHub.com/org/special/lib/' }, { url: 'https://github.com/elsewhere/x' }];

  it('answers only for this task\'s https repositories under a configured prefix, longest prefix first', () => {
    const ask = (host: string, path?: string, protocol = 'https') => answerGitCredential(credentialRules, repositories, { protocol, host, ...(path === undefined ? {} : { path }) });
    expect(ask('github.com', 'org/app.git')).toEqual({ username: 'x-access-token', password: 'org-token' });
    expect(ask('github.com', 'org/app')).toEqual({ username: 'x-access-token', password: 'org-token' });
    expect(ask('github.com', 'org/special/lib.git')).toEqual({ username: 'x-access-token', password: 'special-token' });
    // Not this task's repository, no matching prefix, another host, no path, another protocol:
    expect(ask('github.com', 'org/other.git')).toBeNull();
    expect(ask('github.com', 'elsewhere/x')).toBeNull();
    expect(ask('evil.example', 'org/app.git')).toBeNull();
    expect(ask('github.com')).toBeNull();
    expect(ask('github.com', 'org/app.git', 'http')).toBeNull();
    expect(ask('github.com', 'org/app.git/../other')).toBeNull();
    expect(answerGitCredential(credentialRules, [{ url: 'https://github.com/organisation/app' }], { protocol: 'https', host: 'github.com', path: 'organisation/app' })).toBeNull();
  });
});

describe('worker configuration: git_credentials and forges', () => {
  const base = { server: 'http://127.0.0.1:7070', apiKey: 'alk_x', workerId: 'w1' };
  function file(text: string): string {
    const dir = mkdtempSync(join(tmpdir(), 'al-forgecfg-'));
    writeFileSync(join(dir, 'worker.yaml'), text);
    return join(dir, 'worker.yaml');
  }

  it('reads the token variables named in the file', () => {
    const config = resolveWorkerConfig(
      {
        ...base,
        config: file(
          'git_credentials:\n  - {url_prefix: "https://github.com/org/", username: x-access-token, password_env: GH_TOKEN}\nforges:\n  - {type: github, url_prefix: "https://github.com/org/", token_env: GH_TOKEN}\n  - {type: gitlab, url_prefix: "https://gitlab.example/", api_url: "https://gitlab.example/api/v4/", token_env: GL_TOKEN}\n',
        ),
      },
      { GH_TOKEN, GL_TOKEN },
    );
    expect(config.gitCredentials).toEqual([{ urlPrefix: 'https://github.com/org/', username: 'x-access-token', password: GH_TOKEN, passwordEnv: 'GH_TOKEN' }]);
    expect(config.forges.map((f) => [f.type, f.apiUrl, f.token])).toEqual([
      ['github', 'https://api.github.com', GH_TOKEN],
      ['gitlab', 'https://gitlab.example/api/v4', GL_TOKEN],
    ]);
    expect(resolveWorkerConfig(base, {})).toMatchObject({ gitCredentials: [], forges: [] });
  });

  it('refuses bad entries naming the field and the fix', () => {
    const bad = (yaml: string, env: NodeJS.ProcessEnv = { GH_TOKEN }) => () => resolveWorkerConfig({ ...base, config: file(yaml) }, env);
    expect(bad('git_credentials:\n  - {url_prefix: "https://github.com/", username: u, password_env: MISSING}\n')).toThrow(/git_credentials\[0\].*has no MISSING — export it/);
    expect(bad('git_credentials:\n  - {url_prefix: "https://github.com/", username: u, password: hunter2}\n')).toThrow(/git_credentials\[0\]: unknown field "password"/);
    expect(bad('git_credentials:\n  - {url_prefix: "https://github.com/", username: u, password_env: "ghp_abc=1"}\n')).toThrow(/NAME of an environment variable/);
    expect(bad('git_credentials:\n  - {url_prefix: "https://u:p@github.com/", username: u, password_env: GH_TOKEN}\n')).toThrow(/https URL prefix without credentials/);
    expect(bad('git_credentials:\n  - {url_prefix: "http://github.com/", username: u, password_env: GH_TOKEN}\n')).toThrow(/https URL prefix/);
    expect(bad('forges:\n  - {type: bitbucket, url_prefix: "https://b.org/", token_env: GH_TOKEN}\n')).toThrow(/forges\[0\]\.type/);
    expect(bad('forges:\n  - {type: github, url_prefix: "https://github.com/", token_env: NOPE}\n')).toThrow(/forges\[0\].*has no NOPE/);
    expect(bad('forges:\n  - {type: github, url_prefix: "https://github.com/", token_env: GH_TOKEN, token: x}\n')).toThrow(/token/);
    expect(bad('forges:\n  - {type: github, url_prefix: "https://github.com/", api_url: "ftp://x", token_env: GH_TOKEN}\n')).toThrow(/api_url/);
  });
});
