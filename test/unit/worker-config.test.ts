/**
 * The worker's configuration: flags over file, durations, -e resolution, and errors that name
 * the field and the fix for every kind of bad input.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveWorkerConfig, type WorkerFlags } from '../../src/worker/config.js';

const base: WorkerFlags = { server: 'http://127.0.0.1:7070', apiKey: 'alk_x', workerId: 'w1' };

function file(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'al-cfg-'));
  const path = join(dir, 'worker.yaml');
  writeFileSync(path, text);
  return path;
}

describe('worker configuration', () => {
  it('applies defaults', () => {
    const config = resolveWorkerConfig(base, {}, '/srv');
    expect(config).toMatchObject({ backend: 'direct', concurrency: 1, noCleanup: false, drainTimeoutMs: 600_000, env: {} });
    expect(config.stateDir).toMatch(/\.airlock\/worker\/w1$/);
    expect(config.workspaceRoot).toBe(join(config.stateDir, 'ws'));
  });

  it('reads a YAML file, and flags override it', () => {
    const path = file('server: http://file:1\nworker_id: from-file\nconcurrency: 4\nenv: [A=1, B]\nlabels: {zone: a}\ndrain_timeout: 90s\nno_cleanup: true\n');
    const config = resolveWorkerConfig({ config: path, apiKey: 'k', concurrency: '2' }, { B: 'from-env' }, '/srv');
    expect(config).toMatchObject({
      serverUrl: 'http://file:1',
      workerId: 'from-file',
      concurrency: 2,
      env: { A: '1', B: 'from-env' },
      labels: { zone: 'a' },
      drainTimeoutMs: 90_000,
      noCleanup: true,
    });
  });

  it('takes the key from AIRLOCK_API_KEY and resolves relative paths against the working directory', () => {
    const config = resolveWorkerConfig({ server: 'http://s', workerId: 'w', stateDir: 'state' }, { AIRLOCK_API_KEY: 'alk_env' }, '/srv');
    expect(config.apiKey).toBe('alk_env');
    expect(config.stateDir).toBe('/srv/state');
  });

  const refusals: Array<[string, WorkerFlags, NodeJS.ProcessEnv, RegExp]> = [
    ['no server', { apiKey: 'k', workerId: 'w' }, {}, /--server.*AIRLOCK_SERVER/],
    ['a server that is not a URL', { ...base, server: 'localhost:7070' }, {}, /not an http\(s\) URL/],
    ['no key', { server: 'http://s', workerId: 'w' }, {}, /AIRLOCK_API_KEY/],
    ['a worker id with a slash', { ...base, workerId: 'a/b' }, {}, /--worker-id.*letters, digits/],
    ['a worker id with ..', { ...base, workerId: 'a..b' }, {}, /--worker-id.*"\.\."/],
    ['a 200-character worker id', { ...base, workerId: 'x'.repeat(200) }, {}, /--worker-id.*63/],
    ['an unknown backend', { ...base, backend: 'vm' }, {}, /--backend/],
    ['a concurrency of zero', { ...base, concurrency: '0' }, {}, /--concurrency "0"/],
    ['a concurrency that is not a number', { ...base, concurrency: 'many' }, {}, /--concurrency "many"/],
    ['-e with a bad name', { ...base, env: ['1BAD=x'] }, {}, /-e "1BAD=x".*not a valid environment variable name/],
    ['-e of a variable the worker does not have', { ...base, env: ['MISSING'] }, {}, /-e MISSING: no value given.*export MISSING/],
    ['-e of a reserved variable', { ...base, env: ['PATH=/evil'] }, {}, /-e "PATH".*set by the worker/],
    ['-e of the API key', { ...base, env: ['AIRLOCK_API_KEY'] }, { AIRLOCK_API_KEY: 'k' }, /-e "AIRLOCK_API_KEY"/],
    ['a bad drain timeout', { ...base, drainTimeout: 'soon' }, {}, /--drain-timeout "soon"/],
    ['a bad label', { ...base, label: ['novalue'] }, {}, /--label "novalue"/],
  ];
  for (const [what, flags, env, message] of refusals) {
    it(`refuses ${what} with a message naming it`, () => {
      expect(() => resolveWorkerConfig(flags, env, '/srv')).toThrow(message);
    });
  }

  it('refuses unknown keys in the file, naming the key', () => {
    expect(() => resolveWorkerConfig({ config: file('server: http://s\nconcurency: 3\n'), apiKey: 'k', workerId: 'w' }, {}, '/')).toThrow(/unknown field "concurency"/);
  });

  it('refuses a file that is not YAML, a file that is missing, and wrong types', () => {
    expect(() => resolveWorkerConfig({ config: file('server: [unclosed\n'), apiKey: 'k' }, {}, '/')).toThrow(/not valid YAML/);
    expect(() => resolveWorkerConfig({ config: '/nonexistent/worker.yaml', apiKey: 'k' }, {}, '/')).toThrow(/cannot read the worker config file/);
    expect(() => resolveWorkerConfig({ config: file('concurrency: "four"\n'), ...base }, {}, '/')).toThrow(/concurrency/);
    expect(() => resolveWorkerConfig({ config: file('drain_timeout: soon\n'), ...base }, {}, '/')).toThrow(/drain_timeout/);
  });
});

describe('worker configuration: the docker backend', () => {
  const docker: WorkerFlags = { ...base, backend: 'docker' };

  it('merges the docker: block and the flags (flags win, -v adds volumes)', () => {
    const host = mkdtempSync(join(tmpdir(), 'al-vol-'));
    const extra = mkdtempSync(join(tmpdir(), 'al-vol-'));
    const path = file(`backend: docker\ndocker:\n  default_image: file/image:1\n  memory: 1g\n  volumes: ["${host}:/data:ro"]\n`);
    const config = resolveWorkerConfig({ ...base, config: path, defaultImage: 'flag/image:2', pullPolicy: 'never', volume: [`${extra}:/extra`] }, {}, '/srv');
    expect(config.backend).toBe('docker');
    expect(config.docker).toMatchObject({ defaultImage: 'flag/image:2', pullPolicy: 'never', memoryBytes: 1024 ** 3, network: 'none' });
    expect(config.docker?.volumes.map((v) => `${v.containerPath}:${v.readOnly ? "ro" : "rw"}`)).toEqual(['/data:ro', '/extra:rw']);
  });

  it.each([
    ['a volume with ..', { volume: ['/tmp/../etc:/x'] }, /\.\./],
    ['a relative host path', { volume: ['data:/x'] }, /absolute/],
    ['the Docker socket', { volume: ['/var/run/docker.sock:/var/run/docker.sock'] }, /socket/],
    ['a missing host path', { volume: ['/nonexistent/airlock-test:/x'] }, /does not exist|no such/i],
    ['a bad pull policy', { pullPolicy: 'sometimes' }, /pull_policy/],
  ])('refuses %s with a message naming it', (_what, flags, message) => {
    expect(() => resolveWorkerConfig({ ...docker, ...flags }, {}, '/srv')).toThrow(message);
  });

  it('refuses docker flags without --backend docker, and host setup commands with it', () => {
    expect(() => resolveWorkerConfig({ ...base, defaultImage: 'x' }, {}, '/srv')).toThrow(/apply to the docker backend — add --backend docker/);
    expect(() => resolveWorkerConfig({ ...docker, setupCommand: 'make deps' }, {}, '/srv')).toThrow(/setup_command runs on the worker's host and applies to the direct backend only/);
  });
});

describe('worker configuration: a docker: block with another backend', () => {
  it('is refused, naming the backend and the fix', () => {
    const path = file('docker:\n  memory: 1g\n');
    expect(() => resolveWorkerConfig({ ...base, config: path }, {}, '/srv')).toThrow(/has a docker: block, but the worker runs the direct backend — set backend: docker/);
  });
});
