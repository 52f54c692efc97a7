/**
 * The docker backend's `docker:` block: defaults, normalisation, cross-field checks, per-task
 * sizes — and every bad value refused with a message naming `docker.<field>` and the fix.
 */
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refusal } from '../support/refusal.js';
import {
  DEFAULT_MEMORY_BYTES,
  DEFAULT_PIDS_LIMIT,
  DEFAULT_TMP_SIZE_BYTES,
  LINUX_CAPABILITIES,
  parseByteSize,
  parseDockerFileConfig,
  resolveDockerOptions,
  resourcesFor,
  type ResolveDockerContext,
} from '../../src/worker/backends/docker/options.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

let dir: string;
beforeAll(() => {
  dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'al-dopt-')));
  mkdirSync(path.join(dir, 'cache'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Parse and resolve a raw `docker:` block, as the worker will. */
function resolve(raw: unknown, context: ResolveDockerContext = {}) {
  return resolveDockerOptions(parseDockerFileConfig(raw), context);
}

describe('docker options', () => {
  it('applies hardened defaults', () => {
    expect(resolve(undefined)).toEqual({
      defaultImage: null,
      pullPolicy: 'if-not-present',
      network: 'none',
      capAdd: [],
      readOnlyRoot: false,
      tmpSizeBytes: DEFAULT_TMP_SIZE_BYTES,
      user: null,
      runtime: null,
      pidsLimit: DEFAULT_PIDS_LIMIT,
      memoryBytes: DEFAULT_MEMORY_BYTES,
      maxMemoryBytes: DEFAULT_MEMORY_BYTES,
      cpus: 2,
      maxCpus: 2,
      volumes: [],
      allowedVolumeRoots: null,
      engineSocketPaths: expect.arrayContaining(['/var/run/docker.sock', '/run/docker.sock']),
      warnings: [],
    });
  });

  it('reads every field of the YAML block', () => {
    const options = resolve({
      default_image: 'ghcr.io/acme/dev:1',
      pull_policy: 'never',
      network: 'airlock-tasks',
      cap_add: ['net_bind_service', 'CAP_CHOWN', 'NET_BIND_SERVICE'],
      read_only_root: true,
      tmp_size: '256m',
      user: '1000:1000',
      runtime: 'runsc',
      pids_limit: 256,
      memory: '2g',
      max_memory: 8 * GiB,
      cpus: 1.5,
      max_cpus: 4,
      volumes: [`${dir}/cache:/cache:ro`],
      allowed_volume_roots: [dir],
    });
    expect(options).toMatchObject({
      defaultImage: 'ghcr.io/acme/dev:1',
      pullPolicy: 'never',
      network: 'airlock-tasks',
      capAdd: ['CAP_NET_BIND_SERVICE', 'CAP_CHOWN'],
      readOnlyRoot: true,
      tmpSizeBytes: 256 * MiB,
      user: '1000:1000',
      runtime: 'runsc',
      pidsLimit: 256,
      memoryBytes: 2 * GiB,
      maxMemoryBytes: 8 * GiB,
      cpus: 1.5,
      maxCpus: 4,
      volumes: [{ hostPath: `${dir}/cache`, source: `${dir}/cache`, containerPath: '/cache', readOnly: true }],
      allowedVolumeRoots: [dir],
      warnings: [],
    });
  });

  it('caps the default cpus at what the engine has, and refuses more than that', () => {
    expect(resolve({}, { engineCpus: 1 }).cpus).toBe(1);
    expect(resolve({}, { engineCpus: 16 }).cpus).toBe(2);
    const err = refusal(() => resolve({ cpus: 4 }, { engineCpus: 2 }));
    expect(err.message).toMatch(/docker\.cpus: 4 is more than the 2 CPUs the Docker Engine has.* — set it to at most 2/);
    expect(refusal(() => resolve({ max_cpus: 3 }, { engineCpus: 2 })).message).toMatch(/docker\.max_cpus: 3 is more than the 2 CPUs/);
  });

  it('accepts host-reaching capabilities, with a warning for each', () => {
    const options = resolve({ cap_add: ['SYS_ADMIN', 'cap_sys_ptrace', 'NET_RAW'] });
    expect(options.capAdd).toEqual(['CAP_SYS_ADMIN', 'CAP_SYS_PTRACE', 'CAP_NET_RAW']);
    expect(options.warnings).toHaveLength(2);
    expect(options.warnings[0]).toMatch(/docker\.cap_add gives every task CAP_SYS_ADMIN .*— keep it only if tasks need it, preferably with a sandboxing runtime such as runsc/);
  });

  it('knows every Linux capability, with or without CAP_, in any case (property)', () => {
    fc.assert(
      fc.property(fc.constantFrom(...LINUX_CAPABILITIES), fc.boolean(), fc.boolean(), (cap, prefix, lower) => {
        const written = `${prefix ? 'CAP_' : ''}${cap}`;
        expect(resolve({ cap_add: [lower ? written.toLowerCase() : written] }).capAdd).toEqual([`CAP_${cap}`]);
      }),
    );
  });

  const bad: Array<[string, unknown, string, RegExp]> = [
    ['network host', { network: 'host' }, 'docker.network', /host would put the task on the worker host's own network stack.* — use none \(the default\), or a network made for tasks with docker network create/],
    ['network container:…', { network: 'container:db' }, 'docker.network', /container:… would share another container's network namespace.* — use none/],
    ['a network that is not a name', { network: 'my net' }, 'docker.network', /must be none, or the name of a Docker network/],
    ['cap_add ALL', { cap_add: ['ALL'] }, 'docker.cap_add[0]', /ALL would hand the task every capability .* — list only the capabilities it needs, e.g. \[NET_BIND_SERVICE\]/],
    ['cap_add CAP_ALL', { cap_add: ['NET_RAW', 'cap_all'] }, 'docker.cap_add[1]', /ALL would hand the task every capability/],
    ['an unknown capability', { cap_add: ['CAP_FLY'] }, 'docker.cap_add[0]', /"CAP_FLY" is not a Linux capability — use a name from capabilities\(7\) such as NET_BIND_SERVICE/],
    ['a bad memory string', { memory: 'lots' }, 'docker.memory', /"lots" is not a size — write it like 4g, 512m or 2g/],
    ['memory with a decimal unit', { memory: '2 gigabytes' }, 'docker.memory', /is not a size/],
    ['negative memory', { memory: -5 }, 'docker.memory', /"-5" is not a size/],
    ['memory as a boolean', { memory: true }, 'docker.memory', /must be a size like 4g, 512m or 2g, or a number of bytes/],
    ['memory below the minimum', { memory: '16m' }, 'docker.memory', /"16m" is below the minimum of 64m — raise it/],
    ['cpus 0', { cpus: 0 }, 'docker.cpus', /must be a positive number of CPUs, at least 0\.01 — e\.g\. 2, or 0\.5 for half a CPU/],
    ['negative cpus', { cpus: -1 }, 'docker.cpus', /must be a positive number of CPUs/],
    ['cpus as text', { cpus: 'two' }, 'docker.cpus', /must be a number of CPUs, e\.g\. 2 or 0\.5/],
    ['pids_limit 0', { pids_limit: 0 }, 'docker.pids_limit', /must be at least 1 — a container without a limit is not offered/],
    ['a fractional pids_limit', { pids_limit: 1.5 }, 'docker.pids_limit', /whole number/],
    ['a bad pull_policy', { pull_policy: 'sometimes' }, 'docker.pull_policy', /must be if-not-present \(the default\), always or never/],
    ['a bad user', { user: 'root; rm -rf /' }, 'docker.user', /must be a user name or uid, optionally with :group or :gid — e\.g\. 1000:1000 or nobody/],
    ['a bad runtime', { runtime: '../runc' }, 'docker.runtime', /must be the name of a runtime the Docker Engine has configured, e\.g\. runsc/],
    ['a bad default_image', { default_image: 'UPPER/case' }, 'docker.default_image', /OCI image reference/],
    ['read_only_root as text', { read_only_root: 'yes' }, 'docker.read_only_root', /expected boolean/],
    ['an empty allowed_volume_roots', { allowed_volume_roots: [] }, 'docker.allowed_volume_roots', /must list at least one directory — leave it out to allow any/],
    ['an unknown key', { netwrok: 'none' }, 'docker', /unknown field "netwrok" — remove it \(check the spelling/],
  ];
  it.each(bad)('refuses %s, naming the field and the fix', (_what, raw, field, fix) => {
    const err = refusal(() => resolve(raw));
    expect(err.message).toContain(`${field}: `);
    expect(err.message).toMatch(fix);
  });

  const crossField: Array<[string, () => unknown, RegExp]> = [
    ['tmp_size without read_only_root', () => ({ tmp_size: '64m' }), /docker\.tmp_size: applies only to the \/tmp of a read-only root — set read_only_root: true, or remove tmp_size/],
    ['max_cpus below cpus', () => ({ cpus: 2, max_cpus: 1 }), /docker\.max_cpus: 1 is below cpus \(2\) — raise max_cpus, or lower cpus/],
    ['max_memory below memory', () => ({ memory: '4g', max_memory: '2g' }), /docker\.max_memory: 2g is below memory \(4g\) — raise max_memory, or lower memory/],
    ['a volume at /tmp with a read-only root', () => ({ read_only_root: true, volumes: [`${dir}/cache:/tmp`] }), /docker\.volumes: ".*:\/tmp" mounts at \/tmp, where read_only_root puts its tmpfs — mount it elsewhere, or under \/tmp/],
    ['a volume outside allowed_volume_roots', () => ({ volumes: ['/etc:/host-etc:ro'], allowed_volume_roots: [dir] }), /docker\.volumes\[0\] "\/etc:\/host-etc:ro": .* is outside allowed_volume_roots .* — move the data under one of them/],
    ['a volume of the Docker socket', () => ({ volumes: ['/var/run/docker.sock:/d.sock'] }), /docker\.volumes\[0\] .* is the container engine's socket .* — remove this volume/],
    ['a missing allowed root', () => ({ allowed_volume_roots: [`${dir}/missing`] }), /docker\.allowed_volume_roots\[0\] .* does not exist on the worker host — create it, or remove it from the list/],
  ];
  it.each(crossField)('refuses %s', (_what, raw, message) => {
    expect(refusal(() => resolve(raw())).message).toMatch(message);
  });

  it('allows a volume under /tmp with a read-only root', () => {
    expect(resolve({ read_only_root: true, volumes: [`${dir}/cache:/tmp/cache`] }).volumes).toHaveLength(1);
  });
});

describe('docs/configuration.md', () => {
  it("documents a docker: block that parses (the example cannot rot)", () => {
    const doc = readFileSync(path.join(import.meta.dirname, '../../docs/configuration.md'), 'utf8');
    const section = doc.slice(doc.indexOf('### Docker backend (`docker:`)'));
    const yaml = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
    expect(yaml).toBeDefined();
    const parsed = parseDockerFileConfig((parseYaml(yaml!) as { docker: unknown }).docker);
    expect(parsed).toMatchObject({ network: 'airlock-tasks', read_only_root: true, user: '1000:1000', memory: 4 * GiB, max_cpus: 8 });
  });
});

describe('parseByteSize', () => {
  it.each([
    ['1024', 1024],
    ['512m', 512 * MiB],
    ['512M', 512 * MiB],
    ['512MB', 512 * MiB],
    ['512MiB', 512 * MiB],
    ['2g', 2 * GiB],
    ['1.5g', 1.5 * GiB],
    ['64k', 64 * 1024],
    ['1t', 1024 ** 4],
    ['100b', 100],
    [' 2g ', 2 * GiB],
    [2048, 2048],
  ] as Array<[string | number, number]>)('reads %j as %d bytes', (input, bytes) => {
    expect(parseByteSize(input)).toBe(bytes);
  });

  it.each(['', 'g', '2x', '-1g', '0', '1e3', '2 gigabytes', '0x10', 'NaN'] as const)('refuses %j', (input) => {
    expect(parseByteSize(input)).toBeUndefined();
  });

  it('refuses numbers that are not positive whole byte counts', () => {
    for (const n of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60]) expect(parseByteSize(n)).toBeUndefined();
  });

  it('multiplies by powers of 1024 (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), fc.constantFrom(['k', 1], ['m', 2], ['g', 3]), (n, [unit, power]) => {
        expect(parseByteSize(`${n}${unit}`)).toBe(n * 1024 ** (power as number));
      }),
    );
  });
});

describe('resourcesFor (a task size within the worker limits)', () => {
  const limits = { cpus: 2, maxCpus: 4, memoryBytes: 4 * GiB, maxMemoryBytes: 8 * GiB };

  it('uses the configured resources when the task asks for none', () => {
    expect(resourcesFor(limits)).toEqual({ cpus: 2, nanoCpus: 2_000_000_000, memoryBytes: 4 * GiB });
  });

  it('takes the task size up to the maximum, fractional cpus in NanoCpus', () => {
    expect(resourcesFor(limits, { cpus: 0.5, memory: '1g' })).toEqual({ cpus: 0.5, nanoCpus: 500_000_000, memoryBytes: GiB });
    expect(resourcesFor(limits, { cpus: 4, memory: 8 * GiB })).toEqual({ cpus: 4, nanoCpus: 4_000_000_000, memoryBytes: 8 * GiB });
    expect(resourcesFor(limits, { cpus: 1 / 3 }).nanoCpus).toBe(333_333_333);
  });

  it.each([
    [{ cpus: 5 }, /asks for 5 CPUs, more than this worker allows \(docker\.max_cpus: 4\) — ask for fewer, or raise max_cpus/],
    [{ cpus: 0 }, /asks for 0 CPUs — ask for a positive number, at least 0\.01/],
    [{ cpus: -2 }, /asks for -2 CPUs/],
    [{ cpus: Number.NaN }, /asks for NaN CPUs/],
    [{ memory: '16g' }, /asks for 16g of memory, more than this worker allows \(docker\.max_memory: 8g\) — ask for less, or raise max_memory/],
    [{ memory: 'huge' }, /asks for memory "huge" — ask for a size such as 2g, at least 64m/],
    [{ memory: '1m' }, /asks for memory "1m" — ask for a size such as 2g/],
  ])('refuses %j, naming the limit and the fix', (overrides, message) => {
    expect(refusal(() => resourcesFor(limits, overrides)).message).toMatch(message);
  });
});
