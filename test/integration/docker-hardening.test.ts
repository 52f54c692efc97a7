/**
 * The container spec against the real Docker Engine: containers created from `containerSpec` are
 * inspected field by field, and started ones look at themselves from inside (capabilities,
 * no_new_privs, seccomp, mounts, network, limits) — the hardening must hold on the engine, not
 * just in the object we send. Every container carries the test label and a per-run label and is
 * removed in afterAll, which then proves none is left.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AIRLOCK_GATEWAY_DIR,
  AIRLOCK_RUNTIME_DIR,
  LABEL_EPOCH,
  LABEL_EXECUTION_ID,
  LABEL_TASK_ID,
  LABEL_WORKER_ID,
  containerSpec,
  type ContainerSpecInput,
} from '../../src/worker/backends/docker/container-spec.js';
import { parseDockerFileConfig, resolveDockerOptions, type DockerOptions } from '../../src/worker/backends/docker/options.js';

/** Built by scripts/test-image.sh (Debian bookworm minbase with git; has perl, no python). */
const TEST_IMAGE = 'airlock-test/debian:bookworm';
const TEST_LABEL = 'dev.airlock.test';
/** Per run, so cleanup never touches containers of a test file running beside this one. */
const RUN_LABEL = 'dev.airlock.test-run';
const run = randomBytes(6).toString('hex');

const docker = new Docker();
let dir: string;
let runtimeDir: string;
let gatewayDir: string;
let volumeDir: string;
let gateway: Server;
let count = 0;

beforeAll(async () => {
  try {
    await docker.getImage(TEST_IMAGE).inspect();
  } catch (err) {
    throw new Error(`these tests need the image ${TEST_IMAGE} on the local Docker Engine (${(err as Error).message}) — build it with bash scripts/test-image.sh`);
  }
  dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'al-dhard-')));
  runtimeDir = path.join(dir, 'runtime');
  gatewayDir = path.join(dir, 'gateway');
  volumeDir = path.join(dir, 'volume');
  for (const d of [runtimeDir, gatewayDir, volumeDir]) mkdirSync(d);
  chmodSync(dir, 0o755);
  writeFileSync(path.join(runtimeDir, 'agent.txt'), 'runtime\n');
  writeFileSync(path.join(volumeDir, 'data.txt'), 'data\n');
  // A stand-in task gateway: answers every connection with one line.
  gateway = createServer((socket) => socket.end('gateway says hello\n'));
  const socketPath = path.join(gatewayDir, 'gateway.sock');
  await new Promise<void>((resolve) => gateway.listen(socketPath, resolve));
  chmodSync(socketPath, 0o666);
});

afterAll(async () => {
  const filters = { label: [`${TEST_LABEL}=1`, `${RUN_LABEL}=${run}`] };
  const leftover = await docker.listContainers({ all: true, filters });
  await Promise.all(leftover.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true })));
  expect(await docker.listContainers({ all: true, filters })).toEqual([]);
  if (gateway) await new Promise<void>((resolve) => gateway.close(() => resolve()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Options from a raw `docker:` block, as the worker resolves them. */
const options = (raw: unknown = {}): DockerOptions => resolveDockerOptions(parseDockerFileConfig(raw));

function specInput(opts: DockerOptions, command: string[], extra: Partial<ContainerSpecInput> = {}): ContainerSpecInput {
  count += 1;
  return {
    options: opts,
    image: TEST_IMAGE,
    name: `airlock-test-${run}-${count}`,
    execution: { workerId: 'w-test', taskId: 'tsk_aaaaaaaaaaaaaaaaaaaa', executionId: 'exe_bbbbbbbbbbbbbbbbbbbb', epoch: 7 },
    labels: { [TEST_LABEL]: '1', [RUN_LABEL]: run },
    env: { AIRLOCK_GATEWAY: `unix:${AIRLOCK_GATEWAY_DIR}/gateway.sock`, GREETING: 'hi' },
    command,
    workingDir: '/',
    runtimeDir,
    gatewayDir,
    ...extra,
  };
}

/** `docker logs` of a container without a TTY: 8-byte frame headers, stream 1 stdout, 2 stderr. */
function demux(buffer: Buffer): { stdout: string; stderr: string } {
  const out = { stdout: '', stderr: '' };
  let offset = 0;
  while (offset + 8 <= buffer.length) {
    const stream = buffer[offset];
    const size = buffer.readUInt32BE(offset + 4);
    const chunk = buffer.subarray(offset + 8, offset + 8 + size).toString('utf8');
    if (stream === 2) out.stderr += chunk;
    else out.stdout += chunk;
    offset += 8 + size;
  }
  return out;
}

/** Create, start, wait for exit and read the output of one container. */
async function runToExit(input: ContainerSpecInput): Promise<{ exitCode: number; stdout: string; stderr: string; container: Docker.Container }> {
  const container = await docker.createContainer(containerSpec(input));
  await container.start();
  const { StatusCode } = await container.wait();
  const logs = await container.logs({ stdout: true, stderr: true, follow: false });
  return { exitCode: StatusCode, ...demux(logs), container };
}

/** `key=value` lines printed by a probe script → a record. */
function probeResults(stdout: string): Record<string, string> {
  return Object.fromEntries(
    stdout
      .split('\n')
      .filter((line) => line.includes('='))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1).trim()]),
  );
}

describe('docker hardening on the real engine', () => {
  it('creates a container whose inspect shows every hardening flag (defaults)', async () => {
    const input = specInput(options(), ['true']);
    const container = await docker.createContainer(containerSpec(input));
    const info = await container.inspect();
    const host = info.HostConfig as Docker.HostConfig & { CgroupnsMode?: string };

    expect(host.CapDrop).toEqual(['ALL']);
    expect(host.CapAdd ?? []).toEqual([]);
    expect(host.SecurityOpt).toEqual(['no-new-privileges']);
    expect((host.SecurityOpt as string[]).some((o) => o.startsWith('seccomp'))).toBe(false); // the engine's default profile applies
    expect(host.Privileged).toBe(false);
    expect(host.Devices ?? []).toEqual([]);
    expect(host.NetworkMode).toBe('none');
    expect(host.IpcMode).toBe('private');
    expect(host.PidMode).toBe('');
    expect(host.UTSMode).toBe('');
    expect(host.UsernsMode).toBe('');
    expect(host.CgroupnsMode).toBe('private');
    expect(host.PidsLimit).toBe(1024);
    expect(host.Memory).toBe(4 * 1024 ** 3);
    expect(host.MemorySwap).toBe(host.Memory);
    expect(host.NanoCpus).toBe(2_000_000_000);
    expect(host.Init).toBe(true);
    expect(host.ReadonlyRootfs).toBe(false);
    expect(host.Tmpfs ?? {}).toEqual({});
    expect(host.AutoRemove).toBe(false);
    expect(host.RestartPolicy).toMatchObject({ Name: 'no' });
    expect(host.MaskedPaths).toContain('/proc/kcore'); // the engine's masks stay in place

    expect(info.Config.User).toBe('');
    expect((info.Config as { StopSignal?: string }).StopSignal).toBe('SIGTERM'); // missing from @types/dockerode
    expect(info.Config.Entrypoint).toEqual(['true']);
    expect(info.Config.Env).toEqual(expect.arrayContaining(['GREETING=hi']));
    expect(info.Config.Labels).toMatchObject({
      [LABEL_WORKER_ID]: 'w-test',
      [LABEL_TASK_ID]: 'tsk_aaaaaaaaaaaaaaaaaaaa',
      [LABEL_EXECUTION_ID]: 'exe_bbbbbbbbbbbbbbbbbbbb',
      [LABEL_EPOCH]: '7',
      [TEST_LABEL]: '1',
    });

    const mounts = info.Mounts.map((m) => ({ Source: m.Source, Destination: m.Destination, RW: m.RW, Type: m.Type }));
    expect(mounts).toEqual(
      expect.arrayContaining([
        { Source: runtimeDir, Destination: AIRLOCK_RUNTIME_DIR, RW: false, Type: 'bind' },
        { Source: gatewayDir, Destination: AIRLOCK_GATEWAY_DIR, RW: false, Type: 'bind' },
      ]),
    );
    for (const m of info.Mounts) expect(m.Source).not.toMatch(/docker\.sock|^\/run$|^\/var\/run$/);
  });

  it('creates a container with the configured loosening, and only that (inspect)', async () => {
    const opts = options({
      cap_add: ['net_bind_service', 'CAP_CHOWN'],
      read_only_root: true,
      tmp_size: '16m',
      user: '1000:1000',
      pids_limit: 64,
      memory: '256m',
      max_memory: '512m',
      cpus: 0.5,
      volumes: [`${volumeDir}:/data:ro`],
      allowed_volume_roots: [dir],
    });
    const container = await docker.createContainer(containerSpec(specInput(opts, ['true'], { resources: { memory: '384m' } })));
    const info = await container.inspect();
    const host = info.HostConfig;

    expect(host.CapDrop).toEqual(['ALL']);
    expect([...(host.CapAdd as string[])].sort()).toEqual(['CAP_CHOWN', 'CAP_NET_BIND_SERVICE']);
    expect(host.ReadonlyRootfs).toBe(true);
    expect(host.Tmpfs).toEqual({ '/tmp': `rw,exec,nosuid,nodev,size=${16 * 1024 ** 2}` });
    expect(host.PidsLimit).toBe(64);
    expect(host.Memory).toBe(384 * 1024 ** 2);
    expect(host.MemorySwap).toBe(host.Memory);
    expect(host.NanoCpus).toBe(500_000_000);
    expect(info.Config.User).toBe('1000:1000');
    expect(info.Mounts).toEqual(expect.arrayContaining([expect.objectContaining({ Source: volumeDir, Destination: '/data', RW: false, Type: 'bind' })]));
  });

  it('runs a task that holds no capabilities, cannot gain privileges, mount or reach a network', async () => {
    const probe = [
      'echo caps=$(grep ^CapEff /proc/self/status | cut -f2)',
      'echo capbnd=$(grep ^CapBnd /proc/self/status | cut -f2)',
      'echo nnp=$(grep ^NoNewPrivs /proc/self/status | cut -f2)',
      'echo seccomp=$(grep ^Seccomp: /proc/self/status | cut -f2)',
      'mkdir -p /mnt/probe; mount -t tmpfs x /mnt/probe 2>/dev/null; echo mount=$?',
      'echo ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | tr "\\n" ,)',
      'echo init=$(tr "\\0" " " < /proc/1/cmdline)',
      'echo pids=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)',
      'echo uid=$(id -u)',
      'echo runtime=$(cat /airlock/runtime/agent.txt)',
      'touch /airlock/runtime/x 2>/dev/null; echo runtime_write=$?',
      'touch /airlock/gateway/x 2>/dev/null; echo gateway_write=$?',
      `echo gateway=$(perl -MIO::Socket::UNIX -e '$s = IO::Socket::UNIX->new(Peer => "/airlock/gateway/gateway.sock") or die "connect: $!"; print scalar <$s>')`,
      'echo env=$GREETING',
    ].join('\n');
    const result = await runToExit(specInput(options({ pids_limit: 100, memory: '128m', cpus: 0.5 }), ['sh', '-c', probe]));
    expect(result.stderr).toBe('');
    expect(result.exitCode).toBe(0);
    const r = probeResults(result.stdout);
    expect(r).toMatchObject({
      caps: '0000000000000000',
      capbnd: '0000000000000000',
      nnp: '1',
      seccomp: '2', // filter mode: the engine's default profile
      ifaces: 'lo,',
      pids: '100',
      uid: '0',
      runtime: 'runtime',
      gateway: 'gateway says hello',
      env: 'hi',
    });
    expect(r.mount).not.toBe('0');
    expect(r.runtime_write).not.toBe('0');
    expect(r.gateway_write).not.toBe('0');
    expect(r.init).toMatch(/^\/sbin\/docker-init -- sh -c/);
  });

  it('runs a task on a read-only root with a nosuid tmpfs /tmp, as the configured user, with exactly the capabilities added', async () => {
    const probe = [
      'touch /probe 2>/dev/null; echo root_write=$?',
      'touch /tmp/probe; echo tmp_write=$?',
      'echo tmp_mode=$(stat -c %a /tmp)',
      'echo tmp_opts=$(grep " /tmp " /proc/mounts | cut -d" " -f4)',
      'cp /bin/true /tmp/true && /tmp/true; echo tmp_exec=$?',
      'echo uid=$(id -u):$(id -g)',
      'echo capbnd=$(grep ^CapBnd /proc/self/status | cut -f2)',
      'echo data=$(cat /data/data.txt)',
      'touch /data/x 2>/dev/null; echo data_write=$?',
    ].join('\n');
    const opts = options({ read_only_root: true, tmp_size: '8m', user: '1000:1000', cap_add: ['NET_BIND_SERVICE'], memory: '128m', cpus: 0.5, volumes: [`${volumeDir}:/data:ro`] });
    const result = await runToExit(specInput(opts, ['sh', '-c', probe]));
    expect(result.stderr).toBe('');
    const r = probeResults(result.stdout);
    expect(r).toMatchObject({ root_write: '1', tmp_write: '0', tmp_mode: '1777', uid: '1000:1000', data: 'data', data_write: '1' });
    expect(r.tmp_opts).toMatch(/^rw,nosuid,nodev,.*size=8192k/);
    expect(r.tmp_opts).not.toContain('noexec'); // the engine adds noexec unless told exec
    expect(r.tmp_exec).toBe('0');
    // CAP_NET_BIND_SERVICE is bit 10: in the bounding set, and nothing else is.
    expect(r.capbnd).toBe((1 << 10).toString(16).padStart(16, '0'));
  });

  it('kills a task over its memory limit instead of letting it swap', async () => {
    // tmpfs pages count against a 64 MiB cgroup with no swap: writing 200 MiB ends in the OOM killer.
    const opts = options({ read_only_root: true, tmp_size: '512m', memory: '64m', cpus: 0.5 });
    const result = await runToExit(specInput(opts, ['sh', '-c', 'head -c 200m /dev/zero > /tmp/fill; echo wrote=$?']));
    const info = await result.container.inspect();
    expect(info.HostConfig.MemorySwap).toBe(64 * 1024 ** 2);
    expect(result.stdout).not.toContain('wrote=0');
    // The OOM killer picks a process: sometimes the writer (the shell goes on and exits 0),
    // sometimes the whole container (137). Only State.OOMKilled says it reliably.
    expect(info.State.OOMKilled).toBe(true);
  });

  it('refuses, at create, a runtime the engine does not have', async () => {
    const spec = containerSpec(specInput(options({ runtime: 'airlock-missing-runtime' }), ['true']));
    await expect(docker.createContainer(spec)).rejects.toThrow(/Unknown runtime specified airlock-missing-runtime/);
  });
});
