/**
 * `airlock task create` recipe/budget/push flags, `task show` results and `task diff`, in
 * process against a real HTTP API on real SQLite (the commander program is the real one; only
 * stdout/stderr are captured). Bad flags are refused naming the flag, before any request; the
 * printed diff applies with a real `git apply`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/lib/clock.js';
import type { Artifacts, TaskView } from '../../src/protocol/task.js';
import { sampleArtifacts } from '../support/artifacts.js';
import { createTeam, startExecution, startTestApi, type TestApi, type TestTeam } from '../support/http-context.js';
import { runInProcess, type InProcessCliResult } from '../support/in-process-cli.js';

let api: TestApi;
let team: TestTeam;
const dirs: string[] = [];

beforeAll(async () => {
  api = await startTestApi();
  team = await createTeam(api);
});
afterAll(async () => {
  await api?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function run(...args: string[]): Promise<InProcessCliResult> {
  return runInProcess(args, { server: api.url, apiKey: team.keys.member });
}

async function taskCount(): Promise<number> {
  return (await api.store.listTasks(team.team.id, { limit: 200 })).tasks.length;
}

/** Finish the task's execution the way a worker would, reporting these results. */
async function finish(id: string, artifacts: Artifacts | null, usage = { input_tokens: 12_345, output_tokens: 678, requests: 9 }): Promise<void> {
  const execution = await startExecution(api, team.team.id, id);
  const result = await api.store.finishExecution({ executionId: execution.id, epoch: execution.epoch, workerId: execution.workerId, outcome: 'succeeded', exitCode: 0, failureReason: null, message: null, now: systemClock.now(), artifacts, usage });
  expect(result.result).toBe('ok');
}

describe('airlock task create: recipe, budget and push flags', () => {
  it('sends every flag as its API field, resolving --env by name', async () => {
    const env = await run('env', 'create', 'cli-task-env', '--image', 'alpine:3', '--repo', 'https://github.com/acme/app.git#main', '--setup', 'npm ci', '--json');
    expect(env.error).toBeUndefined();
    const envId = JSON.parse(env.stdout).id as string;
    const created = await run(
      'task', 'create', 'fix the tests',
      '--harness', 'command:my-agent',
      '--env', 'cli-task-env',
      '--setup', 'make deps', '--setup', 'make build',
      '--max-turns', '20', '--max-seconds', '30m', '--max-tokens', '500000',
      '--model', 'big-model',
      '--pull-request', '--draft', '--base', 'develop',
      '--json',
    );
    expect(created.error, created.stderr).toBeUndefined();
    const view = JSON.parse(created.stdout) as TaskView;
    expect(view).toMatchObject({
      harness: 'command:my-agent',
      environment_id: envId,
      repositories: [{ url: 'https://github.com/acme/app.git', ref: 'main' }],
      budget: { max_turns: 20, max_seconds: 1800, max_tokens: 500_000 },
      model: 'big-model',
      push: true,
    });
    const stored = await api.store.getTask(team.team.id, view.id);
    expect(stored?.recipe).toMatchObject({ image: 'alpine:3', setupCommands: ['make deps', 'make build'] });
    expect(stored?.pullRequest).toEqual({ draft: true, base: 'develop' });

    // By id too, with inline repositories and image overriding the environment's.
    const byId = await run('task', 'create', 'x', '--env', envId, '--repo', '/srv/one', '--repo', 'git@example.com:a/b.git#v1', '--image', 'debian:12', '--push', '--json');
    expect(byId.error, byId.stderr).toBeUndefined();
    const second = JSON.parse(byId.stdout) as TaskView;
    expect(second).toMatchObject({ environment_id: envId, repositories: [{ url: '/srv/one' }, { url: 'git@example.com:a/b.git', ref: 'v1' }], push: true });
    expect((await api.store.getTask(team.team.id, second.id))?.pullRequest).toBeNull();
  });

  it('sends --cpus and --memory as resources, each replacing only the environment’s field; show prints them', async () => {
    const env = await run('env', 'create', 'cli-task-sized', '--cpus', '4', '--memory', '8g', '--json');
    expect(env.error, env.stderr).toBeUndefined();
    const created = await run('task', 'create', 'build it', '--env', 'cli-task-sized', '--memory', '1.5g', '--json');
    expect(created.error, created.stderr).toBeUndefined();
    const view = JSON.parse(created.stdout) as TaskView;
    expect(view.resources).toEqual({ cpus: 4, memory: '1.5g' });
    const shown = await run('task', 'show', view.id);
    expect(shown.stdout).toMatch(/^cpus:\s+4$/m);
    expect(shown.stdout).toMatch(/^memory:\s+1\.5g$/m);

    const inline = JSON.parse((await run('task', 'create', 'x', '--cpus', '0.5', '--json')).stdout) as TaskView;
    expect(inline.resources).toEqual({ cpus: 0.5 });
    const plain = (await run('task', 'create', 'x')).stdout.trim();
    expect((await run('task', 'show', plain)).stdout).not.toMatch(/^(cpus|memory):/m);
  });

  it('refuses bad flags naming the flag, before any task is created', async () => {
    const before = await taskCount();
    const cases: Array<[string[], RegExp]> = [
      [['--harness', 'gpt'], /--harness .*builtin, shell, claude-code, codex/],
      [['--harness', 'command:../x'], /--harness/],
      [['--max-turns', '0'], /--max-turns must be a whole number from 1/],
      [['--max-turns', '2.5'], /--max-turns/],
      [['--max-tokens', 'lots'], /--max-tokens/],
      [['--max-seconds', 'soon'], /--max-seconds must be whole seconds/],
      [['--repo', 'file:///etc/passwd'], /--repo .*"file" transport/],
      [['--repo', '/srv/x#--upload-pack=evil'], /--repo ref/],
      [['--image', ''], /--image/],
      [['--image', 'Not An Image'], /--image: must be an OCI image reference/],
      [['--model', ''], /--model/],
      [['--draft'], /--draft only applies to a pull request — add --pull-request/],
      [['--base', 'main'], /--base only applies to a pull request/],
      [['--pull-request', '--base', '-x'], /--base/],
      [['--env', 'Bad Name'], /--env/],
      [['--setup', 'x'.repeat(9000)], /--setup: .*8 KiB/],
      [['--cpus', '0'], /--cpus must be at least 0\.01/],
      [['--cpus', '-0.5'], /--cpus must be a number of CPUs/],
      [['--cpus', 'NaN'], /--cpus must be a number of CPUs such as 2 or 0\.5, got "NaN"/],
      [['--cpus', ''], /--cpus must be a number of CPUs/],
      [['--cpus', '300'], /--cpus must be at most 256/],
      [['--memory', '5x'], /--memory must be a size such as "512m"/],
      [['--memory', 'NaN'], /--memory must be a size/],
      [['--memory', '4096'], /--memory must be at least 6m .*write 4096m for megabytes/],
      [['--memory', '9999g'], /--memory must be at most 1t/],
    ];
    for (const [flags, mentions] of cases) {
      const result = await run('task', 'create', 'x', ...flags);
      expect(result.error, flags.join(' ')).toBeDefined();
      expect(`${result.stderr}${String(result.error)}`, flags.join(' ')).toMatch(mentions);
    }
    const unknown = await run('task', 'create', 'x', '--env', 'no-such-env');
    expect(String(unknown.error)).toMatch(/--env: the team has no environment named "no-such-env" — it has: cli-task-env/);
    const missingId = await run('task', 'create', 'x', '--env', 'env_aaaaaaaaaaaaaaaaaaaa');
    expect(String(missingId.error)).toMatch(/environment_id: environment "env_a+" was not found/);
    expect(await taskCount()).toBe(before);
  });
});

describe('airlock task show and diff', () => {
  it('shows the artifacts, stop reason and usage; --json prints the view', async () => {
    const id = (await run('task', 'create', 'x', '--max-turns', '20', '--push')).stdout.trim();
    const artifacts = sampleArtifacts({ stop_reason: 'max_turns', pushed: true, pull_request_url: 'https://git.example.com/acme/api/pull/7', summary: 'Fixed it.\nAlso tidied up.' });
    artifacts.repositories[0] = { ...artifacts.repositories[0]!, pushed: true, pull_request_url: 'https://git.example.com/acme/api/pull/7' };
    await finish(id, artifacts);
    const shown = await run('task', 'show', id);
    expect(shown.error).toBeUndefined();
    expect(shown.stdout).toMatch(/^budget:\s+max_turns 20$/m);
    expect(shown.stdout).toMatch(/^stop reason:\s+max_turns$/m);
    expect(shown.stdout).toMatch(/^branch:\s+airlock\/abcdefgh$/m);
    expect(shown.stdout).toMatch(new RegExp(`^commit:\\s+${'b'.repeat(40)}$`, 'm'));
    expect(shown.stdout).toMatch(/^changes:\s+1 file, \+1 -1$/m);
    expect(shown.stdout).toMatch(/^pushed:\s+yes$/m);
    expect(shown.stdout).toMatch(/^pull request:\s+https:\/\/git\.example\.com\/acme\/api\/pull\/7$/m);
    expect(shown.stdout).toMatch(/^usage:\s+12\.3k in, 678 out, 9 model requests$/m);
    expect(shown.stdout).toMatch(/^summary:\n {2}Fixed it\.\n {2}Also tidied up\.$/m);
    const json = JSON.parse((await run('task', 'show', id, '--json')).stdout) as TaskView;
    expect(json.artifacts).toEqual(artifacts);
    expect(json.usage).toEqual({ input_tokens: 12_345, output_tokens: 678, requests: 9 });
  });

  it('prints the diff plainly, and it applies with git apply', async () => {
    const repo = mkdtempSync(join(tmpdir(), 'airlock-diff-'));
    dirs.push(repo);
    const git = (...args: string[]) => execFileSync('git', ['-C', repo, ...args], { encoding: 'utf8', env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' } });
    git('init', '-q');
    writeFileSync(join(repo, 'a.txt'), 'old\n');
    git('add', 'a.txt');
    git('-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-qm', 'base');
    // The diff the worker would report for changing a.txt (made by git itself), then undone.
    writeFileSync(join(repo, 'a.txt'), 'new\n');
    const reported = git('diff', '--no-color');
    git('checkout', '--', 'a.txt');
    expect(reported).toMatch(/^diff --git a\/a.txt b\/a.txt$/m);
    const id = (await run('task', 'create', 'x')).stdout.trim();
    await finish(id, sampleArtifacts({}, reported));
    const printed = await run('task', 'diff', id);
    expect(printed.error).toBeUndefined();
    expect(printed.stdout).toBe(reported);
    expect(printed.stderr).toBe('');
    const patch = join(repo, 'task.patch');
    writeFileSync(patch, printed.stdout);
    git('apply', patch);
    expect(execFileSync('cat', [join(repo, 'a.txt')], { encoding: 'utf8' })).toBe('new\n');
  });

  it('warns on stderr when the diff was truncated, and fails with the server’s reason when there is none', async () => {
    const cut = sampleArtifacts();
    cut.diff_truncated = true;
    cut.repositories[0] = { ...cut.repositories[0]!, diff_truncated: true, diff_bytes: 400_000 };
    const id = (await run('task', 'create', 'x')).stdout.trim();
    await finish(id, cut);
    const printed = await run('task', 'diff', id);
    expect(printed.stdout).toMatch(/^# airlock: diff truncated at 262144 bytes of 400000/m);
    expect(printed.stderr).toMatch(/the diff was cut at the reporting limit/);

    const queued = (await run('task', 'create', 'x')).stdout.trim();
    const none = await run('task', 'diff', queued);
    expect(String(none.error)).toMatch(/has no diff: it is still queued/);
    expect((await run('task', 'diff', 'nope')).error).toBeDefined();
  });
});
