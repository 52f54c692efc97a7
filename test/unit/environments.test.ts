/**
 * Environments over a real HTTP API on a real SQLite file: the whole contract (create, list,
 * show, PATCH, delete, audit, OpenAPI), team scoping, and hostile input — unknown fields, bad
 * names, dangerous repository transports, values pasted where names belong.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repositoryUrlProblem } from '../../src/protocol/environment.js';
import { expectError, http, type RawResponse } from '../support/http-client.js';
import { createTeam, startTestApi, type TestApi, type TestTeam } from '../support/http-context.js';

let api: TestApi;
let a: TestTeam;
let b: TestTeam;

beforeAll(async () => {
  api = await startTestApi();
  a = await createTeam(api);
  b = await createTeam(api);
});

afterAll(async () => {
  await api?.close();
});

let counter = 0;
const uniqueName = () => `env-${++counter}`;

async function create(team: TestTeam, body: Record<string, unknown>): Promise<RawResponse> {
  return http(api.url, '/api/v1/environments', { key: team.keys.member, body });
}

describe('environments: create, show, list', () => {
  it('creates with defaults and shows it back', async () => {
    const name = uniqueName();
    const res = await create(a, { name });
    expect(res.status, res.text).toBe(201);
    expect(res.json).toMatchObject({ name, image: null, repositories: [], setup_commands: [], setup_timeout_seconds: null, secret_names: [], env_names: [], resources: null });
    expect(res.json.id).toMatch(/^env_[a-z2-7]{20}$/);
    expect(res.headers.get('location')).toBe(`/api/v1/environments/${res.json.id}`);
    expect(res.json.created_at).toBe(res.json.updated_at);
    const shown = await http(api.url, `/api/v1/environments/${res.json.id}`, { key: a.keys.admin });
    expect(shown.status).toBe(200);
    expect(shown.json).toEqual(res.json);
  });

  it('stores every field', async () => {
    const body = {
      name: uniqueName(),
      image: 'ghcr.io/acme/builder:1.2',
      repositories: [
        { url: 'https://github.com/acme/app.git', ref: 'main' },
        { url: 'ssh://git@example.com:2222/acme/tools.git' },
        { url: 'git@github.com:acme/lib.git', ref: 'v1.0.0' },
        { url: '/srv/repos/mirror' },
      ],
      setup_commands: ['npm ci', 'npm run build'],
      setup_timeout_seconds: 600,
      secret_names: ['GITHUB_TOKEN', 'NPM_TOKEN'],
      env_names: ['CI', '_DEBUG'],
      resources: { cpus: 0.5, memory: '1.5g' },
    };
    const res = await create(a, body);
    expect(res.status, res.text).toBe(201);
    expect(res.json).toMatchObject(body);
    expect(res.json.repositories[1]).toEqual({ url: 'ssh://git@example.com:2222/acme/tools.git' });
  });

  it('lists the team\'s environments by name, and only them', async () => {
    await create(b, { name: 'zz-other-team' });
    const res = await http(api.url, '/api/v1/environments', { key: a.keys.member });
    expect(res.status).toBe(200);
    const names = res.json.environments.map((e: { name: string }) => e.name);
    expect(names).toEqual([...names].sort());
    expect(names).not.toContain('zz-other-team');
    expect(names.length).toBeGreaterThanOrEqual(2);
  });

  it('refuses a duplicate name in the team with 409 naming it; another team may use it', async () => {
    const name = uniqueName();
    expect((await create(a, { name })).status).toBe(201);
    expectError(await create(a, { name }), 409, 'conflict', new RegExp(`"${name}"`));
    expect((await create(b, { name })).status).toBe(201);
  });

  it('audits create, update and delete', async () => {
    const created = (await create(a, { name: uniqueName() })).json;
    await http(api.url, `/api/v1/environments/${created.id}`, { key: a.keys.member, method: 'PATCH', body: { image: 'alpine:3' } });
    await http(api.url, `/api/v1/environments/${created.id}`, { key: a.keys.member, method: 'DELETE' });
    const audit = (await api.store.listAudit(a.team.id, 100)).filter((e) => e.target === created.id);
    expect(audit.map((e) => e.action)).toEqual(['environment.delete', 'environment.update', 'environment.create']);
    expect(audit.every((e) => e.actor === `key:${a.keyIds.member}`)).toBe(true);
    expect(audit[1]!.detail).toMatchObject({ fields: ['image'] });
  });
});

describe('environments: PATCH and DELETE', () => {
  it('changes only the fields given; null clears optional ones; name may change', async () => {
    const created = (await create(a, { name: uniqueName(), image: 'alpine:3', setup_commands: ['make'], setup_timeout_seconds: 60 })).json;
    const newName = uniqueName();
    const res = await http(api.url, `/api/v1/environments/${created.id}`, { key: a.keys.member, method: 'PATCH', body: { name: newName, image: null, env_names: ['CI'] } });
    expect(res.status, res.text).toBe(200);
    expect(res.json).toMatchObject({ id: created.id, name: newName, image: null, setup_commands: ['make'], setup_timeout_seconds: 60, env_names: ['CI'], created_at: created.created_at });
    const cleared = await http(api.url, `/api/v1/environments/${created.id}`, { key: a.keys.member, method: 'PATCH', body: { setup_timeout_seconds: null } });
    expect(cleared.json.setup_timeout_seconds).toBeNull();
    expect(cleared.json.name).toBe(newName);
  });

  it('changes the size per field: a field given replaces it, null clears it, resources: null clears both', async () => {
    const created = (await create(a, { name: uniqueName(), resources: { cpus: 2, memory: '4g' } })).json;
    expect(created.resources).toEqual({ cpus: 2, memory: '4g' });
    const patch = async (body: unknown) => {
      const res = await http(api.url, `/api/v1/environments/${created.id}`, { key: a.keys.member, method: 'PATCH', body });
      expect(res.status, res.text).toBe(200);
      return res.json.resources;
    };
    expect(await patch({ resources: { cpus: 4 } })).toEqual({ cpus: 4, memory: '4g' });
    expect(await patch({ image: 'alpine:3' })).toEqual({ cpus: 4, memory: '4g' });
    expect(await patch({ resources: {} })).toEqual({ cpus: 4, memory: '4g' });
    expect(await patch({ resources: { memory: 2_147_483_648 } })).toEqual({ cpus: 4, memory: 2_147_483_648 });
    expect(await patch({ resources: { memory: null } })).toEqual({ cpus: 4 });
    expect(await patch({ resources: null })).toBeNull();
    expect(await patch({ resources: { memory: '512m' } })).toEqual({ memory: '512m' });
    expect((await http(api.url, `/api/v1/environments/${created.id}`, { key: a.keys.member })).json.resources).toEqual({ memory: '512m' });
    const audit = (await api.store.listAudit(a.team.id, 100)).find((e) => e.target === created.id && e.action === 'environment.update');
    expect(audit?.detail).toMatchObject({ fields: ['resources'] });
  });

  it('refuses renaming onto a taken name with 409 and changes nothing', async () => {
    const taken = uniqueName();
    await create(a, { name: taken });
    const other = (await create(a, { name: uniqueName() })).json;
    expectError(await http(api.url, `/api/v1/environments/${other.id}`, { key: a.keys.member, method: 'PATCH', body: { name: taken, image: 'alpine:3' } }), 409, 'conflict', new RegExp(`"${taken}"`));
    const shown = await http(api.url, `/api/v1/environments/${other.id}`, { key: a.keys.member });
    expect(shown.json).toEqual(other);
  });

  it('deletes with 204; afterwards it is 404', async () => {
    const created = (await create(a, { name: uniqueName() })).json;
    const res = await http(api.url, `/api/v1/environments/${created.id}`, { key: a.keys.admin, method: 'DELETE' });
    expect(res.status).toBe(204);
    expect(res.text).toBe('');
    expectError(await http(api.url, `/api/v1/environments/${created.id}`, { key: a.keys.admin }), 404, 'not_found');
    expectError(await http(api.url, `/api/v1/environments/${created.id}`, { key: a.keys.admin, method: 'DELETE' }), 404, 'not_found');
  });
});

describe('environments: scoping and authentication', () => {
  it("another team's id and a malformed id are 404 for show, update and delete", async () => {
    const theirs = (await create(b, { name: uniqueName() })).json;
    for (const id of [theirs.id, 'env_nope', 'tsk_aaaaaaaaaaaaaaaaaaaa', '..%2F..']) {
      expectError(await http(api.url, `/api/v1/environments/${id}`, { key: a.keys.member }), 404, 'not_found');
      expectError(await http(api.url, `/api/v1/environments/${id}`, { key: a.keys.member, method: 'PATCH', body: { image: 'alpine:3' } }), 404, 'not_found');
      expectError(await http(api.url, `/api/v1/environments/${id}`, { key: a.keys.member, method: 'DELETE' }), 404, 'not_found');
    }
    const still = await http(api.url, `/api/v1/environments/${theirs.id}`, { key: b.keys.member });
    expect(still.json).toEqual(theirs);
  });

  it('worker keys are 403 and missing keys 401', async () => {
    expectError(await http(api.url, '/api/v1/environments', { key: a.keys.worker }), 403, 'forbidden');
    expectError(await http(api.url, '/api/v1/environments', { key: a.keys.worker, body: { name: uniqueName() } }), 403, 'forbidden');
    expectError(await http(api.url, '/api/v1/environments'), 401, 'unauthenticated');
  });
});

describe('environments: hostile input', () => {
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['unknown field', { name: 'ok-name', imgae: 'x' }, /unknown field "imgae"/],
    ['uppercase name', { name: 'Prod' }, /name/],
    ['empty name', { name: '' }, /name/],
    ['name with slash', { name: 'a/b' }, /name/],
    ['name too long', { name: 'a'.repeat(64) }, /name/],
    ['missing name', {}, /name/],
    ['file:// repository', { name: 'x', repositories: [{ url: 'file:///etc' }] }, /repositories\[0\]\.url.*"file" transport/],
    ['ext:: repository', { name: 'x', repositories: [{ url: 'ext::sh -c touch% /tmp/pwned' }] }, /repositories\[0\]\.url/],
    ['ext:: without spaces', { name: 'x', repositories: [{ url: 'ext::sh' }] }, /repositories\[0\]\.url.*remote helper/],
    ['option-looking repository', { name: 'x', repositories: [{ url: '--upload-pack=touch /tmp/x' }] }, /repositories\[0\]\.url/],
    ['http repository', { name: 'x', repositories: [{ url: 'http://example.com/r.git' }] }, /repositories\[0\]\.url.*"http" transport/],
    ['credentials in url', { name: 'x', repositories: [{ url: 'https://user:tok@github.com/a/b' }] }, /repositories\[0\]\.url.*credentials/],
    ['relative path', { name: 'x', repositories: [{ url: 'repos/app' }] }, /repositories\[0\]\.url.*accepted forms/],
    ['path with ..', { name: 'x', repositories: [{ url: '/srv/../etc' }] }, /repositories\[0\]\.url/],
    ['option-looking ref', { name: 'x', repositories: [{ url: '/srv/r', ref: '--orphan' }] }, /repositories\[0\]\.ref/],
    ['unknown repository field', { name: 'x', repositories: [{ url: '/srv/r', branch: 'main' }] }, /unknown field "branch"/],
    ['too many repositories', { name: 'x', repositories: Array.from({ length: 21 }, () => ({ url: '/srv/r' })) }, /repositories/],
    ['value in secret_names', { name: 'x', secret_names: ['TOKEN=abc'] }, /secret_names\[0\].*NAME, not NAME=value/],
    ['bad env name', { name: 'x', env_names: ['1ABC'] }, /env_names\[0\]/],
    ['duplicate secret names', { name: 'x', secret_names: ['A', 'A'] }, /secret_names/],
    ['too many env names', { name: 'x', env_names: Array.from({ length: 101 }, (_, i) => `V${i}`) }, /env_names/],
    ['oversized setup command', { name: 'x', setup_commands: ['x'.repeat(8 * 1024 + 1)] }, /setup_commands\[0\]/],
    ['too many setup commands', { name: 'x', setup_commands: Array.from({ length: 51 }, () => 'true') }, /setup_commands/],
    ['timeout too long', { name: 'x', setup_timeout_seconds: 7201 }, /setup_timeout_seconds/],
    ['fractional timeout', { name: 'x', setup_timeout_seconds: 1.5 }, /setup_timeout_seconds/],
    ['image too long', { name: 'x', image: 'a'.repeat(256) }, /image/],
    ['image with spaces', { name: 'x', image: 'alpine; rm -rf /' }, /image/],
    ['zero CPUs', { name: 'x', resources: { cpus: 0 } }, /resources\.cpus: must be at least 0\.01 .*leave cpus out/],
    ['negative CPUs', { name: 'x', resources: { cpus: -4 } }, /resources\.cpus: must be at least 0\.01/],
    ['CPUs as a string', { name: 'x', resources: { cpus: '2' } }, /resources\.cpus: must be a number of CPUs such as 2 or 0\.5/],
    ['huge CPUs', { name: 'x', resources: { cpus: 4096 } }, /resources\.cpus: must be at most 256/],
    ['memory in an unknown unit', { name: 'x', resources: { memory: '5x' } }, /resources\.memory: must be a size such as "512m", "2g" or "1\.5g"/],
    ['NaN-like memory', { name: 'x', resources: { memory: 'NaN' } }, /resources\.memory: must be a size/],
    ['memory below 6m', { name: 'x', resources: { memory: 4096 } }, /resources\.memory: must be at least 6m .*plain number is bytes/],
    ['memory above 1t', { name: 'x', resources: { memory: '1025g' } }, /resources\.memory: must be at most 1t/],
    ['unknown size field', { name: 'x', resources: { cpu: 2 } }, /resources: unknown field "cpu" — remove it/],
    ['size as a string', { name: 'x', resources: '2 CPUs' }, /resources: must be an object such as/],
  ];
  it.each(cases)('refuses %s with 400 naming the field', async (_label, body, mentions) => {
    expectError(await create(a, body), 400, 'validation', mentions);
  });

  it('refuses unknown and invalid fields in PATCH too, changing nothing', async () => {
    const created = (await create(a, { name: uniqueName() })).json;
    const patch = (body: unknown) => http(api.url, `/api/v1/environments/${created.id}`, { key: a.keys.member, method: 'PATCH', body });
    expectError(await patch({ nmae: 'x' }), 400, 'validation', /unknown field "nmae"/);
    expectError(await patch({ secret_names: ['TOKEN=abc'] }), 400, 'validation', /secret_names\[0\]/);
    expectError(await patch({ repositories: [{ url: 'file:///etc' }] }), 400, 'validation', /repositories\[0\]\.url/);
    expectError(await patch({ name: 'Bad Name' }), 400, 'validation', /name/);
    expectError(await patch({ resources: { cpus: 0 } }), 400, 'validation', /resources\.cpus: must be at least 0\.01/);
    expectError(await patch({ resources: { memory: '5x' } }), 400, 'validation', /resources\.memory: must be a size/);
    expectError(await patch({ resources: { gpus: 1 } }), 400, 'validation', /resources: unknown field "gpus"/);
    expectError(await patch({ resources: 'big' }), 400, 'validation', /resources: must be an object .*or null to clear both/);
    expect((await http(api.url, `/api/v1/environments/${created.id}`, { key: a.keys.member })).json).toEqual(created);
  });

  it('repositoryUrlProblem accepts exactly the documented forms', () => {
    for (const ok of ['https://github.com/a/b.git', 'ssh://git@host/a/b', 'ssh://host:22/a', 'git@github.com:a/b.git', 'deploy@git.example.com:team/repo', '/srv/repo']) {
      expect(repositoryUrlProblem(ok), ok).toBeUndefined();
    }
    for (const bad of ['file:///etc', 'ext::sh -c id', 'ext::sh', 'fd::3', 'git://host/a', 'http://h/a', '', '-u', 'host:path', 'git@-oProxyCommand=x:y', 'https://h/a\nb', 'relative/path', 'git@host::x']) {
      expect(repositoryUrlProblem(bad), bad).toBeDefined();
    }
  });
});

describe('environments in the OpenAPI document', () => {
  it('documents all five operations with their schemas', async () => {
    const doc = (await http(api.url, '/api/v1/openapi.json')).json;
    expect(Object.keys(doc.paths['/api/v1/environments']).sort()).toEqual(['get', 'post']);
    expect(Object.keys(doc.paths['/api/v1/environments/{id}']).sort()).toEqual(['delete', 'get', 'patch']);
    const post = doc.paths['/api/v1/environments'].post;
    expect(Object.keys(post.responses)).toEqual(expect.arrayContaining(['201', '400', '401', '403']));
    expect(post.requestBody.content['application/json'].schema.$ref).toMatch(/^#\/components\/schemas\//);
    expect(Object.keys(doc.paths['/api/v1/environments/{id}'].delete.responses)).toEqual(expect.arrayContaining(['204', '404']));
  });
});
