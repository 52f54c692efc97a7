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
