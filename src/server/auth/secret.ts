/**
 * The server secret: 32 random bytes in `<data-dir>/secret.key` that key the API-key hashes.
 * The server and the admin CLI share it through that file, so a key minted by
 * `airlock admin create-api-key` (even while the server runs) verifies on the server.
 *
 * Invariants: the file is created once, with mode 0600, atomically (written to a private
 * temporary file, then hard-linked into place, so a concurrent reader never sees it half
 * written and two concurrent creators agree on one secret); afterwards it is only read.
 * Synchronous on purpose: it runs once at start-up, before anything else could proceed.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { AirlockError } from '../../protocol/errors.js';

export const SERVER_SECRET_FILE = 'secret.key';
/** 256 bits: as long as the HMAC-SHA256 output, so the key is never the weak link. */
export const SERVER_SECRET_BYTES = 32;

function readSecret(path: string): Buffer {
  const bytes = readFileSync(path);
  if (bytes.length !== SERVER_SECRET_BYTES) {
    throw new AirlockError(
      'internal',
      `the server secret ${path} holds ${bytes.length} bytes instead of ${SERVER_SECRET_BYTES} — restore it from a backup; if it is lost, delete it and mint new API keys (every existing key stops working)`,
    );
  }
  return bytes;
}

/** Load `<dataDir>/secret.key`, creating the directory and the secret on first use. */
export function loadOrCreateServerSecret(dataDir: string): Buffer {
  const path = join(dataDir, SERVER_SECRET_FILE);
  try {
    return readSecret(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  // Only the owner may list the data directory (it also holds the database).
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const temp = join(dataDir, `.${SERVER_SECRET_FILE}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(temp, 'wx', 0o600);
  try {
    writeSync(fd, randomBytes(SERVER_SECRET_BYTES));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  // The umask can only remove bits, but be explicit: the secret is the owner's alone.
  chmodSync(temp, 0o600);
  try {
    linkSync(temp, path);
  } catch (err) {
    // Another process created it between our read and our link: use theirs.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    unlinkSync(temp);
  }
  return readSecret(path);
}
