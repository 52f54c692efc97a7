/**
 * The docker backend end to end, on a real Docker Engine: a real server, real worker processes
 * (`airlock worker --backend docker`), real task containers from the test image. Checks what a
 * security reviewer asks for on the containers tasks actually ran in — hardening flags by
 * `docker inspect`, and hostile tasks from the inside (fork bomb, memory, disk, network, the
 * Docker socket, the worker's key, mount/chroot) — plus cancellation, pull policies and cleanup.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeLabelled, requireTestEngine, TEST_IMAGE } from '../support/docker.js';
import { eventually, startTestServer, startWorker, stopWorker, tempDir, waitForTask, type TestServer, type TestWorker } from '../support/stack.js';

const RUN = Math.random().toString(36).slice(2, 8);
const WORKER = `dk-${RUN}`;
const LOCKED = `dk-ro-${RUN}`;

let docker: Dockerode;
let server: TestServer;
let worker: TestWorker;
let locked: TestWorker;

function workerConfig(lines: string[]): string {
  const file = join(tempDir('dkcfg'), 'worker.yaml');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

beforeAll(async () => {
  docker = (await requireTestEngine()).docker;
  server = await startTestServer();
  worker = startWorker(server, {
    workerId: WORKER,
    args: ['--backend', 'docker', '--default-image', TEST_IMAGE, '--concurrency', '3', '--config', workerConfig(['docker:', '  memory: 256m', '  pids_limit: 200', '  cpus: 1'])],
    env: { SECRET_TOKEN: 'hunter2-very-secret' },
  });
  locked = startWorker(server, {
    workerId: LOCKED,
    args: [
      '--backend',
      'docker',
      '--default-image',
      TEST_IMAGE,
      '--label',
      'kind=locked',
      '--config',
      workerConfig(['docker:', '  read_only_root: true', '  tmp_size: 32m', '  user: "1000:1000"', '  memory: 256m']),
    ],
  });
  await worker.waitForLog(/worker:ws:connected/, 30_000);
  await locked.waitForLog(/worker:ws:connected/, 30_000);
}, 60_000);

afterAll(async () => {
  await stopWorker(worker);
  await stopWorker(locked);
  await removeLabelled(docker, `dev.airlock.worker-id=${WORKER}`);
  await removeLabelled(docker, `dev.airlock.worker-id=${LOCKED}`);
  await server.close();
});

async function runTask(body: Record<string, unknown>, workerId = WORKER, states = ['succeeded', 'failed', 'cancelled'], timeoutMs = 60_000): Promise<{ task: any; output: string }> {
  const { status, body: created } = await server.api('/api/v1/tasks', { body: { harness: 'shell', worker_id: workerId, ...body } });
  expect(status, JSON.stringify(created)).toBe(201);
  const task = await waitForTask(server, created.id, states, timeoutMs);
  return { task, output: await outputOf(created.id) };
}

async function outputOf(taskId: string): Promise<string> {
  const { body: events } = await server.api(`/api/v1/tasks/${taskId}/events?format=json`);
  return (events as any[])
    .filter((e) => e.kind === 'output')
    .map((e) => e.data.text)
    .join('');
}

async function containerOf(taskId: string): Promise<Dockerode.ContainerInspectInfo> {
  const executionId = await eventually(async () => (await server.api(`/api/v1/tasks/${taskId}`)).body.executions?.[0]?.id, 20_000, 'an execution');
  return eventually(async () => docker.getContainer(`airlock-${executionId}`).inspect().catch(() => undefined), 30_000, 'the task container');
}

describe('docker backend: a task runs in a hardened container', () => {
  it('runs a shell task in its own container, labelled, hardened, and removed afterwards with its volume', async () => {
    const { body: created } = await server.api('/api/v1/tasks', {
      body: { harness: 'shell', worker_id: WORKER, prompt: 'echo "uid=$(id -u) home=$HOME pwd=$(pwd)"; grep -E "^(CapEff|NoNewPrivs|Seccomp):" /proc/self/status; sleep 2; echo done' },
    });
    const info = await containerOf(created.id);
    const host = info.HostConfig;
    expect(info.Config.Labels).toMatchObject({ 'dev.airlock.worker-id': WORKER, 'dev.airlock.task-id': created.id, 'dev.airlock.execution-id': expect.stringMatching(/^exe_/), 'dev.airlock.epoch': '1' });
    expect(info.Config.Image).toBe(TEST_IMAGE);
    expect(host.CapDrop).toEqual(['ALL']);
    expect(host.CapAdd ?? []).toEqual([]);
    expect(host.SecurityOpt).toContain('no-new-privileges');
    expect(JSON.stringify(host.SecurityOpt)).not.toMatch(/unconfined/);
    expect(host.Privileged).toBe(false);
    expect(host.PidsLimit).toBe(200);
    expect(host.Memory).toBe(256 * 1024 * 1024);
    expect(host.MemorySwap).toBe(host.Memory);
    expect(host.NanoCpus).toBe(1e9);
    expect(host.Init).toBe(true);
    expect(host.NetworkMode).toBe('none');
    expect(host.PidMode).toBe('');
    expect(host.IpcMode).toBe('private');
    const mounts = info.Mounts.map((m) => ({ source: m.Source, destination: m.Destination, rw: m.RW }));
    expect(mounts.some((m) => /docker\.sock/.test(m.source ?? ''))).toBe(false);
    expect(mounts).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ destination: '/airlock/runtime', rw: false }),
        expect.objectContaining({ destination: '/airlock/gateway', rw: false }),
        expect.objectContaining({ destination: '/airlock/task', rw: true }),
      ]),
    );
    const volume = await docker.getVolume(`airlock-${info.Config.Labels['dev.airlock.execution-id']}`).inspect();
    expect(volume.Labels).toMatchObject({ 'dev.airlock.worker-id': WORKER, 'dev.airlock.task-id': created.id });

    const task = await waitForTask(server, created.id, ['succeeded', 'failed'], 60_000);
    const output = await outputOf(created.id);
    expect(task.state, output).toBe('succeeded');
    expect(output).toContain('uid=0 home=/airlock/task/home pwd=/airlock/task/work');
    expect(output).toMatch(/CapEff:\s+0000000000000000/);
    expect(output).toMatch(/NoNewPrivs:\s+1/);
    expect(output).toContain('done');
    await eventually(async () => (await docker.getContainer(info.Id).inspect().catch(() => null)) === null, 20_000, 'the container to be removed');
    await eventually(async () => (await docker.getVolume(volume.Name).inspect().catch(() => null)) === null, 20_000, 'the volume to be removed');
  });

  it("gives the task no worker key, no task token in its environment, no Docker socket, no network, no mount or chroot", async () => {
    const { task, output } = await runTask({
      prompt: [
        'env | sort',
        'cat /proc/1/environ | tr "\\0" "\\n" | grep -c AIRLOCK_TASK_TOKEN= || echo "pid1-token=none"',
        'ls -l /var/run/docker.sock /run/docker.sock 2>&1 || true',
        'cat /proc/net/dev | tail -n +3 | cut -d: -f1',
        '(exec 3<>/dev/tcp/1.1.1.1/80) 2>&1 && echo NETWORK-REACHED || echo "network=unreachable"',
        'mkdir -p /tmp/m; mount -t tmpfs none /tmp/m 2>&1 || echo "mount=refused"',
        'chroot / true 2>&1 || echo "chroot=refused"',
        'echo "secret=$SECRET_TOKEN"',
      ].join('\n'),
    });
    expect(task.state, output).toBe('succeeded');
    expect(output).not.toContain('AIRLOCK_API_KEY');
    expect(output).not.toContain(server.workerKey);
    expect(output).not.toMatch(/^AIRLOCK_TASK_TOKEN=/m);
    expect(output).toContain('pid1-token=none');
    expect(output).toMatch(/No such file or directory/);
    expect(output.match(/^\s*lo\s*$/m)).not.toBeNull();
    expect(output).not.toMatch(/^\s*eth0/m);
    expect(output).toContain('network=unreachable');
    expect(output).not.toContain('NETWORK-REACHED');
    expect(output).toContain('mount=refused');
    expect(output).toContain('chroot=refused');
    expect(output).toContain('secret=\n'); // the worker's own environment never reaches a task
  });

  it('a fork bomb hits the pids limit; the worker and the next task are unaffected', async () => {
    const { task, output } = await runTask({ prompt: 'bomb() { bomb | bomb & }; bomb; sleep 5; echo "bomb-done"; exit 0', timeout_seconds: 60 }, WORKER, ['succeeded', 'failed'], 90_000);
    expect(['succeeded', 'failed']).toContain(task.state);
    expect(output).toMatch(/fork: (retry: )?Resource temporarily unavailable|Cannot fork/i);
    const next = await runTask({ prompt: 'echo still-fine' });
    expect(next.task.state).toBe('succeeded');
    expect(next.output).toContain('still-fine');
  }, 120_000);

  it('a task that allocates past its memory limit is reported as container_oom', async () => {
    // `tail -n 1` keeps the whole (newline-free) input in memory: 1 GiB against a 256 MiB container.
    const { task } = await runTask({ prompt: 'head -c 1073741824 /dev/zero | tail -n 1 > /dev/null; echo survived' });
    expect(task.state).toBe('failed');
    expect(task.failure_reason).toBe('container_oom');
    expect(task.message).toMatch(/memory of its container \(256 MiB\)/);
  }, 90_000);

  it('cancel: SIGTERM to the task, SIGKILL after the grace, then the container is removed', async () => {
    const { body: created } = await server.api('/api/v1/tasks', { body: { harness: 'shell', worker_id: WORKER, prompt: 'trap "echo got-term" TERM; echo started; while true; do sleep 1; done' } });
    const info = await containerOf(created.id);
    await eventually(async () => (await outputOf(created.id)).includes('started'), 30_000, 'the task to start');
    const { status } = await server.api(`/api/v1/tasks/${created.id}/cancel`, { method: 'POST' });
    expect(status).toBe(200);
    const task = await waitForTask(server, created.id, ['cancelled'], 60_000);
    expect(task.state).toBe('cancelled');
    await eventually(async () => (await docker.getContainer(info.Id).inspect().catch(() => null)) === null, 20_000, 'the container to be removed');
  }, 90_000);

  it('an image that does not exist fails as image_pull with the registry\'s words', async () => {
    const typo = await runTask({ prompt: 'echo never', image: 'airlock-test/debain-typo:bookworm' });
    expect(typo.task.state).toBe('failed');
    expect(typo.task.failure_reason).toBe('image_pull');
    expect(typo.task.message).toMatch(/could not pull airlock-test\/debain-typo:bookworm: .+/);
  }, 90_000);

  it("applies the task's own size within the worker's maxima, and refuses a size above them", async () => {
    const { body: created } = await server.api('/api/v1/tasks', { body: { harness: 'shell', worker_id: WORKER, prompt: 'sleep 2', resources: { cpus: 0.5, memory: '128m' } } });
    const info = await containerOf(created.id);
    expect(info.HostConfig.NanoCpus).toBe(5e8);
    expect(info.HostConfig.Memory).toBe(128 * 1024 * 1024);
    expect(info.HostConfig.MemorySwap).toBe(128 * 1024 * 1024);
    expect((await waitForTask(server, created.id, ['succeeded', 'failed'], 60_000)).state).toBe('succeeded');

    const { task } = await runTask({ prompt: 'echo never', resources: { memory: '2g' } });
    expect(task.state).toBe('failed');
    expect(task.failure_reason).toBe('rejected');
    expect(task.message).toMatch(/cannot give the task the size it asks for: .*max_memory/);
  }, 90_000);

  it('runs the image the task names, and does not pull an image that is present', async () => {
    const { task, output } = await runTask({ prompt: 'cat /etc/debian_version; git --version', image: TEST_IMAGE });
    expect(task.state, output).toBe('succeeded');
    expect(output).toMatch(/^12\./m);
    expect(output).not.toMatch(/pulling image/);
  });
});

describe('docker backend: read-only root, non-root user, a small /tmp', () => {
  it('runs as the configured user on a read-only root; the workspace and HOME are writable; filling /tmp fails cleanly', async () => {
    const { task, output } = await runTask(
      {
        prompt: [
          'echo "uid=$(id -u):$(id -g)"',
          'touch /rootfs-write 2>&1 || echo "root=read-only"',
          'touch "$AIRLOCK_WORKDIR/ok" "$HOME/ok" && echo "workspace=writable"',
          'dd if=/dev/zero of=/tmp/fill bs=1M count=100 2>&1 | head -2',
          'exit 7',
        ].join('\n'),
      },
      LOCKED,
    );
    expect(output).toContain('uid=1000:1000');
    expect(output).toContain('root=read-only');
    expect(output).toContain('workspace=writable');
    expect(output).toMatch(/No space left on device/);
    expect(task.state).toBe('failed');
    expect(task.exit_code).toBe(7);
    // The worker is unaffected: the next task runs.
    const next = await runTask({ prompt: 'echo next-ok' }, LOCKED);
    expect(next.task.state).toBe('succeeded');
  }, 90_000);
});
