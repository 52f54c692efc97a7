/**
 * `airlock env …` in process against a real HTTP API on real SQLite: the commander program is
 * the real one; only stdout/stderr are captured. Flags are refused before any request.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTeam, startTestApi, type TestApi, type TestTeam } from '../support/http-context.js';
import { runInProcess, type InProcessCliResult } from '../support/in-process-cli.js';

let api: TestApi;
let team: TestTeam;

beforeAll(async () => {
  api = await startTestApi();
  team = await createTeam(api);
});
afterAll(async () => {
  await api?.close();
});

function run(...args: string[]): Promise<InProcessCliResult> {
  return runInProcess(args, { server: api.url, apiKey: team.keys.member });
}

describe('airlock env', () => {
  it('creates, lists, shows, updates and deletes', async () => {
    const created = await run('env', 'create', 'cli-env', '--image', 'alpine:3', '--repo', 'https://github.com/acme/app.git#main', '--repo', '/srv/mirror', '--setup', 'npm ci', '--secret', 'GITHUB_TOKEN', '--env', 'CI', '--json');
    expect(created.error).toBeUndefined();
    const view = JSON.parse(created.stdout);
    expect(view).toMatchObject({ name: 'cli-env', image: 'alpine:3', repositories: [{ url: 'https://github.com/acme/app.git', ref: 'main' }, { url: '/srv/mirror' }], setup_commands: ['npm ci'], secret_names: ['GITHUB_TOKEN'], env_names: ['CI'] });

    const list = await run('env', 'list');
    expect(list.stdout).toMatch(new RegExp(`${view.id}\\s+cli-env\\s+alpine:3`));

    const shown = await run('env', 'show', view.id);
    expect(shown.stdout).toContain('https://github.com/acme/app.git @ main');

    const updated = await run('env', 'update', view.id, '--name', 'cli-env-2', '--json');
    expect(JSON.parse(updated.stdout)).toMatchObject({ id: view.id, name: 'cli-env-2', image: 'alpine:3' });

    const deleted = await run('env', 'delete', view.id);
    expect(deleted.stdout).toContain(`environment ${view.id} deleted`);
    expect((await api.store.getEnvironment(team.team.id, view.id))).toBeUndefined();
  });

  it('sets the task size with --cpus and --memory; update changes only the flag given; show prints them', async () => {
    const created = await run('env', 'create', 'cli-sized', '--cpus', '2', '--memory', '4g', '--json');
    expect(created.error, created.stderr).toBeUndefined();
    const view = JSON.parse(created.stdout);
    expect(view.resources).toEqual({ cpus: 2, memory: '4g' });

    const updated = await run('env', 'update', view.id, '--cpus', '0.5', '--json');
    expect(updated.error, updated.stderr).toBeUndefined();
    expect(JSON.parse(updated.stdout).resources).toEqual({ cpus: 0.5, memory: '4g' });
    const memoryOnly = await run('env', 'update', view.id, '--memory', '1.5g');
    expect(memoryOnly.error, memoryOnly.stderr).toBeUndefined();

    const shown = await run('env', 'show', view.id);
    expect(shown.stdout).toMatch(/^cpus:\s+0\.5$/m);
    expect(shown.stdout).toMatch(/^memory:\s+1\.5g$/m);
    const plain = JSON.parse((await run('env', 'create', 'cli-unsized', '--json')).stdout);
    expect(plain.resources).toBeNull();
    const plainShown = await run('env', 'show', plain.id);
    expect(plainShown.stdout).not.toMatch(/^(cpus|memory):/m);
    await run('env', 'delete', view.id);
    await run('env', 'delete', plain.id);
  });

  it('refuses bad size flags naming the flag and the fix, before any request', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--cpus', '0'], /--cpus must be at least 0\.01 .*leave cpus out/],
      [['--cpus', '-1'], /--cpus/],
      [['--cpus', 'NaN'], /--cpus must be a number of CPUs such as 2 or 0\.5, got "NaN"/],
      [['--cpus', '1e3'], /--cpus must be a number of CPUs/],
      [['--cpus', '0x10'], /--cpus must be a number of CPUs/],
      [['--cpus', '1000'], /--cpus must be at most 256/],
      [['--memory', '5x'], /--memory must be a size such as "512m", "2g" or "1\.5g"/],
      [['--memory', '1m'], /--memory must be at least 6m/],
      [['--memory', '512'], /--memory must be at least 6m .*write 512m for megabytes/],
      [['--memory', '2t'], /--memory must be at most 1t/],
    ];
    for (const [flags, mentions] of cases) {
      const result = await run('env', 'create', 'bad-size', ...flags);
      expect(result.error, flags.join(' ')).toBeDefined();
      expect(`${result.stderr}${String(result.error)}`, flags.join(' ')).toMatch(mentions);
    }
    expect((await api.store.listEnvironments(team.team.id)).map((e) => e.name)).not.toContain('bad-size');
  });

  it('refuses bad flags naming the flag, before any request', async () => {
    const repo = await run('env', 'create', 'x', '--repo', 'file:///etc');
    expect(repo.error).toBeDefined();
    expect(repo.stderr).toMatch(/--repo .*"file" transport/);
    const secret = await run('env', 'create', 'x', '--secret', 'TOKEN=abc');
    expect(secret.stderr).toMatch(/--secret .*NAME, not NAME=value/);
    const missing = await run('env', 'show', 'env_nope');
    expect(String(missing.error)).toMatch(/not an environment id/);
    expect(await api.store.listEnvironments(team.team.id)).toEqual([]);
  });
});
