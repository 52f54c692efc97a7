/**
 * The docker backend: one hardened container per execution (container-spec.ts), from the task's
 * image or the worker's default, with the agent runtime — this worker's own Node binary and the
 * bundled agent — mounted read-only, and the task gateway's socket directory mounted in. The
 * task's files live in a per-execution volume (`/airlock/task`: `work/` is the working
 * directory, `home/` is HOME) that the engine owns and removes.
 *
 * Lifecycle of one execution: prepare (gateway directory) → start: image by pull policy → volume
 * → container created → its directories written → stdin attached → started → the task token
 * written to stdin (never in the environment) → wait → stop (SIGTERM, grace, SIGKILL: the
 * engine's stop) → cleanup (container and volume removed, unless --no-cleanup).
 *
 * Containers outlive the worker: a worker that drains or is killed leaves them running, and the
 * next start of the same worker finds them by label and reattaches (`reattach`); those it cannot
 * take over are stopped and removed by `recover`, and reported as leftovers. A periodic sweep
 * removes exited containers (and their volumes) of this worker that nothing tracks.
 *
 * Invariants:
 * - Every container and volume carries the labels dev.airlock.worker-id, task-id, execution-id
 *   and epoch; the worker only ever touches objects with its own worker id.
 * - The Docker socket is never mounted into a container (checked again on every spec).
 * - `stop` and `cleanup` are idempotent and safe for unknown ids; `exited` never rejects — an
 *   engine that goes away is waited for, and the outcome is read back when it returns.
 */
import { createHash } from 'node:crypto';
import { chmod, copyFile, link, mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { constants } from 'node:os';
import path from 'node:path';
import { setMaxListeners } from 'node:events';
import { PassThrough } from 'node:stream';
import type Dockerode from 'dockerode';
import { pack } from 'tar-stream';
import { silentLog, type Log } from '../../../lib/log.js';
import { describeError } from '../../../protocol/errors.js';
import { AGENT_ENV } from '../../../protocol/gateway.js';
import { ExecutionId } from '../../../protocol/task.js';
import { assertSocketPathFits } from '../../taskgateway/socket.js';
import type { Backend, ExitStatus, Leftover, PrepareRequest, PreparedEnvironment, Reattached, RunningExecution, StartRequest } from '../backend.js';
import { AIRLOCK_GATEWAY_DIR, AIRLOCK_RUNTIME_DIR, LABEL_EPOCH, LABEL_EXECUTION_ID, LABEL_TASK_ID, LABEL_WORKER_ID, containerSpec, identityLabels } from './container-spec.js';
import { connectEngine, type EngineConnection, type EngineEnv } from './engine.js';
import { ImagePullError, engineMessage, ensureImage } from './images.js';
import { resourcesFor, type DockerOptions, type ResourceOverrides } from './options.js';
import { AIRLOCK_MOUNT_ROOT } from './volumes.js';

/** Where the task's volume is mounted, and its two directories. */
export const TASK_DIR = `${AIRLOCK_MOUNT_ROOT}/task`;
export const TASK_WORKDIR = `${TASK_DIR}/work`;
export const TASK_HOME = `${TASK_DIR}/home`;
const GATEWAY_SOCKET_NAME = 'gateway.sock';
/** Keep this much of the agent runtime's own output for `ExitStatus.diagnostics`. */
const DIAGNOSTICS_LINES = 40;
/** How often exited containers nobody tracks are removed. */
export const SWEEP_INTERVAL_MS = 60_000;
/** How long an execution waits for a vanished Docker Engine to come back before giving up on it. */
const ENGINE_RETURN_TIMEOUT_MS = 10 * 60_000;
const ENGINE_POLL_MS = 1_000;
/** While a container runs, the engine is pinged this often, and given this long to answer. */
const ENGINE_WATCH_MS = 5_000;
const ENGINE_PING_TIMEOUT_MS = 3_000;

export interface DockerBackendOptions {
  docker: DockerOptions;
  /** Host directory for per-execution gateway sockets and the runtime copy (made 0700). */
  workspaceRoot: string;
  /** The agent runtime to mount: a Node binary and the bundled agent (dist/agent-runtime/agent.mjs). */
  runtime: { node: string; bundle: string };
  noCleanup: boolean;
  /** DOCKER_HOST and friends (default: the worker's environment). */
  engineEnv?: EngineEnv;
  /** Extra labels on every container (tests mark theirs). */
  labels?: Record<string, string>;
  sweepIntervalMs?: number;
  log?: Log;
}

interface Tracked {
  executionId: string;
  taskId: string;
  epoch: number;
  workerId: string;
  name: string;
  gatewayDir: string;
  stopRequested: boolean;
  started: boolean;
  exited?: Promise<ExitStatus>;
}

const containerName = (executionId: string) => `airlock-${executionId}`;

export class DockerBackend implements Backend {
  readonly name = 'docker' as const;
  private readonly root: string;
  private readonly log: Log;
  private readonly executions = new Map<string, Tracked>();
  private engine: EngineConnection | undefined;
  private runtimeDir: string | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<unknown> | undefined;
  private workerId: string | undefined;
  /** Aborts the engine requests that watch containers (waits): closing the worker must not wait for tasks. */
  private readonly closing = new AbortController();

  constructor(private readonly options: DockerBackendOptions) {
    this.root = path.resolve(options.workspaceRoot);
    this.log = options.log ?? silentLog;
    // Every watched container listens on `closing`: no listener-count warning at high concurrency.
    setMaxListeners(0, this.closing.signal);
  }

  /** The host directory of one execution's gateway socket (mounted read-only at AIRLOCK_GATEWAY_DIR). */
  private gatewayDir(executionId: string): string {
    return path.join(this.root, executionId);
  }

  private get docker(): Dockerode {
    if (!this.engine) throw new Error('the docker backend was not initialised — call init() first');
    return this.engine.docker;
  }

  /** The engine the backend talks to (after init). */
  get engineInfo(): Omit<EngineConnection, 'docker'> | undefined {
    if (!this.engine) return undefined;
    const { docker: _docker, ...info } = this.engine;
    return info;
  }

  async init(): Promise<void> {
    assertSocketPathFits(
      path.join(this.root, 'exe_00000000000000000000', GATEWAY_SOCKET_NAME),
      `the docker backend puts each task's gateway socket at <workspace root>/<execution id>/${GATEWAY_SOCKET_NAME}, which does not fit under ${this.root}; choose a shorter --workspace-root`,
    );
    this.engine = await connectEngine(this.options.engineEnv ?? process.env);
    this.log.info({ engine: this.engine.target, version: this.engine.version, api: this.engine.apiVersion }, 'docker backend: connected to the Docker Engine');
    for (const warning of this.options.docker.warnings) this.log.warn({}, warning);
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    await chmod(this.root, 0o700);
    this.runtimeDir = await this.prepareRuntime();
    await this.checkCpus();
    if (this.options.docker.runtime) {
      const info = (await this.docker.info()) as { Runtimes?: Record<string, unknown> };
      if (!info.Runtimes || !(this.options.docker.runtime in info.Runtimes)) {
        throw new Error(
          `docker.runtime is ${this.options.docker.runtime}, but the Docker Engine has no such runtime (it has: ${Object.keys(info.Runtimes ?? {}).join(', ') || 'none'}) — install it and add it to the engine's daemon.json "runtimes", or remove docker.runtime`,
        );
      }
    }
  }

  /** More CPUs than the engine has fails every container at create: say so at start instead. */
  private async checkCpus(): Promise<void> {
    const info = (await this.docker.info()) as { NCPU?: number };
    const { cpus, maxCpus } = this.options.docker;
    if (typeof info.NCPU !== 'number' || Math.max(cpus, maxCpus) <= info.NCPU) return;
    const field = maxCpus > cpus ? 'max_cpus' : 'cpus';
    throw new Error(`docker.${field} is ${Math.max(cpus, maxCpus)}, but the Docker Engine has ${info.NCPU} CPUs, and it refuses such containers — set docker.cpus (and max_cpus) to at most ${info.NCPU}`);
  }

  /**
   * The runtime directory mounted into every container: the worker's Node binary and the agent
   * bundle, under a name derived from their contents, so a worker upgrade never changes the
   * files under a running (reattachable) container. Hard links when possible, else copies.
   */
  private async prepareRuntime(): Promise<string> {
    const { node, bundle } = this.options.runtime;
    const bundleBytes = await readFile(bundle).catch(() => {
      throw new Error(`the agent runtime bundle ${bundle} is missing — run \`npm run build\` in the Airlock installation`);
    });
    const nodeStat = await stat(node);
    const hash = createHash('sha256').update(bundleBytes).update(`${process.version}:${nodeStat.size}:${nodeStat.mtimeMs}`).digest('hex').slice(0, 16);
    const dir = path.join(this.root, `.runtime-${hash}`);
    if (await stat(path.join(dir, 'agent.mjs')).then(() => true, () => false)) return dir;
    const building = `${dir}.${process.pid}.tmp`;
    await rm(building, { recursive: true, force: true });
    await mkdir(building, { recursive: true, mode: 0o755 });
    await chmod(building, 0o755);
    await link(node, path.join(building, 'node')).catch(() => copyFile(node, path.join(building, 'node')));
    await chmod(path.join(building, 'node'), 0o755);
    await copyFile(bundle, path.join(building, 'agent.mjs'));
    await chmod(path.join(building, 'agent.mjs'), 0o644);
    await rename(building, dir).catch(async (err: unknown) => {
      // Another worker process on this root won the race: use its copy.
      await rm(building, { recursive: true, force: true });
      if (!(await stat(path.join(dir, 'agent.mjs')).then(() => true, () => false))) throw err;
    });
    return dir;
  }

  async prepare(request: PrepareRequest): Promise<PreparedEnvironment> {
    const { spec, workerId } = request;
    this.workerId = workerId;
    const gatewayDir = this.gatewayDir(spec.execution_id);
    // 0711: a task running as any user can reach the socket inside (mounted read-only); the
    // workspace root above it (0700) keeps other host users out.
    await mkdir(gatewayDir, { recursive: true, mode: 0o711 });
    await chmod(gatewayDir, 0o711);
    if (!this.executions.has(spec.execution_id)) {
      this.executions.set(spec.execution_id, {
        executionId: spec.execution_id,
        taskId: spec.task_id,
        epoch: spec.epoch,
        workerId,
        name: containerName(spec.execution_id),
        gatewayDir,
        stopRequested: false,
        started: false,
      });
    }
    return { executionId: spec.execution_id, gatewaySocketPath: path.join(gatewayDir, GATEWAY_SOCKET_NAME), workdir: TASK_WORKDIR };
  }

  async start(request: StartRequest): Promise<RunningExecution> {
    const executionId = request.prepared.executionId;
    const tracked = this.executions.get(executionId);
    if (!tracked) throw new Error(`execution ${executionId} was not prepared by this docker backend — call prepare() first`);
    tracked.exited ??= this.run(tracked, request);
    return { executionId, exited: tracked.exited };
  }

  private async run(tracked: Tracked, request: StartRequest): Promise<ExitStatus> {
    const image = request.spec.image ?? this.options.docker.defaultImage;
    if (!image) {
      return failed('rejected', 'the task names no image and the worker has no docker.default_image — give the task an environment with an image, or start the worker with --default-image');
    }
    // The task's own size, checked against the worker's maxima before anything is pulled or created.
    const resources = request.spec.resources ?? {};
    try {
      resourcesFor(this.options.docker, resources);
    } catch (err) {
      return failed('rejected', `this worker cannot give the task the size it asks for: ${describeError(err)}`);
    }
    let imageUser: string;
    try {
      ({ user: imageUser } = await ensureImage(this.docker, image, this.options.docker.pullPolicy, (line) => request.onOutput('setup', line)));
    } catch (err) {
      if (err instanceof ImagePullError) return failed('image_pull', err.message);
      return failed('image_pull', `could not get the image ${image}: ${engineMessage(err)}`);
    }
    if (tracked.stopRequested) return { exitCode: 143, signal: 'SIGTERM' };
    let container: Dockerode.Container;
    try {
      container = await this.createContainer(tracked, image, imageUser, request.env, resources);
    } catch (err) {
      return failed('backend', `the docker backend could not create the task's container: ${engineMessage(err)}`);
    }
    const token = request.env[AGENT_ENV.token];
    try {
      const stdin = (await container.attach({ stream: true, stdin: true, hijack: true }));
      stdin.on('error', () => undefined); // an agent that died at once: its exit says so
      await container.start();
      tracked.started = true;
      // The token, then half-close: the engine closes the container's stdin (StdinOnce). Destroying
      // the socket instead can lose the line in the engine; unref'd, it never holds the worker's exit.
      stdin.end(`${token ?? ''}\n`);
      (stdin as NodeJS.ReadWriteStream & { unref?: () => void }).unref?.();
    } catch (err) {
      return failed('backend', `the docker backend could not start the task's container: ${engineMessage(err)}`);
    }
    if (tracked.stopRequested) void this.stop(tracked.executionId, 0);
    return this.waitForExit(tracked, container);
  }

  private async createContainer(tracked: Tracked, image: string, imageUser: string, requestEnv: Record<string, string>, resources: ResourceOverrides): Promise<Dockerode.Container> {
    const identity = { workerId: tracked.workerId, taskId: tracked.taskId, executionId: tracked.executionId, epoch: tracked.epoch };
    const labels = identityLabels(identity);
    const env: Record<string, string> = { ...requestEnv };
    delete env[AGENT_ENV.token];
    Object.assign(env, {
      [AGENT_ENV.tokenOnStdin]: '1',
      [AGENT_ENV.gateway]: `unix:${AIRLOCK_GATEWAY_DIR}/${GATEWAY_SOCKET_NAME}`,
      [AGENT_ENV.workdir]: TASK_WORKDIR,
      [AGENT_ENV.executionId]: tracked.executionId,
      HOME: TASK_HOME,
    });
    await this.docker.createVolume({ Name: tracked.name, Labels: { ...this.options.labels, ...labels } });
    const spec = containerSpec({
      options: this.options.docker,
      image,
      name: tracked.name,
      execution: identity,
      ...(this.options.labels ? { labels: this.options.labels } : {}),
      env,
      command: [`${AIRLOCK_RUNTIME_DIR}/node`, `${AIRLOCK_RUNTIME_DIR}/agent.mjs`, 'run'],
      workingDir: TASK_WORKDIR,
      runtimeDir: this.runtimeDir!,
      gatewayDir: tracked.gatewayDir,
      resources,
      stdin: true,
    });
    spec.HostConfig!.Mounts!.push({ Type: 'volume', Source: tracked.name, Target: TASK_DIR, ReadOnly: false });
    const container = await this.docker.createContainer(spec);
    // A task running as root needs nothing prepared: the engine creates the working directory and
    // the agent its HOME. Another user gets both made for it, owned by it (about 60–120 ms).
    if (!runsAsRoot(this.options.docker.user ?? imageUser)) await container.putArchive(await taskDirectories(this.options.docker.user), { path: TASK_DIR });
    return container;
  }

  /** Wait for the container to exit; across an engine restart, wait for the engine and read the outcome back. */
  private async waitForExit(tracked: Tracked, container: Dockerode.Container): Promise<ExitStatus> {
    let engineLostAt: number | undefined;
    for (;;) {
      // A killed engine does not always close the connection of a pending wait: a watchdog pings
      // the engine meanwhile and gives up on the wait when it stops answering.
      this.log.debug({ execution: tracked.executionId, container: tracked.name }, 'docker backend: watching the container');
      const watch = new AbortController();
      const watchdog = setInterval(() => {
        void this.ping(ENGINE_PING_TIMEOUT_MS).catch((err: unknown) => watch.abort(err));
      }, ENGINE_WATCH_MS);
      try {
        // Raced, not only aborted: the engine client does not always give up a request whose engine died.
        const waiting = container.wait({ abortSignal: AbortSignal.any([this.closing.signal, watch.signal]) });
        waiting.catch(() => undefined);
        await Promise.race([waiting, aborted(watch.signal), aborted(this.closing.signal)]);
        const state = (await container.inspect()).State;
        return await this.exitStatus(tracked, container, state, engineLostAt);
      } catch (caught) {
        const err: unknown = watch.signal.aborted ? (watch.signal.reason as unknown) : caught;
        if (this.closing.signal.aborted) {
          return failed('backend', 'the worker stopped watching the container (it keeps running; the next start of this worker reattaches to it)');
        }
        const status = (err as { statusCode?: number }).statusCode;
        if (status === 404) {
          return failed('backend', `the task's container ${tracked.name} was removed while it ran (not by this worker) — check who removes containers on this host`);
        }
        engineLostAt ??= Date.now();
        this.log.warn({ execution: tracked.executionId, err: describeError(err) }, 'docker backend: lost the Docker Engine while waiting for a container; waiting for it to come back');
        if (!(await this.engineBack(engineLostAt))) {
          return failed('backend', `the Docker Engine went away while the task ran and did not come back within ${ENGINE_RETURN_TIMEOUT_MS / 60_000} minutes (${engineMessage(err)}) — the container's fate is unknown; check the engine`);
        }
      } finally {
        clearInterval(watchdog);
      }
    }
  }

  /** Ping the engine, failing after `timeoutMs` (a hung engine must not hang the worker). */
  private async ping(timeoutMs: number): Promise<void> {
    await (this.docker as unknown as { ping(options: { abortSignal: AbortSignal }): Promise<unknown> }).ping({ abortSignal: AbortSignal.timeout(timeoutMs) });
  }

  private async engineBack(since: number): Promise<boolean> {
    while (Date.now() - since < ENGINE_RETURN_TIMEOUT_MS && !this.closing.signal.aborted) {
      try {
        await this.ping(ENGINE_PING_TIMEOUT_MS);
        this.log.info({}, 'docker backend: the Docker Engine answers again');
        return true;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, ENGINE_POLL_MS));
      }
    }
    return false;
  }

  private async exitStatus(tracked: Tracked, container: Dockerode.Container, state: Dockerode.ContainerInspectInfo['State'], engineLostAt: number | undefined): Promise<ExitStatus> {
    const exitCode = state.ExitCode;
    const signal = exitCode > 128 ? signalName(exitCode - 128) : null;
    const status: ExitStatus = { exitCode, signal };
    const diagnostics = await this.lastOutput(container);
    if (diagnostics) status.diagnostics = diagnostics;
    if (state.OOMKilled) {
      const memory = (((await container.inspect())).HostConfig.Memory ?? 0) / 1024 / 1024;
      status.failure = {
        reason: 'container_oom',
        message: `the task used all the memory of its container (${Math.round(memory)} MiB) and was killed by the kernel — give the task more memory (docker.memory, or a larger task size) or make it use less`,
      };
    } else if (engineLostAt !== undefined && !tracked.stopRequested && exitCode !== 0) {
      status.failure = {
        reason: 'backend',
        message: `the Docker Engine restarted while the task ran and its container was stopped (exit status ${exitCode}${signal ? `, ${signal}` : ''}) — run the task again; enable live-restore in the engine's daemon.json to keep containers running across engine restarts`,
      };
    }
    return status;
  }

  /** The agent runtime's own last lines (the task's output travels as events). */
  private async lastOutput(container: Dockerode.Container): Promise<string | undefined> {
    try {
      const raw = await container.logs({ stdout: true, stderr: true, tail: DIAGNOSTICS_LINES, follow: false });
      const text = demux(raw).trim();
      return text === '' ? undefined : text;
    } catch {
      return undefined;
    }
  }

  async stop(executionId: string, graceMs: number): Promise<void> {
    const tracked = this.executions.get(executionId);
    if (!tracked) return;
    tracked.stopRequested = true;
    if (!tracked.exited || !tracked.started) return; // not running yet: start() sees stopRequested
    const container = this.docker.getContainer(tracked.name);
    // The engine's stop: StopSignal (SIGTERM) to the init process, which forwards it; SIGKILL after t seconds.
    await container.stop({ t: Math.ceil(Math.max(0, graceMs) / 1000) }).catch((err: unknown) => {
      const code = (err as { statusCode?: number }).statusCode;
      if (code !== 304 && code !== 404) this.log.warn({ execution: executionId, err: engineMessage(err) }, 'docker backend: stopping the container failed');
    });
    await tracked.exited;
  }

  async cleanup(executionId: string): Promise<void> {
    const tracked = this.executions.get(executionId);
    if (tracked?.exited) await this.stop(executionId, 0);
    this.executions.delete(executionId);
    if (!ExecutionId.safeParse(executionId).success) return;
    if (this.options.noCleanup) return;
    await this.removeExecution(executionId);
  }

  /** Remove an execution's container, volume and gateway directory; each step tolerates "already gone". */
  private async removeExecution(executionId: string): Promise<void> {
    const name = containerName(executionId);
    await this.docker
      .getContainer(name)
      .remove({ force: true, v: true })
      .catch((err: unknown) => {
        if ((err as { statusCode?: number }).statusCode !== 404) this.log.warn({ execution: executionId, err: engineMessage(err) }, 'docker backend: removing the container failed');
      });
    await this.docker
      .getVolume(name)
      .remove()
      .catch((err: unknown) => {
        if ((err as { statusCode?: number }).statusCode !== 404) this.log.warn({ execution: executionId, err: engineMessage(err) }, 'docker backend: removing the volume failed');
      });
    await rm(this.gatewayDir(executionId), { recursive: true, force: true });
  }

  async reattach(workerId: string, known: ReadonlyArray<{ executionId: string; epoch: number }>): Promise<Reattached[]> {
    this.workerId = workerId;
    const reattached: Reattached[] = [];
    for (const info of await this.ownContainers(workerId)) {
      const executionId = info.Labels[LABEL_EXECUTION_ID] ?? '';
      const epoch = Number(info.Labels[LABEL_EPOCH]);
      if (!known.some((k) => k.executionId === executionId && k.epoch === epoch) || this.executions.has(executionId)) continue;
      if (info.State !== 'running' && info.State !== 'exited') continue; // never started: recover removes it
      const gatewayDir = this.gatewayDir(executionId);
      const tracked: Tracked = {
        executionId,
        taskId: info.Labels[LABEL_TASK_ID] ?? '',
        epoch,
        workerId,
        name: containerName(executionId),
        gatewayDir,
        stopRequested: false,
        started: true,
      };
      await mkdir(gatewayDir, { recursive: true, mode: 0o711 });
      this.executions.set(executionId, tracked);
      const container = this.docker.getContainer(info.Id);
      tracked.exited = this.waitForExit(tracked, container);
      reattached.push({
        executionId,
        epoch,
        prepared: { executionId, gatewaySocketPath: path.join(gatewayDir, GATEWAY_SOCKET_NAME), workdir: TASK_WORKDIR },
        running: { executionId, exited: tracked.exited },
        detail: `container ${info.Id.slice(0, 12)} (${info.Status})`,
      });
    }
    return reattached;
  }

  async recover(workerId: string): Promise<Leftover[]> {
    this.workerId = workerId;
    const leftovers: Leftover[] = [];
    for (const info of await this.ownContainers(workerId)) {
      const executionId = info.Labels[LABEL_EXECUTION_ID] ?? '';
      if (this.executions.has(executionId) || !ExecutionId.safeParse(executionId).success) continue;
      const wasRunning = info.State === 'running';
      const details = [`container ${info.Id.slice(0, 12)} was ${info.State} (${info.Status})`];
      if (this.options.noCleanup) {
        if (wasRunning) {
          await this.docker.getContainer(info.Id).kill().catch(() => undefined);
          details.push('killed; kept (--no-cleanup)');
        } else details.push('kept (--no-cleanup)');
      } else {
        await this.removeExecution(executionId);
        details.push(wasRunning ? 'killed and removed with its volume' : 'removed with its volume');
      }
      leftovers.push({ executionId, epoch: Number(info.Labels[LABEL_EPOCH]) || 0, wasRunning, detail: details.join('; ') });
    }
    if (!this.options.noCleanup) await this.removeOrphanVolumes(workerId);
    this.startSweep();
    return leftovers;
  }

  /** Volumes of this worker whose container is gone (a crash between creating the two). */
  private async removeOrphanVolumes(workerId: string): Promise<void> {
    const { Volumes } = await this.docker.listVolumes({ filters: JSON.stringify({ label: [`${LABEL_WORKER_ID}=${workerId}`] }) });
    for (const volume of Volumes ?? []) {
      const executionId = volume.Labels?.[LABEL_EXECUTION_ID] ?? '';
      if (this.executions.has(executionId)) continue;
      await this.docker
        .getVolume(volume.Name)
        .remove()
        .catch(() => undefined); // in use by a container being removed, or already gone
    }
  }

  private async ownContainers(workerId: string): Promise<Dockerode.ContainerInfo[]> {
    return this.docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABEL_WORKER_ID}=${workerId}`] }) });
  }

  private startSweep(): void {
    if (this.sweepTimer || this.options.noCleanup) return;
    this.sweepTimer = setInterval(() => {
      this.sweeping ??= this.sweep().then(
        () => (this.sweeping = undefined),
        () => (this.sweeping = undefined),
      );
    }, this.options.sweepIntervalMs ?? SWEEP_INTERVAL_MS);
    this.sweepTimer.unref();
  }

  /** Remove exited containers of this worker that no execution tracks (and their volumes). */
  async sweep(): Promise<number> {
    const workerId = this.workerId;
    if (!workerId || !this.engine) return 0;
    let removed = 0;
    try {
      for (const info of await this.ownContainers(workerId)) {
        const executionId = info.Labels[LABEL_EXECUTION_ID] ?? '';
        if (info.State !== 'exited' && info.State !== 'dead') continue;
        if (this.executions.has(executionId) || !ExecutionId.safeParse(executionId).success) continue;
        await this.removeExecution(executionId);
        removed++;
        this.log.info({ execution: executionId, container: info.Id.slice(0, 12) }, 'docker backend: swept an exited container nothing tracked');
      }
    } catch (err) {
      this.log.warn({ err: describeError(err) }, 'docker backend: the periodic sweep failed');
    }
    return removed;
  }

  async close(): Promise<void> {
    this.closing.abort();
    clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    await this.sweeping;
    // Running containers are not stopped: a restarted worker reattaches to them.
  }
}

/** Rejects with the signal's reason (as an Error) once it aborts. */
function aborted(signal: AbortSignal): Promise<never> {
  const reason = (): Error => (signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
  return new Promise((_resolve, reject) => {
    if (signal.aborted) reject(reason());
    else signal.addEventListener('abort', () => reject(reason()), { once: true });
  });
}

/** Root by name or uid, or no user at all (the image's default: root). */
function runsAsRoot(user: string): boolean {
  const name = user.split(':')[0] ?? '';
  return name === '' || name === 'root' || name === '0';
}

function failed(reason: NonNullable<ExitStatus['failure']>['reason'], message: string): ExitStatus {
  return { exitCode: 1, signal: null, failure: { reason, message } };
}

/** The signal whose number is `n` (an exit status of 128 + n), from the platform's own table. */
function signalName(n: number): NodeJS.Signals | null {
  const found = Object.entries(constants.signals).find(([, number]) => number === n);
  return found ? (found[0] as NodeJS.Signals) : null;
}

/**
 * The task's two directories for the volume, as a tar: owned by the task's user when it is
 * numeric (0700), else open to whoever the image's user is (0777 — the container has one tenant).
 */
async function taskDirectories(user: string | null): Promise<Buffer> {
  const [uidText, gidText] = (user ?? '').split(':');
  const numeric = /^\d+$/.test(uidText ?? '') && (gidText === undefined || /^\d+$/.test(gidText));
  const uid = numeric ? Number(uidText) : 0;
  const gid = numeric ? Number(gidText ?? uidText) : 0;
  const mode = numeric ? 0o700 : 0o777;
  const tar = pack();
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<void>((resolve, reject) => (out.on('end', resolve), out.on('error', reject)));
  tar.pipe(out);
  for (const name of ['work', 'home']) tar.entry({ name, type: 'directory', mode, uid, gid });
  tar.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** Docker's multiplexed log stream (no TTY): 8-byte frame headers, then the payload. */
function demux(raw: Buffer): string {
  if (!Buffer.isBuffer(raw)) return String(raw);
  const parts: string[] = [];
  let offset = 0;
  while (offset + 8 <= raw.length) {
    const size = raw.readUInt32BE(offset + 4);
    parts.push(raw.subarray(offset + 8, offset + 8 + size).toString('utf8'));
    offset += 8 + size;
  }
  return parts.join('');
}
