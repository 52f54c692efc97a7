/**
 * The pure container spec of one execution: every hardening field, for default and loosened
 * options alike, and the last-line guard against mounting an engine socket.
 */
import type Docker from 'dockerode';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AIRLOCK_GATEWAY_DIR,
  AIRLOCK_RUNTIME_DIR,
  LABEL_EPOCH,
  LABEL_EXECUTION_ID,
  LABEL_TASK_ID,
  LABEL_WORKER_ID,
  assertNoEngineSocketMounts,
  containerSpec,
  type ContainerSpecInput,
} from '../../src/worker/backends/docker/container-spec.js';
import { parseDockerFileConfig, resolveDockerOptions, type DockerOptions } from '../../src/worker/backends/docker/options.js';

const GiB = 1024 ** 3;

/** Options from a raw `docker:` block, as the worker resolves them. */
const resolved = (raw: unknown = {}): DockerOptions => resolveDockerOptions(parseDockerFileConfig(raw));

function input(options: DockerOptions = resolved(), overrides: Partial<ContainerSpecInput> = {}): ContainerSpecInput {
  return {
    options,
    image: 'ghcr.io/acme/dev:1',
    name: 'airlock-exe_aaaaaaaaaaaaaaaaaaaa',
    execution: { workerId: 'w1', taskId: 'tsk_bbbbbbbbbbbbbbbbbbbb', executionId: 'exe_aaaaaaaaaaaaaaaaaaaa', epoch: 3 },
    env: { AIRLOCK_GATEWAY: `unix:${AIRLOCK_GATEWAY_DIR}/gateway.sock`, CI: 'true' },
    command: ['node', `${AIRLOCK_RUNTIME_DIR}/agent.js`, '--flag'],
    workingDir: '/workspace',
    runtimeDir: '/srv/airlock/runtime',
    gatewayDir: '/srv/airlock/ws/exe_aaaaaaaaaaaaaaaaaaaa',
    ...overrides,
  };
}

describe('containerSpec', () => {
  it('builds a hardened container from the defaults', () => {
    const spec = containerSpec(input());
    expect(spec).toEqual({
      name: 'airlock-exe_aaaaaaaaaaaaaaaaaaaa',
      Image: 'ghcr.io/acme/dev:1',
      Entrypoint: ['node'],
      Cmd: [`${AIRLOCK_RUNTIME_DIR}/agent.js`, '--flag'],
      Env: [`AIRLOCK_GATEWAY=unix:${AIRLOCK_GATEWAY_DIR}/gateway.sock`, 'CI=true'],
      WorkingDir: '/workspace',
      Labels: {
        [LABEL_WORKER_ID]: 'w1',
        [LABEL_TASK_ID]: 'tsk_bbbbbbbbbbbbbbbbbbbb',
        [LABEL_EXECUTION_ID]: 'exe_aaaaaaaaaaaaaaaaaaaa',
        [LABEL_EPOCH]: '3',
      },
      StopSignal: 'SIGTERM',
      Tty: false,
      OpenStdin: false,
      StdinOnce: false,
      AttachStdin: false,
      HostConfig: {
        Mounts: [
          { Type: 'bind', Source: '/srv/airlock/runtime', Target: AIRLOCK_RUNTIME_DIR, ReadOnly: true },
          { Type: 'bind', Source: '/srv/airlock/ws/exe_aaaaaaaaaaaaaaaaaaaa', Target: AIRLOCK_GATEWAY_DIR, ReadOnly: true },
        ],
        CapDrop: ['ALL'],
        CapAdd: [],
        SecurityOpt: ['no-new-privileges'],
        Privileged: false,
        Devices: [],
        NetworkMode: 'none',
        IpcMode: 'private',
        CgroupnsMode: 'private',
        PidMode: '',
        UTSMode: '',
        UsernsMode: '',
        PublishAllPorts: false,
        PidsLimit: 1024,
        Memory: 4 * GiB,
        MemorySwap: 4 * GiB,
        NanoCpus: 2_000_000_000,
        Init: true,
        ReadonlyRootfs: false,
        AutoRemove: false,
        RestartPolicy: { Name: 'no' },
      },
    });
    expect(spec).not.toHaveProperty('User');
    expect(spec.HostConfig).not.toHaveProperty('Tmpfs');
    expect(spec.HostConfig).not.toHaveProperty('Runtime');
    expect(spec.HostConfig).not.toHaveProperty('Binds');
  });

  it('applies loosened options without giving up the rest', () => {
    const options: DockerOptions = {
      ...resolved({ cap_add: ['CAP_NET_BIND_SERVICE'], read_only_root: true, tmp_size: '64m', user: '1000:1000', runtime: 'runsc', network: 'tasks', pids_limit: 64, memory: '1g', max_memory: '2g', cpus: 1, max_cpus: 2 }),
      volumes: [{ spec: '/srv/cache:/cache:ro', hostPath: '/srv/cache', source: '/srv/cache', containerPath: '/cache', readOnly: true }],
    };
    const spec = containerSpec(input(options, { resources: { cpus: 0.5, memory: '2g' }, stdin: true, labels: { 'dev.airlock.test': '1' } }));
    expect(spec).toMatchObject({ User: '1000:1000', OpenStdin: true, StdinOnce: true, AttachStdin: true, Labels: { 'dev.airlock.test': '1', [LABEL_EPOCH]: '3' } });
    expect(spec.HostConfig).toMatchObject({
      CapDrop: ['ALL'],
      CapAdd: ['CAP_NET_BIND_SERVICE'],
      SecurityOpt: ['no-new-privileges'],
      NetworkMode: 'tasks',
      ReadonlyRootfs: true,
      Tmpfs: { '/tmp': `rw,exec,nosuid,nodev,size=${64 * 1024 ** 2}` },
      Runtime: 'runsc',
      PidsLimit: 64,
      Memory: 2 * GiB,
      MemorySwap: 2 * GiB,
      NanoCpus: 500_000_000,
      Privileged: false,
    });
    expect(spec.HostConfig?.Mounts?.[2]).toEqual({ Type: 'bind', Source: '/srv/cache', Target: '/cache', ReadOnly: true });
  });

  it('never weakens the hardening, whatever the options (property)', () => {
    const arbitraryOptions = fc.record({
      cap_add: fc.subarray(['NET_BIND_SERVICE', 'CHOWN', 'SYS_PTRACE', 'NET_RAW']),
      read_only_root: fc.boolean(),
      network: fc.constantFrom('none', 'bridge', 'tasks'),
      pids_limit: fc.integer({ min: 1, max: 100_000 }),
      memory: fc.integer({ min: 64, max: 64 * 1024 }).map((m) => `${m}m`),
      cpus: fc.integer({ min: 1, max: 1600 }).map((n) => n / 100),
    });
    fc.assert(
      fc.property(arbitraryOptions, (raw) => {
        const host = containerSpec(input(resolved(raw))).HostConfig!;
        expect(host.CapDrop).toEqual(['ALL']);
        expect(host.CapAdd).not.toContain('CAP_ALL');
        expect(host.SecurityOpt).toEqual(['no-new-privileges']);
        expect(host.Privileged).toBe(false);
        expect(host.Devices).toEqual([]);
        expect(host.NetworkMode).not.toBe('host');
        expect(host.PidMode).toBe('');
        expect(host.IpcMode).toBe('private');
        expect(host.UsernsMode).toBe('');
        expect(host.Memory).toBe(host.MemorySwap);
        expect(host.PidsLimit).toBeGreaterThan(0);
        expect(host.NanoCpus).toBeGreaterThan(0);
        expect(host.Init).toBe(true);
        expect(host.AutoRemove).toBe(false);
        expect(host.ReadonlyRootfs).toBe(raw.read_only_root);
        expect(host.Tmpfs !== undefined).toBe(raw.read_only_root);
      }),
      { numRuns: 200 },
    );
  });

  it.each<[string, Partial<ContainerSpecInput>, RegExp]>([
    ['a bad container name', { name: '../x' }, /is not a valid container name/],
    ['an empty command', { command: [] }, /agent command is empty/],
    ['no image', { image: '' }, /no image — give the task an image, or set docker\.default_image/],
    ['a relative working directory', { workingDir: 'work' }, /working directory "work" is not an absolute path/],
    ['a relative runtime directory', { runtimeDir: 'rt' }, /runtime directory "rt" is not an absolute path/],
    ['a bad variable name', { env: { 'A=B': 'x' } }, /not a valid environment variable name/],
    ['a NUL in a value', { env: { A: 'x\0y' } }, /NUL byte/],
    ['an identity label in the extra labels', { labels: { [LABEL_EPOCH]: '99' } }, /label dev\.airlock\.epoch is set by Airlock itself/],
    ['a task size above the maximum', { resources: { cpus: 64 } }, /asks for 64 CPUs, more than this worker allows/],
  ])('refuses %s', (_what, overrides, message) => {
    expect(() => containerSpec(input(resolved(), overrides))).toThrow(message);
  });

  it.each(['/var/run', '/run', '/var/run/docker.sock', '/', '/var', '/run/containerd'])('refuses to mount %s as the gateway directory', (dir) => {
    expect(() => containerSpec(input(resolved(), { gatewayDir: dir }))).toThrow(/is or contains the container engine's socket/);
  });

  it('refuses a socket-bearing volume even when the options were built by hand', () => {
    const options: DockerOptions = {
      ...resolved(),
      engineSocketPaths: [],
      volumes: [{ spec: 'x', hostPath: '/run', source: '/run', containerPath: '/r', readOnly: true }],
    };
    expect(() => containerSpec(input(options))).toThrow(/mount source "\/run" is or contains the container engine's socket \/run\/docker\.sock/);
  });
});

describe('assertNoEngineSocketMounts', () => {
  const spec = (host: Docker.HostConfig): Docker.ContainerCreateOptions => ({ name: 'c', HostConfig: host });

  it('checks legacy Binds, unnormalised sources and the given socket paths', () => {
    expect(() => assertNoEngineSocketMounts(spec({ Binds: ['/var/run/docker.sock:/d.sock'] }), [])).toThrow(/docker\.sock/);
    expect(() => assertNoEngineSocketMounts(spec({ Mounts: [{ Type: 'bind', Source: '/srv/../run/', Target: '/r' }] }), [])).toThrow(/\/run\/docker\.sock/);
    expect(() => assertNoEngineSocketMounts(spec({ Mounts: [{ Type: 'bind', Source: '/opt/engine', Target: '/e' }] }), ['/opt/engine/docker.sock'])).toThrow(/\/opt\/engine\/docker\.sock/);
    expect(() => assertNoEngineSocketMounts(spec({ Mounts: [{ Type: 'bind', Source: '/srv/data', Target: '/d' }] }), ['/opt/engine/docker.sock'])).not.toThrow();
    expect(() => assertNoEngineSocketMounts(spec({}), [])).not.toThrow();
  });
});
