/**
 * Connecting to the Docker Engine the docker backend drives. Where to connect is decided once,
 * from the environment the Docker CLI itself reads (DOCKER_HOST, DOCKER_TLS_VERIFY,
 * DOCKER_CERT_PATH), by the pure `resolveEngineTarget`; `connectEngine` then loads the TLS files,
 * pings the engine and reads its version within ENGINE_TIMEOUT_MS, so a worker learns at start
 * — not at its first task — that the engine is missing, and why.
 *
 * Invariants: only unix:// and tcp:// are accepted (anything else is an error, never a guess);
 * TLS is used exactly when DOCKER_TLS_VERIFY asks for it, and then always verifies the engine's
 * certificate; error messages and descriptions name files and variables, never their contents
 * (a client key must not reach a log).
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { AirlockError, ValidationError, describeError } from '../../../protocol/errors.js';

/** The engine's socket when DOCKER_HOST is unset: where dockerd listens on Linux by default. */
export const DEFAULT_SOCKET = '/var/run/docker.sock';
/**
 * How long the ping and version read may take together. A local engine answers in milliseconds
 * and a remote one over TLS within a few round trips; 5 s only fails an engine that is not
 * answering at all (a stopped dockerd behind a live socket, a firewall dropping packets).
 */
export const ENGINE_TIMEOUT_MS = 5_000;
/** Docker's conventional ports: 2376 speaks TLS, 2375 plain HTTP (what the Docker CLI assumes). */
const DEFAULT_TLS_PORT = 2376;
const DEFAULT_PLAIN_PORT = 2375;

/** The variables this module reads; the same names the Docker CLI uses. */
export type EngineEnv = Readonly<Record<string, string | undefined>>;

export interface EngineTls {
  /** The directory holding the files, and where that came from (for messages). */
  certDir: string;
  certDirSource: 'DOCKER_CERT_PATH' | 'default';
  caPath: string;
  certPath: string;
  keyPath: string;
}

export type EngineTarget =
  | {
      kind: 'unix';
      socketPath: string;
      /** dockerode connection options (no file contents: those are loaded by connectEngine). */
      options: { socketPath: string };
      description: string;
    }
  | {
      kind: 'tcp';
      /** Host name or address as dockerode wants it (an IPv6 address without brackets). */
      host: string;
      port: number;
      tls: EngineTls | null;
      options: { host: string; port: number; protocol: 'http' | 'https' };
      description: string;
    };

export interface EngineConnection {
  docker: Dockerode;
  /** Human description of where the engine was found, e.g. "unix:///var/run/docker.sock (default socket)". */
  target: string;
  version: string;
  apiVersion: string;
  os: string;
  arch: string;
}

const SUPPORTED = 'use unix:///path/to/docker.sock, or tcp://host:port (with DOCKER_TLS_VERIFY=1 for TLS)';

function parseTlsVerify(env: EngineEnv): boolean {
  const raw = env.DOCKER_TLS_VERIFY;
  if (raw === undefined || raw === '' || raw === '0' || raw.toLowerCase() === 'false') return false;
  if (raw === '1' || raw.toLowerCase() === 'true') return true;
  throw new ValidationError(`DOCKER_TLS_VERIFY must be 1 (use TLS and verify the engine) or 0/unset (plain connection), got ${JSON.stringify(raw.slice(0, 40))} — set DOCKER_TLS_VERIFY=1 or unset it`, {
    field: 'DOCKER_TLS_VERIFY',
  });
}

function tlsFiles(env: EngineEnv): EngineTls {
  const fromEnv = env.DOCKER_CERT_PATH;
  const certDir = fromEnv !== undefined && fromEnv !== '' ? fromEnv : path.join(env.HOME ?? homedir(), '.docker');
  return {
    certDir,
    certDirSource: fromEnv !== undefined && fromEnv !== '' ? 'DOCKER_CERT_PATH' : 'default',
    caPath: path.join(certDir, 'ca.pem'),
    certPath: path.join(certDir, 'cert.pem'),
    keyPath: path.join(certDir, 'key.pem'),
  };
}

/**
 * Where the Docker Engine is, from DOCKER_HOST (unix:///path, tcp://host:port) and, for tcp,
 * DOCKER_TLS_VERIFY/DOCKER_CERT_PATH; the default socket when DOCKER_HOST is unset or empty.
 * Pure: reads no files, opens no connection. Throws a ValidationError naming the variable.
 */
export function resolveEngineTarget(env: EngineEnv): EngineTarget {
  const value = env.DOCKER_HOST;
  if (value === undefined || value === '') {
    return { kind: 'unix', socketPath: DEFAULT_SOCKET, options: { socketPath: DEFAULT_SOCKET }, description: `unix://${DEFAULT_SOCKET} (default socket)` };
  }
  // Shown in errors: with any password masked (user:***@), and cut short.
  const safe = value.replace(/\/\/([^/@:]*):[^/@]*@/, '//$1:***@');
  const shown = JSON.stringify(safe.length > 80 ? `${safe.slice(0, 80)}…` : safe);
  const bad = (problem: string): never => {
    throw new ValidationError(`DOCKER_HOST=${shown} ${problem} — ${SUPPORTED}`, { field: 'DOCKER_HOST' });
  };
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(value)?.[1]?.toLowerCase();
  if (scheme === undefined) return bad('is not a URL with a scheme (expected something like tcp://10.0.0.5:2376)');

  if (scheme === 'unix') {
    const socketPath = value.slice('unix://'.length);
    if (!socketPath.startsWith('/')) return bad('must name an absolute socket path after unix:// (three slashes in all)');
    return { kind: 'unix', socketPath, options: { socketPath }, description: `unix://${socketPath} (DOCKER_HOST)` };
  }
  if (scheme !== 'tcp') {
    const why = scheme === 'npipe' ? 'uses npipe://, a Windows named pipe, which this worker cannot open' : `uses the unsupported scheme ${scheme}://`;
    return bad(why);
  }

  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return bad('is not a valid tcp:// address (expected tcp://host:port with a numeric port)');
  }
  if (url.hostname === '') bad('names no host after tcp://');
  if (url.username !== '' || url.password !== '') bad('must not carry credentials');
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') bad('must be just tcp://host:port, without a path, query or fragment');

  const tls = parseTlsVerify(env);
  const port = url.port === '' ? (tls ? DEFAULT_TLS_PORT : DEFAULT_PLAIN_PORT) : Number(url.port);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const address = `tcp://${url.hostname}:${port}${url.port === '' ? ' (default port)' : ''}`;
  if (!tls) {
    if (env.DOCKER_TLS !== undefined && env.DOCKER_TLS !== '' && env.DOCKER_TLS !== '0') {
      throw new ValidationError('DOCKER_TLS asks for TLS without verifying the engine, which Airlock does not do — set DOCKER_TLS_VERIFY=1 (with ca.pem, cert.pem and key.pem in DOCKER_CERT_PATH) instead', {
        field: 'DOCKER_TLS',
      });
    }
    return { kind: 'tcp', host, port, tls: null, options: { host, port, protocol: 'http' }, description: `${address} without TLS (DOCKER_HOST)` };
  }
  const files = tlsFiles(env);
  const certs = files.certDirSource === 'DOCKER_CERT_PATH' ? `certs from DOCKER_CERT_PATH=${files.certDir}` : `certs from ${files.certDir}`;
  return { kind: 'tcp', host, port, tls: files, options: { host, port, protocol: 'https' }, description: `${address} with TLS (DOCKER_HOST, ${certs})` };
}

interface LoadedTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** Reads ca.pem, cert.pem and key.pem, reporting every missing or unreadable one by path. */
async function loadTls(tls: EngineTls): Promise<LoadedTls> {
  const problems: string[] = [];
  const read = async (file: string): Promise<Buffer> =>
    readFile(file).catch((err: NodeJS.ErrnoException) => {
      const why = err.code === 'ENOENT' ? 'does not exist' : err.code === 'EACCES' ? 'cannot be read (permission denied)' : err.code === 'EISDIR' ? 'is a directory' : `cannot be read (${err.code ?? 'error'})`;
      problems.push(`${file} ${why}`);
      return Buffer.alloc(0);
    });
  const [ca, cert, key] = await Promise.all([read(tls.caPath), read(tls.certPath), read(tls.keyPath)]);
  if (problems.length > 0) {
    const where = tls.certDirSource === 'DOCKER_CERT_PATH' ? `DOCKER_CERT_PATH=${tls.certDir}` : `${tls.certDir} (the default, as DOCKER_CERT_PATH is unset)`;
    throw new ValidationError(
      `DOCKER_TLS_VERIFY=1 needs ca.pem, cert.pem and key.pem in ${where}, but ${problems.join(', ')} — put the engine's CA certificate and this client's certificate and key there, or point DOCKER_CERT_PATH at the directory that holds them`,
      { field: 'DOCKER_CERT_PATH', files: problems },
    );
  }
  return { ca, cert, key };
}

/**
 * dockerode's modem reads DOCKER_HOST, DOCKER_CERT_PATH … from process.env on construction and
 * lets them win over explicit options (a set DOCKER_HOST overrides an explicit socketPath, and a
 * missing cert file throws from the constructor). The target was resolved from `env` already, so
 * build the client with process.env's DOCKER_HOST hidden: construction is synchronous, nothing
 * else runs meanwhile.
 */
function newClient(options: Dockerode.DockerOptions): Dockerode {
  const saved = process.env.DOCKER_HOST;
  delete process.env.DOCKER_HOST;
  try {
    return new Dockerode(options);
  } finally {
    if (saved !== undefined) process.env.DOCKER_HOST = saved;
  }
}

/** The subset of dockerode's API used here, with the abort signal its typings omit. */
interface PingApi {
  ping(opts: { abortSignal: AbortSignal }): Promise<unknown>;
  version(opts: { abortSignal: AbortSignal }): Promise<Partial<Dockerode.DockerVersion> | undefined>;
}

const TLS_VERIFY_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
]);

/** Why the engine could not be reached, and what to do about it: "<problem> — <fix>". */
function explain(err: unknown, target: EngineTarget, timedOut: boolean, timeoutMs: number): string {
  const e = err as NodeJS.ErrnoException & { statusCode?: number; reason?: string };
  const code = e.code ?? '';
  const message = describeError(err);
  if (timedOut) {
    return `no answer within ${timeoutMs / 1000} s — check that dockerd is running and responsive (\`docker info\`), and that nothing between here and it (a firewall, a proxy) holds the connection`;
  }
  if (target.kind === 'unix') {
    const socket = target.socketPath;
    if (code === 'ENOENT') return `there is no socket at ${socket} — start dockerd (e.g. \`sudo systemctl start docker\`; \`npm test\` starts it when run as root), or set DOCKER_HOST to where the engine listens`;
    if (code === 'EACCES' || code === 'EPERM') return `permission denied on ${socket} — add the user running the worker to the docker group (\`sudo usermod -aG docker $USER\`, then log in again) or run the worker as root`;
    if (code === 'ECONNREFUSED') return `${socket} exists but nothing accepts connections on it (a dockerd that stopped and left its socket behind) — start dockerd again`;
    if (code === 'ENOTSOCK') return `${socket} is not a socket — point DOCKER_HOST at the engine's socket`;
  } else {
    const address = `${target.host}:${target.port}`;
    const certDir = target.tls?.certDir ?? '';
    if (code === 'ECONNREFUSED') return `connection refused at ${address}: nothing listens there — check DOCKER_HOST's host and port, and that dockerd listens on TCP (\`dockerd -H tcp://…\`)`;
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `the host name ${target.host} does not resolve (${code}) — check DOCKER_HOST`;
    if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'ETIMEDOUT') return `${address} is unreachable (${code}) — check DOCKER_HOST and the network path to the engine`;
    if (target.tls !== null) {
      if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `the engine's certificate is not valid for ${target.host} (${message}) — use a host name the certificate was issued for in DOCKER_HOST, or reissue it with that name`;
      if (TLS_VERIFY_CODES.has(code)) return `the engine's certificate could not be verified (${code}: ${message}) — ${target.tls.caPath} must be the CA that signed the engine's certificate`;
      if (code.startsWith('ERR_SSL_') && code.includes('ALERT')) {
        return `the engine refused this client's certificate during the TLS handshake (${message}) — cert.pem and key.pem in ${certDir} must be signed by a CA the engine trusts (its --tlscacert)`;
      }
      if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_OSSL_') || code.startsWith('ERR_TLS_')) {
        return `TLS failed (${code}: ${message}) — check that ${target.tls.caPath}, ${target.tls.certPath} and ${target.tls.keyPath} are PEM files, that the key matches the certificate, and that the engine speaks TLS on ${address}`;
      }
      if (code === 'ECONNRESET' || code === 'EPIPE') {
        return `the engine closed the TLS connection (${message}), which usually means it rejected this client's certificate — cert.pem and key.pem in ${certDir} must be signed by a CA the engine trusts (its --tlscacert)`;
      }
    }
    if (e.statusCode !== undefined && target.tls === null && target.port === DEFAULT_TLS_PORT) {
      return `the engine answered HTTP ${e.statusCode} (${message.trim()}); port 2376 is Docker's TLS port — set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH`;
    }
  }
  if (e.statusCode !== undefined) {
    return `the engine answered HTTP ${e.statusCode} (${message.trim()}) — check that DOCKER_HOST points at a Docker Engine${target.kind === 'tcp' && target.tls === null ? ' and whether it expects TLS (DOCKER_TLS_VERIFY=1)' : ''}`;
  }
  return `${code !== '' ? `${code}: ` : ''}${message} — check that dockerd is running and that DOCKER_HOST (${target.kind === 'unix' ? `unix://${target.socketPath}` : `${target.host}:${target.port}`}) points at it`;
}

/**
 * Connects to the Docker Engine named by `env` (see resolveEngineTarget), proves it answers and
 * reads its version. Throws a ValidationError for a malformed configuration or missing TLS files,
 * and an AirlockError with code `unavailable` — naming what was tried and how to fix it — when
 * the engine cannot be reached within `timeoutMs`.
 */
export async function connectEngine(env: EngineEnv = process.env, opts: { timeoutMs?: number } = {}): Promise<EngineConnection> {
  const timeoutMs = opts.timeoutMs ?? ENGINE_TIMEOUT_MS;
  const target = resolveEngineTarget(env);
  const tls = target.kind === 'tcp' && target.tls !== null ? await loadTls(target.tls) : null;
  const docker = newClient({ ...target.options, ...(tls ?? {}) });
  const api = docker as unknown as PingApi;
  const signal = AbortSignal.timeout(timeoutMs);
  let version: Partial<Dockerode.DockerVersion> | undefined;
  try {
    await api.ping({ abortSignal: signal });
    version = await api.version({ abortSignal: signal });
  } catch (err) {
    throw new AirlockError('unavailable', `cannot reach the Docker Engine at ${target.description}: ${explain(err, target, signal.aborted, timeoutMs)}`, {
      cause: err,
    });
  }
  if (typeof version?.Version !== 'string' || typeof version.ApiVersion !== 'string') {
    throw new AirlockError('unavailable', `${target.description} answered /_ping but its /version reply has no Version and ApiVersion — check that DOCKER_HOST points at a Docker Engine`);
  }
  return {
    docker,
    target: target.description,
    version: version.Version,
    apiVersion: version.ApiVersion,
    os: version.Os ?? 'unknown',
    arch: version.Arch ?? 'unknown',
  };
}
