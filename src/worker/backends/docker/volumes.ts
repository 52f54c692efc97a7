/**
 * Operator volumes of the docker backend (`docker.volumes`, `-v HOST:CONTAINER[:ro|rw]`): parsed
 * and checked once, at the edge, into bind mounts. A volume is the one place where configuration
 * reaches from a task's container into the host, so every check refuses rather than repairs:
 * paths must already be absolute and normalised, the host path must exist, and nothing that is or
 * contains a container engine's socket is ever mounted (whoever reaches that socket is root on the
 * host).
 *
 * Invariant: a `VolumeMount` names as `source` the host path's realpath at check time — the very
 * directory the checks looked at, with no symlink left in it to swap — and that source is not `/`,
 * is not and does not contain an engine socket, and lies under an allowed root when roots are set.
 */
import { realpathSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import type Docker from 'dockerode';
import { ValidationError } from '../../../protocol/errors.js';
import { isInside } from '../../../lib/safe-path.js';

/** Everything Airlock itself mounts into a task container lives under this directory. */
export const AIRLOCK_MOUNT_ROOT = '/airlock';

/**
 * Where container engines listen by default. `/var/run` is a symlink to `/run` on most
 * distributions, so both spellings are listed; containerd's socket is as powerful as Docker's.
 * The socket the worker actually talks to is added by the caller (`engineSocketPath`).
 */
export const DEFAULT_ENGINE_SOCKETS = [
  '/var/run/docker.sock',
  '/run/docker.sock',
  '/var/run/containerd/containerd.sock',
  '/run/containerd/containerd.sock',
] as const;

export type VolumeMode = 'ro' | 'rw';

/** A volume spec after the lexical checks: nothing looked up on disk yet. */
export interface VolumeSpec {
  /** The spec as written, for messages. */
  spec: string;
  hostPath: string;
  containerPath: string;
  readOnly: boolean;
}

/** A volume after the host checks: what the container will mount. */
export interface VolumeMount extends VolumeSpec {
  /** realpath(hostPath) when it was checked: the bind mount's source. */
  source: string;
}

/** The engine sockets to keep out of containers, in every spelling that reaches them. */
export interface EngineSockets {
  /** Lexical paths and their realpaths (for the existing ones). */
  paths: string[];
  /** Device and inode of each existing socket: a hard link or a bind-mounted copy still matches. */
  identities: Array<{ dev: number; ino: number; path: string }>;
}

const FORMAT = 'HOST:CONTAINER[:ro|rw]';

/** Quoted for a message: control characters of hostile input come out escaped. */
const q = (text: string): string => JSON.stringify(text);

function refuse(where: string, spec: string, problem: string): ValidationError {
  return new ValidationError(`${where} ${q(spec)}: ${problem}`, { field: where });
}

/**
 * Why `p` is not an absolute, normalised path (no `.`, `..` or empty segment, no trailing `/`),
 * with the fix; undefined when it is one. `/` itself passes here; callers refuse it separately.
 */
export function unnormalisedPathReason(p: string, which: 'host' | 'container'): string | undefined {
  if (p.length === 0) return `the ${which} path is empty — write an absolute path such as ${which === 'host' ? '/srv/data' : '/data'}`;
  if (p.includes('\0')) return `the ${which} path contains a NUL byte — remove it`;
  if (!p.startsWith('/')) {
    return `the ${which} path ${q(p)} is relative — write it as an absolute path${which === 'host' ? " (a relative one would depend on the worker's working directory)" : ''}`;
  }
  if (p === '/') return undefined;
  const segments = p.split('/').slice(1);
  if (segments.includes('..')) return `the ${which} path ${q(p)} has a ".." segment — name the directory directly, without ".."`;
  if (segments.includes('.') || segments.includes('')) {
    return `the ${which} path ${q(p)} is not normalised — write it as ${q(path.posix.normalize(p).replace(/(.)\/$/, '$1'))}`;
  }
  return undefined;
}

/**
 * The lexical half: splits `HOST:CONTAINER[:ro|rw]` and checks both paths' shape and the mode.
 * Pure. `where` names the field or flag in messages (`docker.volumes[2]`, `-v`).
 */
export function parseVolumeSpec(spec: string, where: string): VolumeSpec {
  if (spec.trim().length === 0) throw refuse(where, spec, `the volume is empty — write it as ${FORMAT}, e.g. /srv/cache:/cache:ro`);
  const parts = spec.split(':');
  if (parts.length < 2) {
    throw refuse(where, spec, `no container path — write it as ${FORMAT}, e.g. ${spec}:/data (anonymous and named volumes are not supported)`);
  }
  if (parts.length > 3) {
    throw refuse(where, spec, `too many ":" — write it as ${FORMAT}; paths containing ":" cannot be mounted this way`);
  }
  const [hostPath = '', containerPath = '', mode] = parts;
  const hostProblem = unnormalisedPathReason(hostPath, 'host');
  if (hostProblem) throw refuse(where, spec, hostProblem);
  if (hostPath === '/') throw refuse(where, spec, "mounting the host's root directory would hand the task the whole host — mount only the directory it needs");
  const containerProblem = unnormalisedPathReason(containerPath, 'container');
  if (containerProblem) throw refuse(where, spec, containerProblem);
  if (containerPath === '/') throw refuse(where, spec, "the container path cannot be / (it would replace the image's whole filesystem) — mount at a directory such as /data");
  if (isInside(AIRLOCK_MOUNT_ROOT, containerPath)) {
    throw refuse(where, spec, `the container path ${q(containerPath)} is inside ${AIRLOCK_MOUNT_ROOT}, where Airlock mounts its own runtime and gateway — choose a path outside ${AIRLOCK_MOUNT_ROOT}`);
  }
  if (mode !== undefined && mode !== 'ro' && mode !== 'rw') {
    throw refuse(where, spec, `mode ${q(mode)} is not ro or rw — end the volume with :ro for read-only, or :rw (the default) for read-write`);
  }
  return { spec, hostPath, containerPath, readOnly: mode === 'ro' };
}

/** Stat without throwing: undefined when the path does not exist or cannot be read. */
function statOrUndefined(p: string): Stats | undefined {
  try {
    return statSync(p);
  } catch {
    return undefined;
  }
}

function realpathOrUndefined(p: string): string | undefined {
  try {
    return realpathSync(p);
  } catch {
    return undefined;
  }
}

/**
 * The engine sockets in every spelling: the defaults plus the socket the worker talks to, each
 * also as its realpath, and the identity (device, inode) of those that exist. Reads the disk.
 */
export function engineSockets(engineSocketPath?: string): EngineSockets {
  const lexical = [...DEFAULT_ENGINE_SOCKETS, ...(engineSocketPath ? [path.resolve(engineSocketPath)] : [])];
  const paths = new Set<string>(lexical);
  const identities: EngineSockets['identities'] = [];
  for (const p of lexical) {
    const real = realpathOrUndefined(p);
    if (real) paths.add(real);
    const stats = statOrUndefined(p);
    if (stats && !identities.some((i) => i.dev === stats.dev && i.ino === stats.ino)) identities.push({ dev: stats.dev, ino: stats.ino, path: p });
  }
  return { paths: [...paths], identities };
}

/**
 * The engine socket `p` is or contains (lexically: `p` equal to a socket path or one of its
 * ancestors), or undefined. Pure: used again on the finished container spec as a last guard.
 */
export function engineSocketUnder(p: string, sockets: readonly string[]): string | undefined {
  return sockets.find((socket) => isInside(p, socket));
}

export interface VolumeCheckContext {
  sockets: EngineSockets;
  /** realpaths of `allowed_volume_roots`; null: volumes may come from anywhere (but the refusals above). */
  allowedRoots: string[] | null;
}

function socketRefusal(where: string, spec: string, shown: string, socket: string, isDirectory: boolean): ValidationError {
  const what = isDirectory ? `contains the container engine's socket ${socket}` : `is the container engine's socket ${socket}`;
  const fix = isDirectory ? 'mount a narrower directory that does not contain it' : 'remove this volume; never mount the engine socket';
  return refuse(where, spec, `the host path ${shown} ${what}: whoever reaches that socket controls every container and the host as root — ${fix}`);
}

/**
 * The host half: the path must exist and lead (after symlinks) somewhere safe and allowed. The
 * socket check runs on the path as written first (so it holds even where no engine runs), then on
 * its realpath and on the socket's identity (a hard link). Reads the disk.
 */
export function checkVolumeOnHost(volume: VolumeSpec, context: VolumeCheckContext, where: string): VolumeMount {
  const { spec, hostPath } = volume;
  const written = engineSocketUnder(hostPath, context.sockets.paths);
  if (written) throw socketRefusal(where, spec, q(hostPath), written, written !== hostPath);
  const stats = statOrUndefined(hostPath);
  const source = stats ? realpathOrUndefined(hostPath) : undefined;
  if (!stats || !source) {
    throw refuse(where, spec, `the host path ${q(hostPath)} does not exist on the worker host (or cannot be read) — create it first, or fix the path`);
  }
  const shown = source === hostPath ? q(hostPath) : `${q(hostPath)} (which resolves to ${q(source)})`;
  if (source === '/') throw refuse(where, spec, `the host path ${shown} is the host's root directory — mount only the directory the task needs`);
  const socket = engineSocketUnder(source, context.sockets.paths) ?? context.sockets.identities.find((i) => i.dev === stats.dev && i.ino === stats.ino)?.path;
  if (socket) throw socketRefusal(where, spec, shown, socket, stats.isDirectory());
  if (context.allowedRoots && !context.allowedRoots.some((root) => isInside(root, source))) {
    throw refuse(
      where,
      spec,
      `the host path ${shown} is outside allowed_volume_roots (${context.allowedRoots.join(', ')}) — move the data under one of them, or add its directory to allowed_volume_roots`,
    );
  }
  return { ...volume, source };
}

/**
 * `allowed_volume_roots` as realpaths. Each must be absolute, normalised and exist, so that a
 * volume is compared with the directory the root really is (a symlinked root cannot be escaped).
 */
export function resolveAllowedRoots(roots: readonly string[], field: string): string[] {
  return roots.map((root, i) => {
    const where = `${field}[${i}]`;
    const problem = unnormalisedPathReason(root, 'host');
    if (problem) throw refuse(where, root, problem);
    const real = realpathOrUndefined(root);
    if (!real) throw refuse(where, root, `the directory ${q(root)} does not exist on the worker host — create it, or remove it from the list`);
    if (real === '/') throw refuse(where, root, 'an allowed root of / would allow every host path — name the directories volumes may come from');
    return real;
  });
}

export interface ResolveVolumesOptions {
  /** Directories volumes must lie under; absent or null: no such restriction. */
  allowedRoots?: readonly string[] | null;
  /** The socket of the engine the worker talks to, when it is not a default one. */
  engineSocketPath?: string;
  /** The field or flag named in messages: `docker.volumes` (default) or `-v`. */
  field?: string;
  /** Names the allowed roots' field in messages (default `docker.allowed_volume_roots`). */
  rootsField?: string;
}

/**
 * Parse and check every volume spec: the lexical checks, then the host checks, then no two
 * volumes at one container path. Reads the disk; call once at worker start (and again before each
 * container if the host directories may change under a running worker).
 */
export function resolveVolumes(specs: readonly string[], options: ResolveVolumesOptions = {}): VolumeMount[] {
  const field = options.field ?? 'docker.volumes';
  const allowedRoots = options.allowedRoots ? resolveAllowedRoots(options.allowedRoots, options.rootsField ?? 'docker.allowed_volume_roots') : null;
  const context: VolumeCheckContext = { sockets: engineSockets(options.engineSocketPath), allowedRoots };
  const mounts: VolumeMount[] = [];
  specs.forEach((spec, i) => {
    const where = `${field}[${i}]`;
    const mount = checkVolumeOnHost(parseVolumeSpec(spec, where), context, where);
    const clash = mounts.find((m) => m.containerPath === mount.containerPath);
    if (clash) throw refuse(where, spec, `${q(mount.containerPath)} is already mounted by ${q(clash.spec)} — give each volume its own container path`);
    mounts.push(mount);
  });
  return mounts;
}

/** Checked volumes as dockerode bind mounts (the Mounts API: a missing source fails, never gets created). */
export function volumeMounts(volumes: readonly VolumeMount[]): Docker.MountSettings[] {
  return volumes.map((v) => ({ Type: 'bind', Source: v.source, Target: v.containerPath, ReadOnly: v.readOnly }));
}
