/**
 * Ids we mint: `<prefix>_` + 20 lowercase base32 characters from a CSPRNG (100 bits), so ids are
 * unguessable (a task id is not a capability, but guessing one should not even find a 404 fast)
 * and safe in file names, labels and URLs.
 */
import { randomBytes } from 'node:crypto';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

/**
 * Random bytes are drawn from the CSPRNG 4 KiB at a time: one system call per ~200 ids instead
 * of one per id (ids are minted on the dispatcher's hot path). Each byte is used once.
 */
const POOL_BYTES = 4096;
let pool = Buffer.alloc(0);
let offset = 0;

export function randomBase32(length: number): string {
  if (length > POOL_BYTES) return randomBase32(POOL_BYTES) + randomBase32(length - POOL_BYTES);
  if (offset + length > pool.length) {
    pool = randomBytes(POOL_BYTES);
    offset = 0;
  }
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHABET[pool[offset + i]! & 31];
  offset += length;
  return out;
}

export type IdPrefix = 'tsk' | 'exe' | 'team' | 'key' | 'off' | 'msg' | 'evt' | 'wsn' | 'env';

export function newId(prefix: IdPrefix): string {
  return `${prefix}_${randomBase32(20)}`;
}
