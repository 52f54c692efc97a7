/**
 * The container of one execution, as a plain dockerode `ContainerCreateOptions` built by a pure
 * function from the resolved options (options.ts) and the execution's facts; the engine adapter
 * only sends it. Hardened by default — what the operator cannot loosen from config:
 *
 * - every capability dropped, only `cap_add` given back; no-new-privileges; the engine's default
 *   seccomp profile (never `seccomp=unconfined`) and masked /proc paths (never overridden);
 * - not privileged, no devices, no host namespace: network `none` or a named network, private
 *   IPC and cgroup namespaces, PID/UTS/user namespaces left to the engine's private default;
 * - PID, memory (with swap equal to it: none) and CPU limits; an init process as PID 1 that
 *   reaps zombies and forwards SIGTERM;
 * - `AutoRemove: false`: the worker removes the container itself, after reading its exit code
 *   and logs. Remove it with `v: true` so anonymous volumes of the image's VOLUMEs go with it —
 *   the spec itself creates no volumes (only bind mounts and a tmpfs), so there are none to label.
 *
 * Invariant: no mount source of a returned spec is, or contains, an engine socket
 * (`assertNoEngineSocketMounts`, checked on every spec whatever the mounts' origin).
 */
import path from 'node:path';
import type Docker from 'dockerode';
import { assertValidEnvName, assertValidEnvValue } from '../../../lib/env-name.js';
import { resourcesFor, type DockerOptions, type ResourceOverrides } from './options.js';
import { AIRLOCK_MOUNT_ROOT, DEFAULT_ENGINE_SOCKETS, engineSocketUnder, volumeMounts } from './volumes.js';

/** Labels on every container, so a restarted worker finds its own and the epoch it ran. */
export const LABEL_WORKER_ID = 'dev.airlock.worker-id';
export const LABEL_TASK_ID = 'dev.airlock.task-id';
export const LABEL_EXECUTION_ID = 'dev.airlock.execution-id';
export const LABEL_EPOCH = 'dev.airlock.epoch';
const IDENTITY_LABELS: readonly string[] = [LABEL_WORKER_ID, LABEL_TASK_ID, LABEL_EXECUTION_ID, LABEL_EPOCH];

/** The agent runtime's files, mounted read-only: the task cannot change the program that reports on it. */
export const AIRLOCK_RUNTIME_DIR = `${AIRLOCK_MOUNT_ROOT}/runtime`;
/**
 * The directory holding the task gateway's socket, mounted read-only: connecting to a Unix socket
 * works through a read-only mount (checked against Engine 20.10), and the task cannot replace the
 * socket with its own.
 */
export const AIRLOCK_GATEWAY_DIR = `${AIRLOCK_MOUNT_ROOT}/gateway`;

/** Docker's rule for container names. */
const CONTAINER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export interface ExecutionIdentity {
  workerId: string;
  taskId: string;
  executionId: string;
  epoch: number;
}

export interface ContainerSpecInput {
  options: DockerOptions;
  image: string;
  /** Container name (unique on the engine), e.g. `airlock-<execution id>`. */
  name: string;
  execution: ExecutionIdentity;
  /** Further labels (e.g. a test marker); they cannot replace the identity labels. */
  labels?: Record<string, string>;
  /** The agent's whole environment: the image's own variables are kept unless named here. */
  env: Record<string, string>;
  /** argv of the agent: becomes the entrypoint, so the image's ENTRYPOINT never wraps it. */
  command: readonly string[];
  /** Absolute directory inside the container the agent starts in. */
  workingDir: string;
  /** Host directory of the agent runtime, mounted read-only at AIRLOCK_RUNTIME_DIR. */
  runtimeDir: string;
  /** Host directory of the task gateway's socket, mounted read-only at AIRLOCK_GATEWAY_DIR. */
  gatewayDir: string;
  /** The task's own cpu/memory size, bounded by max_cpus/max_memory. */
  resources?: ResourceOverrides;
  /** Keep stdin open for one attach (the task token travels there, not in the environment). */
  stdin?: boolean;
}

/** HostConfig fields Engine API 1.41 has and @types/dockerode lacks. */
type HostConfig = Docker.HostConfig & { CgroupnsMode?: 'private' | 'host' };

/** The identity labels of one execution's objects (its container and its volume). */
export function identityLabels(execution: ExecutionIdentity): Record<string, string> {
  const { workerId, taskId, executionId, epoch } = execution;
  return { [LABEL_WORKER_ID]: workerId, [LABEL_TASK_ID]: taskId, [LABEL_EXECUTION_ID]: executionId, [LABEL_EPOCH]: String(epoch) };
}

function labelsFor(input: ContainerSpecInput): Record<string, string> {
  const extra = input.labels ?? {};
  const clash = Object.keys(extra).find((key) => IDENTITY_LABELS.includes(key));
  if (clash) throw new Error(`container spec: label ${clash} is set by Airlock itself — remove it from the extra labels`);
  return { ...extra, ...identityLabels(input.execution) };
}

function envList(env: Record<string, string>): string[] {
  return Object.entries(env).map(([name, value]) => {
    assertValidEnvName(name, 'container spec');
    assertValidEnvValue(name, value, 'container spec');
    return `${name}=${value}`;
  });
}

/**
 * The /tmp of a read-only root: scratch space where no set-uid binary or device node planted in
 * it takes effect. `exec` is explicit because the engine otherwise adds `noexec`, and build tools
 * run what they write to TMPDIR (`go test` binaries, native extensions being built) — while the
 * task's working directory is executable anyway, so noexec here would break them and stop nothing.
 */
export function tmpfsOptions(sizeBytes: number): string {
  return `rw,exec,nosuid,nodev,size=${sizeBytes}`;
}

function checkInput(input: ContainerSpecInput): void {
  if (!CONTAINER_NAME.test(input.name)) throw new Error(`container spec: ${JSON.stringify(input.name)} is not a valid container name (letters, digits, "_", "." and "-")`);
  if (input.image.length === 0) throw new Error('container spec: no image — give the task an image, or set docker.default_image');
  if (input.command.length === 0 || input.command[0] === '') throw new Error('container spec: the agent command is empty');
  for (const [what, p] of [['working directory', input.workingDir], ['runtime directory', input.runtimeDir], ['gateway directory', input.gatewayDir]] as const) {
    if (!path.posix.isAbsolute(p)) throw new Error(`container spec: the ${what} ${JSON.stringify(p)} is not an absolute path`);
  }
}

/** Build the create options of one execution's container. Pure; throws on input that cannot be right. */
export function containerSpec(input: ContainerSpecInput): Docker.ContainerCreateOptions {
  checkInput(input);
  const { options } = input;
  const resources = resourcesFor(options, input.resources);
  const stdin = input.stdin === true;
  const hostConfig: HostConfig = {
    Mounts: [
      { Type: 'bind', Source: input.runtimeDir, Target: AIRLOCK_RUNTIME_DIR, ReadOnly: true },
      { Type: 'bind', Source: input.gatewayDir, Target: AIRLOCK_GATEWAY_DIR, ReadOnly: true },
      ...volumeMounts(options.volumes),
    ],
    CapDrop: ['ALL'],
    CapAdd: [...options.capAdd],
    SecurityOpt: ['no-new-privileges'],
    Privileged: false,
    Devices: [],
    NetworkMode: options.network,
    IpcMode: 'private',
    CgroupnsMode: 'private',
    PidMode: '',
    UTSMode: '',
    UsernsMode: '',
    PublishAllPorts: false,
    PidsLimit: options.pidsLimit,
    Memory: resources.memoryBytes,
    MemorySwap: resources.memoryBytes,
    NanoCpus: resources.nanoCpus,
    Init: true,
    ReadonlyRootfs: options.readOnlyRoot,
    ...(options.readOnlyRoot ? { Tmpfs: { '/tmp': tmpfsOptions(options.tmpSizeBytes) } } : {}),
    ...(options.runtime ? { Runtime: options.runtime } : {}),
    AutoRemove: false,
    RestartPolicy: { Name: 'no' },
  };
  const spec: Docker.ContainerCreateOptions = {
    name: input.name,
    Image: input.image,
    Entrypoint: [...input.command.slice(0, 1)],
    Cmd: [...input.command.slice(1)],
    Env: envList(input.env),
    WorkingDir: input.workingDir,
    Labels: labelsFor(input),
    StopSignal: 'SIGTERM',
    Tty: false,
    OpenStdin: stdin,
    StdinOnce: stdin,
    AttachStdin: stdin,
    ...(options.user ? { User: options.user } : {}),
    HostConfig: hostConfig,
  };
  assertNoEngineSocketMounts(spec, options.engineSocketPaths);
  return spec;
}

/** Every host path a spec would mount: Mounts sources and legacy Binds (`src:dst[:opts]`). */
function mountSources(spec: Docker.ContainerCreateOptions): string[] {
  const host = spec.HostConfig ?? {};
  const fromMounts = (host.Mounts ?? []).filter((m) => m.Type === 'bind').map((m) => m.Source);
  const fromBinds = (host.Binds ?? []).map((bind) => bind.split(':')[0] ?? bind);
  return [...fromMounts, ...fromBinds];
}

/**
 * Defence in depth: throw when any bind source of `spec` is, or contains, an engine socket —
 * whether it came from operator volumes (already checked on the host), Airlock's own directories
 * or a later change to this module. Lexical: sources are normalised here before comparing, and
 * the default socket paths are always checked, whatever `engineSocketPaths` holds.
 */
export function assertNoEngineSocketMounts(spec: Docker.ContainerCreateOptions, engineSocketPaths: readonly string[]): void {
  const sockets = [...DEFAULT_ENGINE_SOCKETS, ...engineSocketPaths];
  for (const source of mountSources(spec)) {
    const socket = engineSocketUnder(path.posix.resolve('/', source), sockets);
    if (socket) {
      throw new Error(`refusing to create container ${spec.name ?? ''}: the mount source ${JSON.stringify(source)} is or contains the container engine's socket ${socket}, which would make the task root on the host`);
    }
  }
}
