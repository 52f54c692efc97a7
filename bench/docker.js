// The docker backend: task start, image pulls, worker memory, and where the start time goes.
//
// 1. Task start: from POST /api/v1/tasks to the task's first output line (`echo ready`, shell
//    harness) seen by an SSE client, through a real `airlock server` process and a real
//    `airlock worker --backend docker` process. Floor, alternated run by run: `docker run --rm -i`
//    of the same image running the same agent process — the worker's Node binary and the bundled
//    agent from the worker's own runtime directory, mounted read-only, with the container flags
//    the backend's own containerSpec() gives (hardening, limits, network none, init, env, token
//    on stdin) minus the task volume — against a task gateway in this process serving the same
//    spec, from the spawn of `docker run` to the agent's first output event at the gateway.
// 2. Pulls: the transcripts are searched for the worker's "pulling image" line, and the engine's
//    own event log (type image, action pull) is read back for the whole run.
// 3. Worker memory: VmRSS of the worker process idle (connected, no tasks) and with 10 tasks
//    running at once (concurrency 10, tasks that sleep); per-container memory from the engine.
// 4. Where the time goes: the engine's container/volume events of the real runs against the POST;
//    and the DockerBackend class driven in this process with every engine request timed,
//    alternated with the same container started through the engine API without the backend's
//    extra steps, with those steps but no putArchive (what skipping it would give), and with the
//    agent spawned on the host without a container.
//
// Needs a running Docker Engine and the image (default airlock-test/debian:bookworm, built by
// scripts/test-image.sh; BENCH_DOCKER_IMAGE for another). It never pulls: without the image it
// says so and skips.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { TaskGateway } from '../dist/worker/taskgateway/index.js';
import { connectEngine } from '../dist/worker/backends/docker/engine.js';
import { containerSpec } from '../dist/worker/backends/docker/container-spec.js';
import { resolveDockerOptions } from '../dist/worker/backends/docker/options.js';
import { DockerBackend, TASK_DIR, TASK_HOME, TASK_WORKDIR } from '../dist/worker/backends/docker/backend.js';
import { bundledAgentRuntime } from '../dist/worker/backends/agent-command.js';
import { newId } from '../dist/lib/ids.js';
import { createTasks, ms, percentile, report, serverProcess, sseEvents } from './lib.js';

const IMAGE = process.env.BENCH_DOCKER_IMAGE ?? 'airlock-test/debian:bookworm';
const RUNS = Number(process.env.BENCH_DOCKER_RUNS ?? 20);
const BREAKDOWN_RUNS = Number(process.env.BENCH_DOCKER_BREAKDOWN_RUNS ?? 10);
const PARALLEL = 10;
const CLI = resolve(import.meta.dirname, '..', 'bin', 'airlock.js');
const PROMPT = 'echo ready';
const RUN_ID = Math.random().toString(36).slice(2, 8);
const WORKER_ID = `bench-dk-${RUN_ID}`;
const FLOOR_WORKER_ID = `bench-dk-floor-${RUN_ID}`;
const BENCH_LABEL = { 'dev.airlock.bench': RUN_ID };

const load = () => loadavg()[0].toFixed(2);
const median = (values) => percentile(values, 50);
const p90 = (values) => percentile(values, 90);
const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const sleep = (t) => new Promise((r) => setTimeout(r, t));

/** VmRSS of a process (or another of its /proc status fields, e.g. RssAnon), in bytes. */
function rss(pid, field = 'VmRSS') {
  const kib = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kib) * 1024;
}

/** Median of a few VmRSS samples over a second (a GC in the middle of one sample moves it). */
async function rssSettled(pid) {
  const samples = [];
  for (let i = 0; i < 5; i++) {
    samples.push(rss(pid));
    await sleep(250);
  }
  return median(samples);
}

function startWorker(url, key, dir) {
  const child = spawn(
    process.execPath,
    [CLI, 'worker', '--server', url, '--worker-id', WORKER_ID, '--backend', 'docker', '--default-image', IMAGE, '--concurrency', String(PARALLEL),
      '--state-dir', join(dir, 'st'), '--workspace-root', join(dir, 'ws'), '--log-level', 'info'],
    { env: { ...process.env, AIRLOCK_API_KEY: key }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const complaints = [];
  return new Promise((resolveReady, reject) => {
    let out = '';
    let ready = false;
    child.stdout.on('data', (d) => {
      // Keep reading (a full pipe would stall the worker); keep only warnings and errors.
      out += d;
      let i;
      while ((i = out.indexOf('\n')) !== -1) {
        const line = out.slice(0, i);
        out = out.slice(i + 1);
        if (!ready && line.includes('worker:ws:connected')) {
          ready = true;
          resolveReady({ child, complaints });
        }
        if (/"level":(40|50|60)/.test(line)) complaints.push(line);
      }
    });
    child.on('exit', (code) => {
      if (!ready) reject(new Error(`the worker exited with ${code} before connecting: ${complaints.join('\n')}`));
    });
  });
}

const api = (server) => async (path, body) => {
  const response = await fetch(`${server.url}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${server.userKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = await response.json();
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status} ${JSON.stringify(json)}`);
  return json;
};

/** Follow a task's SSE stream until its first output line of its own (not the worker's setup lines). */
async function firstOutput(server, id, started) {
  const response = await fetch(`${server.url}/api/v1/tasks/${id}/events`, { headers: { authorization: `Bearer ${server.userKey}` } });
  let first;
  try {
    for await (const { event, data, receivedMono } of sseEvents(response.body)) {
      if (event === 'end') break;
      if (event !== 'transcript') continue;
      first ??= receivedMono - started;
      if (data.kind === 'output' && data.data?.stream !== 'setup') return { first, output: receivedMono - started };
    }
  } finally {
    await response.body.cancel().catch(() => undefined);
  }
  throw new Error(`task ${id} ended without output`);
}

async function waitForState(call, id, states = ['succeeded', 'failed', 'cancelled']) {
  for (;;) {
    const task = await call(`/api/v1/tasks/${id}`);
    if (states.includes(task.state)) return task;
    await sleep(20);
  }
}

/** Wait until the engine holds nothing of `workerId` (the worker removes containers and volumes after a task). */
async function waitForClean(docker, workerId) {
  const filters = JSON.stringify({ label: [`dev.airlock.worker-id=${workerId}`] });
  for (let i = 0; i < 1500; i++) {
    const containers = await docker.listContainers({ all: true, filters });
    const volumes = (await docker.listVolumes({ filters })).Volumes ?? [];
    if (containers.length === 0 && volumes.length === 0) return;
    await sleep(20);
  }
  throw new Error(`the containers of ${workerId} were not removed`);
}

async function removeOwn(docker, label) {
  const filters = JSON.stringify({ label: [label] });
  for (const c of await docker.listContainers({ all: true, filters })) await docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined);
  for (const v of (await docker.listVolumes({ filters })).Volumes ?? []) await docker.getVolume(v.Name).remove().catch(() => undefined);
}

/** The engine's event log between two times (seconds), as objects. */
async function engineEvents(docker, since, until, filters) {
  const stream = await docker.getEvents({ since, until, filters: JSON.stringify(filters) });
  let text = '';
  for await (const chunk of stream) text += chunk;
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l));
}

/** A task gateway in this process; resolves the agent's first GET /v1/task and its first output. */
async function timedGateway(socketPath, token, spec) {
  let firstOutput;
  const gotOutput = new Promise((r) => (firstOutput = r));
  let firstGet;
  const gotSpecRequest = new Promise((r) => (firstGet = r));
  const gateway = new TaskGateway({
    socketPath,
    token,
    spec,
    onEvents: async (events) => {
      if (events.some((e) => e.kind === 'output')) firstOutput(performance.now());
    },
    onResult: () => {},
  });
  await gateway.start();
  // The agent's first request is GET /v1/task (its spec): when it reaches the gateway, the agent has booted.
  gateway.app.server.prependListener('request', (req) => {
    if (req.url === '/v1/task') firstGet(performance.now());
  });
  return { spec, gateway, gotOutput, gotSpecRequest };
}

/** A task gateway for one floor run. */
function floorGateway(socketPath, token) {
  const spec = { execution_id: newId('exe'), task_id: newId('tsk'), epoch: 1, prompt: PROMPT, harness: 'shell', timeout_seconds: null, title: null };
  return timedGateway(socketPath, token, spec);
}

/** The backend's own container spec for `spec`, minus the task volume: what the floors start. */
function floorContainerSpec(options, runtimeDir, gatewayDir, spec, name) {
  return containerSpec({
    options,
    image: IMAGE,
    name,
    execution: { workerId: FLOOR_WORKER_ID, taskId: spec.task_id, executionId: spec.execution_id, epoch: 1 },
    labels: BENCH_LABEL,
    env: {
      AIRLOCK_TASK_TOKEN_STDIN: '1',
      AIRLOCK_GATEWAY: 'unix:/airlock/gateway/gateway.sock',
      AIRLOCK_WORKDIR: TASK_WORKDIR,
      AIRLOCK_EXECUTION_ID: spec.execution_id,
      HOME: TASK_HOME,
    },
    command: ['/airlock/runtime/node', '/airlock/runtime/agent.mjs', 'run'],
    workingDir: TASK_WORKDIR,
    runtimeDir,
    gatewayDir,
    stdin: true,
  });
}

/** `docker run` flags for a create spec (the fields containerSpec sets). */
function runFlags(spec) {
  const host = spec.HostConfig;
  const flags = ['run', '--rm', '-i', '--name', spec.name];
  for (const m of host.Mounts) flags.push('--mount', `type=${m.Type},src=${m.Source},dst=${m.Target}${m.ReadOnly ? ',readonly' : ''}`);
  for (const c of host.CapDrop ?? []) flags.push('--cap-drop', c);
  for (const c of host.CapAdd ?? []) flags.push('--cap-add', c);
  for (const s of host.SecurityOpt ?? []) flags.push('--security-opt', s);
  flags.push('--network', host.NetworkMode, '--ipc', host.IpcMode, '--cgroupns', host.CgroupnsMode, '--pids-limit', String(host.PidsLimit));
  flags.push('--memory', String(host.Memory), '--memory-swap', String(host.MemorySwap), '--cpus', String(host.NanoCpus / 1e9));
  if (host.Init) flags.push('--init');
  if (host.ReadonlyRootfs) flags.push('--read-only');
  for (const [path, options] of Object.entries(host.Tmpfs ?? {})) flags.push('--tmpfs', `${path}:${options}`);
  if (host.Runtime) flags.push('--runtime', host.Runtime);
  if (spec.User) flags.push('--user', spec.User);
  for (const [k, v] of Object.entries(spec.Labels)) flags.push('--label', `${k}=${v}`);
  for (const e of spec.Env) flags.push('-e', e);
  flags.push('-w', spec.WorkingDir, '--stop-signal', spec.StopSignal, '--entrypoint', spec.Entrypoint[0], spec.Image, ...spec.Cmd);
  return flags;
}

function gatewayDirFor(root) {
  const dir = join(root, Math.random().toString(36).slice(2, 10));
  mkdirSync(dir, { mode: 0o711 });
  chmodSync(dir, 0o711);
  return dir;
}

/** Floor: `docker run --rm -i` of the same container, from the spawn to the agent's first output at the gateway. */
async function cliFloorOnce(ctx) {
  const gatewayDir = gatewayDirFor(ctx.floorRoot);
  const token = `floor-${Math.random().toString(36).slice(2)}`;
  const g = await floorGateway(join(gatewayDir, 'gateway.sock'), token);
  const spec = floorContainerSpec(ctx.options, ctx.runtimeDir, gatewayDir, g.spec, `airlock-${g.spec.execution_id}`);
  const started = performance.now();
  const child = spawn('docker', runFlags(spec), { stdio: ['pipe', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  child.stdin.end(`${token}\n`);
  const spawnedAt = Date.now();
  const exited = new Promise((r) => child.on('exit', r));
  const at = await Promise.race([g.gotOutput, exited.then(() => sleep(1000)).then(() => Promise.reject(new Error(`docker run exited without output: ${err}`)))]);
  const get = await g.gotSpecRequest;
  await exited; // --rm: the CLI waits for the removal
  await g.gateway.close();
  rmSync(gatewayDir, { recursive: true, force: true });
  return { output: at - started, firstGet: get - started, name: spec.name, t0: spawnedAt };
}

/** One real task on the worker: POST → first output on SSE; then its transcript and the engine's events. */
async function realOnce(ctx) {
  const call = api(ctx.server);
  const started = performance.now();
  const postedAt = Date.now();
  const task = await call('/api/v1/tasks', { prompt: PROMPT, harness: 'shell' });
  const { first, output } = await firstOutput(ctx.server, task.id, started);
  const done = await waitForState(call, task.id);
  const events = await call(`/api/v1/tasks/${task.id}/events?format=json`);
  const text = events.filter((e) => e.kind === 'output').map((e) => e.data.text).join('');
  await waitForClean(ctx.docker, WORKER_ID); // runs never overlap with the previous one's removal
  return { first, output, t0: postedAt, name: `airlock-${done.executions?.[0]?.id}`, state: done.state, pulling: /pulling image/i.test(text), setupLines: events.filter((e) => e.kind === 'output' && e.data?.stream === 'setup').length };
}

/** The engine's view of one run: when (after the POST, or the spawn of `docker run`) it created the volume and the container, attached, started. */
function engineTimeline(events, run) {
  const at = (type, action) => {
    const e = events.find((x) => x.Type === type && x.Action === action && (x.Actor?.Attributes?.name === run.name || x.Actor?.ID === run.name));
    return e ? e.timeNano / 1e6 - run.t0 : NaN;
  };
  return { volume: at('volume', 'create'), create: at('container', 'create'), attach: at('container', 'attach'), start: at('container', 'start') };
}

/** Task start: real runs alternated with the `docker run` floor. */
async function taskStart(ctx) {
  const floors = [];
  const reals = [];
  process.stdout.write(`docker backend task start: ${RUNS} runs each way, alternating (after one warm-up each), load ${load()}\n`);
  await cliFloorOnce(ctx);
  await realOnce(ctx);
  const loads = [loadavg()[0]];
  for (let i = 0; i < RUNS; i++) {
    floors.push(await cliFloorOnce(ctx));
    reals.push(await realOnce(ctx));
    loads.push(loadavg()[0]);
  }
  return { floors, reals, loads };
}

/** Memory: the worker idle, with PARALLEL sleeping tasks, and idle again. */
async function memory(ctx) {
  const call = api(ctx.server);
  const idle = await rssSettled(ctx.worker.pid); // after the task-start runs
  const started = performance.now();
  const { ids } = await createTasks(ctx.server.url, ctx.server.userKey, PARALLEL, PARALLEL, { prompt: 'echo started; sleep 60', harness: 'shell' });
  const starts = await Promise.all(ids.map((id) => firstOutput(ctx.server, id, started)));
  await sleep(1000);
  const busy = await rssSettled(ctx.worker.pid);
  const loadBusy = load();
  const containers = await ctx.docker.listContainers({ filters: JSON.stringify({ label: [`dev.airlock.worker-id=${WORKER_ID}`] }) });
  const perContainer = [];
  const agentRss = [];
  for (const c of containers) {
    const container = ctx.docker.getContainer(c.Id);
    // The processes of the container by their host pids: the agent is the Node one.
    const top = await container.top({ ps_args: '-o pid,comm' });
    const pidAt = top.Titles.indexOf('PID');
    const node = top.Processes.find((p) => p.some((f) => f === 'node'));
    if (node) agentRss.push({ rss: rss(Number(node[pidAt])), anon: rss(Number(node[pidAt]), 'RssAnon') });
    const s = await container.stats({ stream: false, 'one-shot': true });
    const m = s.memory_stats ?? {};
    // What `docker stats` shows: usage minus the inactive page cache (cgroup v1: total_inactive_file; v2: inactive_file).
    const inactive = m.stats?.total_inactive_file ?? m.stats?.inactive_file ?? 0;
    perContainer.push(m.usage - inactive);
  }
  for (const id of ids) await call(`/api/v1/tasks/${id}/cancel`, {});
  for (const id of ids) await waitForState(call, id);
  await waitForClean(ctx.docker, WORKER_ID);
  await sleep(1000);
  const after = await rssSettled(ctx.worker.pid);
  // Its floor: as many `docker run`s of the agent started at once.
  const floorAll = await Promise.all(Array.from({ length: PARALLEL }, () => cliFloorOnce(ctx)));
  return { idle, busy, after, running: containers.length, perContainer, agentRss, loadBusy, startAll: starts.map((s) => s.output), floorAll: floorAll.map((f) => f.output) };
}

/**
 * Times every request the backend sends the engine (docker-modem's dial, from the call to its
 * answer: for attach, to the hijacked connection), named by method and path.
 */
function timeEngineRequests(docker, sink) {
  const modem = docker.modem;
  const dial = modem.dial.bind(modem);
  modem.dial = (options, callback) => {
    const path = options.path.replace(/\?.*$/, '');
    const step =
      /^\/images\/.*\/json$/.test(path) ? 'image inspect' :
      path === '/volumes/create' ? 'volume create' :
      path === '/containers/create' ? 'container create' :
      /\/archive$/.test(path) ? 'putArchive (task dirs)' :
      /\/attach$/.test(path) ? 'attach stdin' :
      /\/start$/.test(path) ? 'container start' :
      /\/wait$/.test(path) ? null : `${options.method} ${path}`;
    const begin = performance.now();
    return dial(options, (err, data) => {
      if (step) sink.push({ step, begin, end: performance.now() });
      callback(err, data);
    });
  };
}

/** The backend class in this process, every engine request timed; alternated with the engine-API floor and the host spawn. */
async function breakdown(ctx) {
  const backend = new DockerBackend({
    docker: ctx.options,
    workspaceRoot: join(ctx.dir, 'bk'),
    runtime: { node: process.execPath, bundle: bundledAgentRuntime() },
    noCleanup: false,
    labels: BENCH_LABEL,
  });
  await backend.init();
  const calls = [];
  timeEngineRequests(backend.engine.docker, calls);
  const workerId = `bench-dk-bk-${RUN_ID}`;

  async function backendOnce() {
    const token = `bk-${Math.random().toString(36).slice(2)}`;
    const spec = { execution_id: newId('exe'), task_id: newId('tsk'), epoch: 1, prompt: PROMPT, harness: 'shell', timeout_seconds: null, title: null };
    calls.length = 0;
    const t0 = performance.now();
    const prepared = await backend.prepare({ spec, workerId });
    const tPrepared = performance.now();
    const { gateway, gotOutput, gotSpecRequest: gotGet } = await timedGateway(prepared.gatewaySocketPath, token, spec);
    const tGateway = performance.now();
    const running = await backend.start({
      prepared,
      spec,
      env: { AIRLOCK_GATEWAY: `unix:${prepared.gatewaySocketPath}`, AIRLOCK_TASK_TOKEN: token, AIRLOCK_EXECUTION_ID: spec.execution_id, AIRLOCK_WORKDIR: prepared.workdir },
      onOutput: () => {},
    });
    const result = await Promise.race([gotOutput.then((t) => ({ t })), running.exited.then((s) => ({ exit: s }))]);
    if (result.exit) throw new Error(`the backend's container exited without output: ${JSON.stringify(result.exit)}`);
    const tOutput = result.t;
    const tGet = await gotGet;
    const steps = { prepare: tPrepared - t0, 'task gateway start': tGateway - tPrepared };
    for (const c of calls) steps[c.step] = (steps[c.step] ?? 0) + (c.end - c.begin);
    const started = calls.find((c) => c.step === 'container start');
    steps['engine calls, first to last'] = started.end - calls[0].begin;
    steps['start answered → agent GET /v1/task'] = tGet - started.end;
    steps['GET /v1/task → first output event'] = tOutput - tGet;
    steps.total = tOutput - t0;
    await running.exited;
    await gateway.close();
    await backend.cleanup(spec.execution_id);
    return steps;
  }

  /** The same container through the engine API without the backend's own steps (no image inspect, volume or putArchive). */
  async function apiFloorOnce() {
    const docker = ctx.docker;
    const gatewayDir = gatewayDirFor(ctx.floorRoot);
    const token = `api-${Math.random().toString(36).slice(2)}`;
    const g = await floorGateway(join(gatewayDir, 'gateway.sock'), token);
    const spec = floorContainerSpec(ctx.options, ctx.runtimeDir, gatewayDir, g.spec, `airlock-${g.spec.execution_id}`);
    const t0 = performance.now();
    const container = await docker.createContainer(spec);
    const tCreated = performance.now();
    const stdin = await container.attach({ stream: true, stdin: true, hijack: true });
    const tAttached = performance.now();
    await container.start();
    const tStarted = performance.now();
    stdin.end(`${token}\n`);
    const tOutput = await g.gotOutput;
    const tGet = await g.gotSpecRequest;
    await container.wait();
    await container.remove({ force: true, v: true });
    await g.gateway.close();
    rmSync(gatewayDir, { recursive: true, force: true });
    return { 'container create': tCreated - t0, 'attach stdin': tAttached - tCreated, 'container start': tStarted - tAttached, 'start answered → agent GET /v1/task': tGet - tStarted, 'GET /v1/task → first output event': tOutput - tGet, total: tOutput - t0 };
  }

  /**
   * The backend's engine calls minus putArchive: the task volume created and mounted, the working
   * directory left to the engine (runc creates a missing one, root-owned, at start). What the
   * backend's start would cost without writing the task directories in a separate request.
   */
  async function volumeNoArchiveOnce() {
    const docker = ctx.docker;
    const gatewayDir = gatewayDirFor(ctx.floorRoot);
    const token = `vol-${Math.random().toString(36).slice(2)}`;
    const g = await floorGateway(join(gatewayDir, 'gateway.sock'), token);
    const name = `airlock-${g.spec.execution_id}`;
    const spec = floorContainerSpec(ctx.options, ctx.runtimeDir, gatewayDir, g.spec, name);
    spec.HostConfig.Mounts.push({ Type: 'volume', Source: name, Target: TASK_DIR, ReadOnly: false });
    const t0 = performance.now();
    await docker.getImage(IMAGE).inspect();
    await docker.createVolume({ Name: name, Labels: { ...BENCH_LABEL } });
    const container = await docker.createContainer(spec);
    const stdin = await container.attach({ stream: true, stdin: true, hijack: true });
    const tAttached = performance.now();
    await container.start();
    const tStarted = performance.now();
    stdin.end(`${token}\n`);
    const tOutput = await g.gotOutput;
    await container.wait();
    await container.remove({ force: true, v: true });
    await docker.getVolume(name).remove();
    await g.gateway.close();
    rmSync(gatewayDir, { recursive: true, force: true });
    return { 'inspect + volume + create + attach': tAttached - t0, 'container start': tStarted - tAttached, total: tOutput - t0 };
  }

  /** No container: the same Node binary and bundle spawned on the host, against the same kind of gateway. */
  async function hostOnce() {
    const gatewayDir = gatewayDirFor(ctx.floorRoot);
    const token = `host-${Math.random().toString(36).slice(2)}`;
    const g = await floorGateway(join(gatewayDir, 'gateway.sock'), token);
    const workdir = join(gatewayDir, 'work');
    mkdirSync(workdir);
    const t0 = performance.now();
    const child = spawn(join(ctx.runtimeDir, 'node'), [join(ctx.runtimeDir, 'agent.mjs'), 'run'], {
      env: { PATH: process.env.PATH, HOME: workdir, AIRLOCK_GATEWAY: `unix:${join(gatewayDir, 'gateway.sock')}`, AIRLOCK_TASK_TOKEN: token, AIRLOCK_WORKDIR: workdir, AIRLOCK_EXECUTION_ID: g.spec.execution_id },
      cwd: workdir,
      stdio: 'ignore',
    });
    const tOutput = await g.gotOutput;
    const tGet = await g.gotSpecRequest;
    await new Promise((r) => child.on('exit', r));
    await g.gateway.close();
    rmSync(gatewayDir, { recursive: true, force: true });
    return { 'spawn → agent GET /v1/task': tGet - t0, 'GET /v1/task → first output event': tOutput - tGet, total: tOutput - t0 };
  }

  process.stdout.write(`\ndocker backend start, step by step: ${BREAKDOWN_RUNS} runs each, alternating (after one warm-up each), load ${load()}\n`);
  await backendOnce();
  await apiFloorOnce();
  await volumeNoArchiveOnce();
  await hostOnce();
  const rows = { backend: [], api: [], volume: [], host: [] };
  for (let i = 0; i < BREAKDOWN_RUNS; i++) {
    rows.backend.push(await backendOnce());
    rows.api.push(await apiFloorOnce());
    rows.volume.push(await volumeNoArchiveOnce());
    rows.host.push(await hostOnce());
  }
  await backend.close();
  await removeOwn(ctx.docker, `dev.airlock.worker-id=${workerId}`);
  const medians = {};
  for (const [kind, list] of Object.entries(rows)) {
    medians[kind] = {};
    for (const key of Object.keys(list[0])) medians[kind][key] = median(list.map((r) => r[key] ?? 0));
  }
  medians.backend_total_p90 = p90(rows.backend.map((r) => r.total));
  medians.api_total_p90 = p90(rows.api.map((r) => r.total));
  medians.volume_total_p90 = p90(rows.volume.map((r) => r.total));
  medians.host_total_p90 = p90(rows.host.map((r) => r.total));
  return medians;
}

export async function run() {
  let engine;
  try {
    engine = await connectEngine();
  } catch (err) {
    process.stdout.write(`docker backend: skipped — no Docker Engine (${err.message})\n`);
    return { skipped: 'no Docker Engine' };
  }
  const docker = engine.docker;
  const imageInfo = await docker.getImage(IMAGE).inspect().catch(() => undefined);
  if (!imageInfo) {
    process.stdout.write(`docker backend: skipped — the image ${IMAGE} is not on the engine (bash scripts/test-image.sh builds it; this benchmark never pulls)\n`);
    return { skipped: `no image ${IMAGE}` };
  }
  try {
    execFileSync('docker', ['version', '--format', '{{.Client.Version}}'], { stdio: 'ignore' });
  } catch {
    process.stdout.write('docker backend: skipped — the docker CLI (for the `docker run` floor) does not run here\n');
    return { skipped: 'no docker CLI' };
  }
  const engineInfo = await docker.info();
  const dir = mkdtempSync(join(tmpdir(), 'al-bd-'));
  const floorRoot = join(dir, 'fl');
  mkdirSync(floorRoot, { mode: 0o700 });
  const options = resolveDockerOptions({ default_image: IMAGE }, { engineCpus: engineInfo.NCPU });
  const since = Math.floor(Date.now() / 1000) - 1;
  const server = await serverProcess();
  const { child: worker, complaints } = await startWorker(server.url, server.workerKey, dir);
  const runtimeDir = join(dir, 'ws', readdirSync(join(dir, 'ws')).find((n) => n.startsWith('.runtime-') && !n.endsWith('.tmp')));
  const ctx = { docker, server, worker, dir, floorRoot, options, runtimeDir };
  process.stdout.write(`Docker Engine ${engine.version} (API ${engine.apiVersion}), ${engineInfo.Driver}, cgroup v${engineInfo.CgroupVersion}, image ${IMAGE} (${mib(imageInfo.Size)}); worker pid ${worker.pid}\n`);
  try {
    await sleep(2000);
    const idleFresh = await rssSettled(worker.pid);
    const start = await taskStart(ctx);
    const floorOut = start.floors.map((f) => f.output);
    const realOut = start.reals.map((r) => r.output);
    const failedRuns = start.reals.filter((r) => r.state !== 'succeeded').length;
    const res = {
      image: IMAGE,
      engine: engine.version,
      runs: RUNS,
      load_1m: { min: Math.min(...start.loads), max: Math.max(...start.loads) },
      floor_docker_run_median_ms: median(floorOut),
      floor_docker_run_p90_ms: p90(floorOut),
      floor_first_get_median_ms: median(start.floors.map((f) => f.firstGet)),
      start_first_event_median_ms: median(start.reals.map((r) => r.first)),
      start_first_output_median_ms: median(realOut),
      start_first_output_p90_ms: p90(realOut),
    };
    res.overhead_median_ms = res.start_first_output_median_ms - res.floor_docker_run_median_ms;
    res.overhead_p90_ms = res.start_first_output_p90_ms - res.floor_docker_run_p90_ms;
    report([
      ['docker run --rm → first output (floor)', `${ms(res.floor_docker_run_median_ms)} / ${ms(res.floor_docker_run_p90_ms)}`, `median / p90; agent's GET /v1/task at ${ms(res.floor_first_get_median_ms)}`],
      ['POST → first event on SSE', ms(res.start_first_event_median_ms), 'the worker\'s "starting" event'],
      ['POST → first output on SSE', `${ms(res.start_first_output_median_ms)} / ${ms(res.start_first_output_p90_ms)}`, 'median / p90'],
      ['over the floor', `${ms(res.overhead_median_ms)} / ${ms(res.overhead_p90_ms)}`, `median / p90; goal < 100 ms at the median ${res.overhead_median_ms < 100 ? '✔' : '✘'}`],
      ['load average (1 min)', `${res.load_1m.min.toFixed(2)}–${res.load_1m.max.toFixed(2)}`, `${failedRuns} of ${RUNS} tasks did not succeed`],
    ]);

    // The engine's view of both paths: what happened when, after the POST / the spawn of docker run.
    const lifecycle = await engineEvents(docker, since, Math.ceil(Date.now() / 1000) + 1, { type: ['container', 'volume'] });
    const timeline = (runs) => {
      const lines = runs.map((r) => engineTimeline(lifecycle, r));
      return Object.fromEntries(['volume', 'create', 'attach', 'start'].map((k) => [k, median(lines.map((t) => t[k]).filter((v) => !Number.isNaN(v)))]));
    };
    res.engine_timeline_median_ms = { worker: timeline(start.reals), docker_run: timeline(start.floors) };
    const { worker: w, docker_run: f } = res.engine_timeline_median_ms;
    process.stdout.write(`\ndocker backend task start, the engine's own events (medians; engine clock, ms resolution)\n`);
    report([
      ['volume created', ms(w.volume), 'after the POST (docker run: no volume)'],
      ['container created', ms(w.create), `docker run: ${ms(f.create)} after its spawn`],
      ['stdin attached', ms(w.attach), `docker run: ${ms(f.attach)}`],
      ['container started', ms(w.start), `docker run: ${ms(f.start)}`],
      ['→ first output', ms(res.start_first_output_median_ms), `docker run: ${ms(res.floor_docker_run_median_ms)}`],
    ]);

    const mem = await memory(ctx);
    res.memory = {
      worker_rss_idle_fresh_bytes: idleFresh,
      worker_rss_idle_bytes: mem.idle,
      worker_rss_busy_bytes: mem.busy,
      worker_rss_after_bytes: mem.after,
      running: mem.running,
      container_memory_median_bytes: median(mem.perContainer),
      container_memory_max_bytes: Math.max(...mem.perContainer),
      agent_rss_median_bytes: median(mem.agentRss.map((a) => a.rss)),
      agent_rss_anon_median_bytes: median(mem.agentRss.map((a) => a.anon)),
      start_all_median_ms: median(mem.startAll),
      start_all_max_ms: Math.max(...mem.startAll),
      floor_all_median_ms: median(mem.floorAll),
      floor_all_max_ms: Math.max(...mem.floorAll),
      load_busy: Number(mem.loadBusy),
    };
    process.stdout.write(`\ndocker backend worker memory (VmRSS of the worker process), load ${mem.loadBusy} with ${PARALLEL} running\n`);
    report([
      ['idle, just connected', mib(idleFresh), 'before any task'],
      [`idle, after ${2 * (RUNS + 1)} task starts`, mib(mem.idle), ''],
      [`${mem.running} tasks running (sleep)`, mib(mem.busy), `+${mib(mem.busy - mem.idle)} over idle, ${mib((mem.busy - mem.idle) / PARALLEL)} per task`],
      ['idle again after them', mib(mem.after), ''],
      ['one task container', mib(res.memory.container_memory_median_bytes), `median (max ${mib(res.memory.container_memory_max_bytes)}), as docker stats counts it`],
      ['its agent process (VmRSS)', mib(res.memory.agent_rss_median_bytes), `median; of which its own (RssAnon) ${mib(res.memory.agent_rss_anon_median_bytes)}, the rest mostly the Node binary's shared pages`],
      [`${PARALLEL} tasks created at once → first output`, `${ms(res.memory.start_all_median_ms)} / ${ms(res.memory.start_all_max_ms)}`, `median / slowest; ${PARALLEL} docker runs at once: ${ms(res.memory.floor_all_median_ms)} / ${ms(res.memory.floor_all_max_ms)}`],
    ]);

    const steps = await breakdown(ctx);
    res.breakdown = steps;
    process.stdout.write('  (medians; the backend class in this process, every engine request timed)\n');
    const rows = [];
    for (const [key, value] of Object.entries(steps.backend)) rows.push([`backend: ${key}`, ms(value), key === 'total' ? `p90 ${ms(steps.backend_total_p90)}` : '']);
    for (const [key, value] of Object.entries(steps.api)) rows.push([`engine API, no backend steps: ${key}`, ms(value), key === 'total' ? `p90 ${ms(steps.api_total_p90)}` : '']);
    for (const [key, value] of Object.entries(steps.volume)) rows.push([`engine API + task volume, no putArchive: ${key}`, ms(value), key === 'total' ? `p90 ${ms(steps.volume_total_p90)}` : '']);
    for (const [key, value] of Object.entries(steps.host)) rows.push([`no container (host spawn): ${key}`, ms(value), key === 'total' ? `p90 ${ms(steps.host_total_p90)}` : '']);
    report(rows);

    // Pulls: none by this worker (its transcripts), none of this image on the engine (its event log).
    const pulls = await engineEvents(docker, since, Math.ceil(Date.now() / 1000) + 1, { type: ['image'], event: ['pull'] });
    const ours = pulls.filter((e) => (e.Actor?.ID ?? e.id ?? '') === IMAGE);
    res.pulls = {
      transcripts_with_pulling_line: start.reals.filter((r) => r.pulling).length,
      setup_lines: start.reals.reduce((n, r) => n + r.setupLines, 0),
      engine_pull_events_of_image: ours.length,
      engine_pull_events_other: pulls.length - ours.length,
    };
    process.stdout.write(`\ndocker backend image pulls during the whole run\n`);
    report([
      ['transcripts with "pulling image"', `${res.pulls.transcripts_with_pulling_line} of ${start.reals.length}`, `${res.pulls.setup_lines} setup lines in all`],
      [`engine pull events for ${IMAGE}`, String(res.pulls.engine_pull_events_of_image), `other images pulled on the engine meanwhile (not by this benchmark): ${res.pulls.engine_pull_events_other}`],
    ]);
    if (complaints.length > 0) process.stdout.write(`\nthe worker logged ${complaints.length} warnings/errors, first: ${complaints[0]}\n`);
    return res;
  } finally {
    worker.kill('SIGTERM');
    await new Promise((r) => worker.on('exit', r));
    await removeOwn(docker, `dev.airlock.worker-id=${WORKER_ID}`);
    await removeOwn(docker, `dev.airlock.bench=${RUN_ID}`);
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
