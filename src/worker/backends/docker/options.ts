/**
 * The docker backend's options: the `docker:` block of the worker's YAML (snake_case), parsed with
 * one zod schema, then resolved — defaults applied, sizes in bytes, capabilities in `CAP_` form,
 * volumes checked on the host — into `DockerOptions`. Every refusal names the field and the fix.
 *
 * Invariants of a resolved `DockerOptions`: the network is `none` or a named network (never the
 * host's or another container's namespace); `capAdd` holds only known Linux capabilities and never
 * `ALL`; cpus/memory are positive and at most their `max_*`; every volume passed volumes.ts.
 */
import { z } from 'zod';
import { ValidationError } from '../../../protocol/errors.js';
import { environmentFields } from '../../../protocol/environment.js';
import { parseOrThrow } from '../../../protocol/zod-errors.js';
import { engineSockets, resolveAllowedRoots, resolveVolumes, type VolumeMount } from './volumes.js';

/** When the backend pulls a task's image: only when missing, before every execution, or never (offline hosts). */
export const PULL_POLICIES = ['if-not-present', 'always', 'never'] as const;
export type PullPolicy = (typeof PULL_POLICIES)[number];

/**
 * The Linux capabilities (capabilities(7), 0–40), without the `CAP_` prefix. Docker Engine 20.10
 * predates the last three (PERFMON, BPF, CHECKPOINT_RESTORE) and refuses them at container
 * create with "unknown capability"; newer engines accept them.
 */
export const LINUX_CAPABILITIES = [
  'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP',
  'LINUX_IMMUTABLE', 'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER',
  'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE',
  'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP',
  'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF',
  'CHECKPOINT_RESTORE',
] as const;

/**
 * Capabilities that act on the host kernel beyond the container's namespaces — loading modules,
 * raw I/O, mount and namespace administration, open_by_handle_at (the "shocker" escape), the
 * system clock, kernel tracing. Accepted (operators may need one, e.g. SYS_PTRACE for debuggers,
 * ideally under a sandboxing runtime), but each one becomes a warning the worker logs at start.
 */
export const HOST_REACHING_CAPABILITIES: Readonly<Record<string, string>> = {
  CAP_SYS_ADMIN: 'mount, namespace and many other host-kernel administration calls; the usual way out of a container',
  CAP_SYS_MODULE: 'loads kernel modules: full control of the host',
  CAP_SYS_RAWIO: 'raw device and I/O port access',
  CAP_DAC_READ_SEARCH: 'open_by_handle_at, which reads host files outside the container\'s mounts',
  CAP_SYS_PTRACE: 'traces any process it can see (harmless only while the PID namespace is private)',
  CAP_SYS_TIME: 'sets the host\'s clock',
  CAP_MAC_ADMIN: 'changes the host\'s mandatory access control policy',
  CAP_MAC_OVERRIDE: 'overrides the host\'s mandatory access control',
  CAP_BPF: 'loads BPF programs into the host kernel',
  CAP_PERFMON: 'kernel performance monitoring and tracing',
  CAP_SYSLOG: 'reads the host kernel log, including kernel addresses',
};

/**
 * Defaults, each with its reason. Resources are per execution: a worker with concurrency N needs
 * N times them.
 *
 * - pids 1024: threads count too; a JVM or parallel compiler build alone runs a few hundred, and
 *   1024 still stops a fork bomb within milliseconds.
 * - memory 4 GiB: enough for an agent runtime plus a typical compile or test run; swap is never
 *   added (MemorySwap = Memory), so a task over its limit is OOM-killed instead of thrashing the host.
 * - cpus 2: one for the agent and tools, one for the build it runs — and capped at what the
 *   engine has, because Docker refuses a container asking for more CPUs than exist.
 * - /tmp 512 MiB: with a read-only root, /tmp is the task's scratch space; tmpfs pages count
 *   against the memory limit, so keep it well below it.
 */
export const DEFAULT_PIDS_LIMIT = 1024;
export const DEFAULT_MEMORY_BYTES = 4 * 1024 ** 3;
export const DEFAULT_CPUS = 2;
export const DEFAULT_TMP_SIZE_BYTES = 512 * 1024 ** 2;
/** Docker's own floor is 6 MiB; the agent runtime alone (Node) needs some 50 MiB. */
export const MIN_MEMORY_BYTES = 64 * 1024 ** 2;
/** Docker's granularity for --cpus. */
export const MIN_CPUS = 0.01;
/** The kernel's pid_max ceiling (2^22): a larger limit means nothing. */
const MAX_PIDS_LIMIT = 4_194_304;
const MIN_TMP_SIZE_BYTES = 1024 ** 2;

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/**
 * Docker's size syntax → bytes: a number of bytes, or a number with a binary unit — `512m`,
 * `2g`, `1.5G`, `2GiB`, `512MB` (units are powers of 1024, as for `docker run --memory`).
 */
export function parseByteSize(input: string | number): number | undefined {
  if (typeof input === 'number') return Number.isSafeInteger(input) && input > 0 ? input : undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*$/i.exec(input);
  if (!match) return undefined;
  const unit = match[2]!.toLowerCase();
  const bytes = Math.floor(Number(match[1]) * BYTE_UNITS[unit]!);
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
}

/** A size in the YAML (`512m`, `2g` or bytes) → bytes, at least `min`. */
const byteSize = (example: string, min: number) =>
  z
    .custom<string | number>((value) => typeof value === 'string' || typeof value === 'number', `must be a size like ${example}, 512m or 2g, or a number of bytes`)
    .transform((value, ctx) => {
      const bytes = parseByteSize(value);
      if (bytes === undefined) {
        ctx.addIssue({ code: 'custom', message: `"${value}" is not a size — write it like ${example}, 512m or 2g (binary units: k, m, g, t), or a number of bytes` });
        return z.NEVER;
      }
      if (bytes < min) {
        ctx.addIssue({ code: 'custom', message: `"${value}" is below the minimum of ${formatBytes(min)} — raise it` });
        return z.NEVER;
      }
      return bytes;
    });

/** A number whose wrong type is reported with `message` (zod's own "expected number" says no fix). */
const numberOf = (message: string) => z.custom<number>((value) => typeof value === 'number' && !Number.isNaN(value), message);

const cpus = numberOf('must be a number of CPUs, e.g. 2 or 0.5')
  .refine((n) => Number.isFinite(n) && n >= MIN_CPUS, `must be a positive number of CPUs, at least ${MIN_CPUS} — e.g. 2, or 0.5 for half a CPU`);

/** `none`, or a network created with `docker network create` — never the host's or another container's. */
const network = z.string().check((ctx) => {
  const name = ctx.value;
  let message: string | undefined;
  if (name === 'host') {
    message =
      'host would put the task on the worker host\'s own network stack — its loopback services, the cloud metadata endpoint, every port — use none (the default), or a network made for tasks with docker network create';
  } else if (name.startsWith('container:')) {
    message =
      "container:… would share another container's network namespace, its localhost services included — use none (the default), or a network made for tasks with docker network create";
  } else if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(name)) {
    message = 'must be none, or the name of a Docker network (letters, digits, "_", "." and "-")';
  }
  if (message) ctx.issues.push({ code: 'custom', input: name, message });
});

/** A capability name, with or without `CAP_`, any case → `CAP_NAME`; `ALL` and unknown names refused. */
const capability = z.string().transform((value, ctx) => {
  const bare = value.trim().toUpperCase().replace(/^CAP_/, '');
  if (bare === 'ALL') {
    ctx.addIssue({ code: 'custom', message: 'ALL would hand the task every capability and undo the container\'s CapDrop ALL — list only the capabilities it needs, e.g. [NET_BIND_SERVICE]' });
    return z.NEVER;
  }
  if (!(LINUX_CAPABILITIES as readonly string[]).includes(bare)) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not a Linux capability — use a name from capabilities(7) such as NET_BIND_SERVICE or CHOWN, with or without the CAP_ prefix` });
    return z.NEVER;
  }
  return `CAP_${bare}`;
});

const NAME_OR_ID = '(?:[A-Za-z_][A-Za-z0-9_.-]{0,31}|[0-9]{1,10})';
const user = z
  .string()
  .regex(new RegExp(`^${NAME_OR_ID}(?::${NAME_OR_ID})?$`), 'must be a user name or uid, optionally with :group or :gid — e.g. 1000:1000 or nobody');

const runtime = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'must be the name of a runtime the Docker Engine has configured, e.g. runsc (see docker info, "Runtimes")');

/** The `docker:` block of the worker YAML. Unknown keys are errors; defaults are applied by `resolveDockerOptions`. */
export const DockerFileConfig = z.strictObject({
  /** Image for tasks whose environment names none. Absent: such tasks are refused. */
  default_image: environmentFields.image.optional(),
  /** When to pull a task's image; default `if-not-present`. */
  pull_policy: z.enum(PULL_POLICIES, { error: 'must be if-not-present (the default), always or never' }).optional(),
  /** `none` (the default: no network at all), or a named Docker network. */
  network: network.optional(),
  /** Capabilities given back after dropping all of them; default none. */
  cap_add: z.array(capability).max(LINUX_CAPABILITIES.length).optional(),
  /** Mount the image's filesystem read-only, with a tmpfs at /tmp; default false. */
  read_only_root: z.boolean().optional(),
  /** Size of that /tmp tmpfs (with read_only_root only); default 512m. */
  tmp_size: byteSize('256m', MIN_TMP_SIZE_BYTES).optional(),
  /** `user`, `uid`, `user:group` or `uid:gid` the task runs as; default the image's user. */
  user: user.optional(),
  /** OCI runtime, e.g. `runsc` (gVisor); default the engine's default runtime. */
  runtime: runtime.optional(),
  /** Most processes and threads in one container; default 1024. */
  pids_limit: numberOf('must be a whole number of processes, e.g. 1024')
    .refine(Number.isInteger, 'must be a whole number of processes, e.g. 1024')
    .refine((n) => n >= 1, 'must be at least 1 — a container without a limit is not offered')
    .refine((n) => n <= MAX_PIDS_LIMIT, `must be at most ${MAX_PIDS_LIMIT} (the kernel's pid_max ceiling)`)
    .optional(),
  /** Memory of one container (swap is never added); default 4g. */
  memory: byteSize('4g', MIN_MEMORY_BYTES).optional(),
  /** Most memory a task may ask for with its own size; default `memory`. */
  max_memory: byteSize('8g', MIN_MEMORY_BYTES).optional(),
  /** CPUs of one container, fractions allowed; default 2 (or fewer when the engine has fewer). */
  cpus: cpus.optional(),
  /** Most CPUs a task may ask for with its own size; default `cpus`. */
  max_cpus: cpus.optional(),
  /** Host directories mounted into every task container: `HOST:CONTAINER[:ro|rw]`. */
  volumes: z.array(z.string()).optional(),
  /** When set, every volume's host path must lie under one of these directories (after symlinks). */
  allowed_volume_roots: z.array(z.string()).min(1, 'must list at least one directory — leave it out to allow any').optional(),
});
export type DockerFileConfig = z.infer<typeof DockerFileConfig>;

/** The resolved options the container spec is built from. */
export interface DockerOptions {
  defaultImage: string | null;
  pullPolicy: PullPolicy;
  network: string;
  /** `CAP_`-prefixed, deduplicated, in the order given. */
  capAdd: string[];
  readOnlyRoot: boolean;
  tmpSizeBytes: number;
  user: string | null;
  runtime: string | null;
  pidsLimit: number;
  memoryBytes: number;
  maxMemoryBytes: number;
  cpus: number;
  maxCpus: number;
  volumes: VolumeMount[];
  /** realpaths of allowed_volume_roots; null when any root is allowed. */
  allowedVolumeRoots: string[] | null;
  /** Every spelling of the engine sockets: no mount source may be or contain one (checked again in container-spec.ts). */
  engineSocketPaths: string[];
  /** Choices the worker should log loudly at start (host-reaching capabilities). */
  warnings: string[];
}

export interface ResolveDockerContext {
  /** CPUs of the Docker Engine (`docker info` NCPU): caps the default and refuses larger values. */
  engineCpus?: number;
  /** The socket the worker talks to the engine on, when it is not a default one. */
  engineSocketPath?: string;
}

/** Parse a raw `docker:` block (from YAML) or throw a ValidationError naming `docker.<field>`. */
export function parseDockerFileConfig(raw: unknown, subject = 'docker backend options'): DockerFileConfig {
  return parseOrThrow(DockerFileConfig, raw ?? {}, subject, 'docker');
}

function formatBytes(bytes: number): string {
  for (const [unit, size] of [['g', 1024 ** 3], ['m', 1024 ** 2], ['k', 1024]] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return `${bytes} bytes`;
}

function invalid(field: string, message: string): ValidationError {
  return new ValidationError(`invalid docker backend options: docker.${field}: ${message}`, { field: `docker.${field}` });
}

/** CPUs: the default is capped at the engine's, explicit values above it are refused. */
function resolveCpus(file: DockerFileConfig, engineCpus: number | undefined): { cpus: number; maxCpus: number } {
  for (const field of ['cpus', 'max_cpus'] as const) {
    const value = file[field];
    if (engineCpus !== undefined && value !== undefined && value > engineCpus) {
      throw invalid(field, `${value} is more than the ${engineCpus} CPUs the Docker Engine has, and Docker refuses such a container — set it to at most ${engineCpus}`);
    }
  }
  const cpus = file.cpus ?? (engineCpus !== undefined ? Math.min(DEFAULT_CPUS, engineCpus) : DEFAULT_CPUS);
  const maxCpus = file.max_cpus ?? cpus;
  if (maxCpus < cpus) throw invalid('max_cpus', `${maxCpus} is below cpus (${cpus}) — raise max_cpus, or lower cpus`);
  return { cpus, maxCpus };
}

function resolveMemory(file: DockerFileConfig): { memoryBytes: number; maxMemoryBytes: number } {
  const memoryBytes = file.memory ?? DEFAULT_MEMORY_BYTES;
  const maxMemoryBytes = file.max_memory ?? memoryBytes;
  if (maxMemoryBytes < memoryBytes) {
    throw invalid('max_memory', `${formatBytes(maxMemoryBytes)} is below memory (${formatBytes(memoryBytes)}) — raise max_memory, or lower memory`);
  }
  return { memoryBytes, maxMemoryBytes };
}

function capabilityWarnings(capAdd: readonly string[]): string[] {
  return capAdd
    .filter((cap) => cap in HOST_REACHING_CAPABILITIES)
    .map((cap) => `docker.cap_add gives every task ${cap} (${HOST_REACHING_CAPABILITIES[cap]}) — keep it only if tasks need it, preferably with a sandboxing runtime such as runsc`);
}

/**
 * Defaults, cross-field checks and the host checks of the volumes. Reads the disk (volumes,
 * allowed roots, engine sockets); call once at worker start.
 */
export function resolveDockerOptions(file: DockerFileConfig = {}, context: ResolveDockerContext = {}): DockerOptions {
  if (file.tmp_size !== undefined && file.read_only_root !== true) {
    throw invalid('tmp_size', 'applies only to the /tmp of a read-only root — set read_only_root: true, or remove tmp_size');
  }
  const capAdd = [...new Set(file.cap_add ?? [])];
  const readOnlyRoot = file.read_only_root ?? false;
  const allowedVolumeRoots = file.allowed_volume_roots ? resolveAllowedRoots(file.allowed_volume_roots, 'docker.allowed_volume_roots') : null;
  const volumes = resolveVolumes(file.volumes ?? [], {
    allowedRoots: allowedVolumeRoots,
    ...(context.engineSocketPath ? { engineSocketPath: context.engineSocketPath } : {}),
  });
  if (readOnlyRoot) {
    const onTmp = volumes.find((v) => v.containerPath === '/tmp');
    if (onTmp) throw invalid('volumes', `"${onTmp.spec}" mounts at /tmp, where read_only_root puts its tmpfs — mount it elsewhere, or under /tmp (e.g. /tmp/data)`);
  }
  return {
    defaultImage: file.default_image ?? null,
    pullPolicy: file.pull_policy ?? 'if-not-present',
    network: file.network ?? 'none',
    capAdd,
    readOnlyRoot,
    tmpSizeBytes: file.tmp_size ?? DEFAULT_TMP_SIZE_BYTES,
    user: file.user ?? null,
    runtime: file.runtime ?? null,
    pidsLimit: file.pids_limit ?? DEFAULT_PIDS_LIMIT,
    ...resolveMemory(file),
    ...resolveCpus(file, context.engineCpus),
    volumes,
    allowedVolumeRoots,
    engineSocketPaths: engineSockets(context.engineSocketPath).paths,
    warnings: capabilityWarnings(capAdd),
  };
}

/** A task's own size, when its execution asks for one: overrides of the configured cpus/memory. */
export interface ResourceOverrides {
  cpus?: number | undefined;
  /** Bytes, or a size such as `8g`. */
  memory?: string | number | undefined;
}

export interface ContainerResources {
  cpus: number;
  /** HostConfig.NanoCpus: CPUs × 10⁹. */
  nanoCpus: number;
  /** HostConfig.Memory, and MemorySwap too (no swap). */
  memoryBytes: number;
}

/**
 * The resources of one container: the configured defaults, or the task's own size when it asks
 * for one — never more than `max_cpus`/`max_memory`. Pure; refusals name the limit and the fix.
 */
export function resourcesFor(options: Pick<DockerOptions, 'cpus' | 'maxCpus' | 'memoryBytes' | 'maxMemoryBytes'>, overrides: ResourceOverrides = {}): ContainerResources {
  let cpuCount = options.cpus;
  if (overrides.cpus !== undefined) {
    if (!Number.isFinite(overrides.cpus) || overrides.cpus < MIN_CPUS) {
      throw new ValidationError(`the task's size asks for ${overrides.cpus} CPUs — ask for a positive number, at least ${MIN_CPUS}`, { field: 'cpus' });
    }
    if (overrides.cpus > options.maxCpus) {
      throw new ValidationError(`the task's size asks for ${overrides.cpus} CPUs, more than this worker allows (docker.max_cpus: ${options.maxCpus}) — ask for fewer, or raise max_cpus`, { field: 'cpus' });
    }
    cpuCount = overrides.cpus;
  }
  let memoryBytes = options.memoryBytes;
  if (overrides.memory !== undefined) {
    const bytes = parseByteSize(overrides.memory);
    if (bytes === undefined || bytes < MIN_MEMORY_BYTES) {
      throw new ValidationError(`the task's size asks for memory "${overrides.memory}" — ask for a size such as 2g, at least ${formatBytes(MIN_MEMORY_BYTES)}`, { field: 'memory' });
    }
    if (bytes > options.maxMemoryBytes) {
      throw new ValidationError(
        `the task's size asks for ${formatBytes(bytes)} of memory, more than this worker allows (docker.max_memory: ${formatBytes(options.maxMemoryBytes)}) — ask for less, or raise max_memory`,
        { field: 'memory' },
      );
    }
    memoryBytes = bytes;
  }
  return { cpus: cpuCount, nanoCpus: Math.round(cpuCount * 1e9), memoryBytes };
}
