/**
 * Unix socket housekeeping for the task gateway: the path must fit in `sockaddr_un`, and a socket
 * file left by a crashed worker must be removed before we can listen — but only if it really is
 * a dead socket: we never delete a regular file, and never steal a socket someone still serves.
 */
import { lstat, unlink } from 'node:fs/promises';
import net from 'node:net';

/** sun_path is 108 bytes on Linux, including the terminating NUL. */
export const MAX_UNIX_SOCKET_PATH_BYTES = 107;
/** How long to wait for a connection to an existing socket file before calling it dead. */
const PROBE_TIMEOUT_MS = 1_000;

export function assertSocketPathFits(socketPath: string, fix: string): void {
  const bytes = Buffer.byteLength(socketPath, 'utf8');
  if (bytes > MAX_UNIX_SOCKET_PATH_BYTES) {
    throw new Error(
      `the Unix socket path ${socketPath} is ${bytes} bytes, over the operating system's limit of ${MAX_UNIX_SOCKET_PATH_BYTES} — ${fix}`,
    );
  }
}

/** True when something accepts connections on `socketPath`. */
function isServed(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ path: socketPath });
    const done = (served: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(served);
    };
    const timer = setTimeout(() => done(false), PROBE_TIMEOUT_MS);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Remove a stale socket file at `socketPath`; throw if the path holds something else or is in use. */
export async function removeStaleSocket(socketPath: string): Promise<void> {
  let stats;
  try {
    stats = await lstat(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!stats.isSocket()) {
    throw new Error(`refusing to replace ${socketPath} with the task gateway's socket: it exists and is not a socket — remove it by hand`);
  }
  if (await isServed(socketPath)) {
    throw new Error(`another process is already serving ${socketPath} — is a second worker using the same workspace root? Give each worker its own.`);
  }
  await unlink(socketPath).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}
